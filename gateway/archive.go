package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"

	"github.com/moby/moby/api/types/container"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// pathStatHeader is where Docker puts a path's stat, as base64 JSON.
const pathStatHeader = "X-Docker-Container-Path-Stat"

func setPathStat(w http.ResponseWriter, st *enginev1.ContainerPathStat) {
	data, _ := json.Marshal(container.PathStat{Name: st.GetName(), Size: st.GetSize(), Mode: os.FileMode(st.GetMode()),
		Mtime: st.GetMtime().AsTime(), LinkTarget: st.GetLinkTarget()})
	w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(data))
}

// statPath answers the stat of ?path=, or writes the error and returns
// false.
func (h *handlers) statPath(w http.ResponseWriter, r *http.Request, p map[string]string) (*enginev1.ContainerArchiveRequest, bool) {
	req := &enginev1.ContainerArchiveRequest{Id: p["id"], Path: r.URL.Query().Get("path")}
	if req.Path == "" {
		writeError(w, http.StatusBadRequest, "path is required")
		return nil, false
	}
	st, err := h.engine.ContainerArchiveStat(r.Context(), req)
	if err != nil {
		writeGRPCError(w, err)
		return nil, false
	}
	setPathStat(w, st)
	return req, true
}

// containerArchiveHead is HEAD /containers/{id}/archive?path=.
func (h *handlers) containerArchiveHead(w http.ResponseWriter, r *http.Request, p map[string]string) {
	if _, ok := h.statPath(w, r, p); ok {
		w.WriteHeader(http.StatusOK)
	}
}

// containerArchiveGet is GET /containers/{id}/archive?path=: the path's
// stat in a header, the path as a tar.
func (h *handlers) containerArchiveGet(w http.ResponseWriter, r *http.Request, p map[string]string) {
	req, ok := h.statPath(w, r, p)
	if !ok {
		return
	}
	stream, err := h.engine.ContainerArchiveGet(r.Context(), req)
	if err != nil {
		w.Header().Del(pathStatHeader)
		writeGRPCError(w, err)
		return
	}
	h.writeTar(w, "container archive", stream.Recv)
}

// containerArchivePut is PUT /containers/{id}/archive?path=: the body is
// a tar extracted into the directory path.
func (h *handlers) containerArchivePut(w http.ResponseWriter, r *http.Request, p map[string]string) {
	q := r.URL.Query()
	if q.Get("path") == "" {
		writeError(w, http.StatusBadRequest, "path is required")
		return
	}
	stream, err := h.engine.ContainerArchivePut(r.Context())
	if err == nil {
		err = stream.Send(&enginev1.ContainerArchivePutRequest{Options: &enginev1.ContainerArchivePutOptions{
			Id: p["id"], Path: q.Get("path"), NoOverwriteDirNonDir: boolParam(q, "noOverwriteDirNonDir"), CopyUidGid: boolParam(q, "copyUIDGID"),
		}})
	}
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	if _, err := upload(r.Body, func(b []byte) error { return stream.Send(&enginev1.ContainerArchivePutRequest{Data: b}) }, stream.CloseAndRecv); err != nil {
		writeGRPCError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// containerExport is GET /containers/{id}/export: the root filesystem as
// a tar.
func (h *handlers) containerExport(w http.ResponseWriter, r *http.Request, p map[string]string) {
	stream, err := h.engine.ContainerExport(r.Context(), &enginev1.ContainerExportRequest{Id: p["id"]})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	h.writeTar(w, "container export", stream.Recv)
}

func init() {
	registerResponse(func(_ context.Context, m *enginev1.ContainerChangesResponse) (any, error) {
		out := []container.FilesystemChange{}
		for _, c := range m.GetChanges() {
			out = append(out, container.FilesystemChange{Path: c.GetPath(), Kind: container.ChangeType(c.GetKind())})
		}
		return out, nil
	})
}
