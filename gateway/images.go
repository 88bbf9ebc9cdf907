package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/storage"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func init() {
	registerResponse(imageInspectToDocker)
	registerResponse(func(ctx context.Context, m *enginev1.ImageListResponse) (any, error) {
		out := make([]imageSummary, 0, len(m.GetImages()))
		for _, img := range m.GetImages() {
			s := imageSummary{Summary: image.Summary{
				ID: img.GetId(), RepoTags: nonNil(img.GetRepoTags()), RepoDigests: nonNil(img.GetRepoDigests()),
				Created: img.GetCreated().GetSeconds(), Size: img.GetSize(), SharedSize: -1, Containers: img.GetContainers(),
				Labels: img.GetLabels(), ParentID: img.GetParent(),
			}}
			if versionBefore(ctx, "1.44") {
				size := img.GetSize()
				s.VirtualSize = &size
			}
			if versionBefore(ctx, "1.43") && len(s.RepoTags) == 0 && len(s.RepoDigests) == 0 {
				// Untagged images were "<none>" before API 1.43.
				s.RepoTags, s.RepoDigests = []string{"<none>:<none>"}, []string{"<none>@<none>"}
			}
			out = append(out, s)
		}
		return out, nil
	})
	registerResponse(func(_ context.Context, m *enginev1.ImageHistoryResponse) (any, error) {
		out := make([]image.HistoryResponseItem, 0, len(m.GetItems()))
		for _, it := range m.GetItems() {
			out = append(out, image.HistoryResponseItem{ID: it.GetId(), Created: it.GetCreated().GetSeconds(), CreatedBy: it.GetCreatedBy(),
				Tags: nonNil(it.GetTags()), Size: it.GetSize(), Comment: it.GetComment()})
		}
		return out, nil
	})
	registerResponse(func(context.Context, *enginev1.ImageTagResponse) (any, error) { return noBody{}, nil })
	registerResponse(func(_ context.Context, m *enginev1.ImageRemoveResponse) (any, error) {
		return deleteItems(m.GetItems()), nil
	})
	registerResponse(func(_ context.Context, m *enginev1.ImagePruneResponse) (any, error) {
		return image.PruneReport{ImagesDeleted: deleteItems(m.GetDeleted()), SpaceReclaimed: uint64(m.GetSpaceReclaimed())}, nil
	})
	successStatus[(&enginev1.ImageTagResponse{}).ProtoReflect().Descriptor().FullName()] = http.StatusCreated
}

// imageSummary adds VirtualSize, which API 1.44 dropped.
type imageSummary struct {
	image.Summary
	VirtualSize *int64 `json:"VirtualSize,omitempty"`
}

func deleteItems(items []*enginev1.ImageDeleteItem) []image.DeleteResponse {
	out := make([]image.DeleteResponse, 0, len(items))
	for _, it := range items {
		out = append(out, image.DeleteResponse{Untagged: it.GetUntagged(), Deleted: it.GetDeleted()})
	}
	return out
}

// legacyImageConfig are the container-config fields API 1.50 stopped
// returning in an image's Config; older clients get them, empty.
var legacyImageConfig = map[string]any{
	"Hostname": "", "Domainname": "", "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
	"Tty": false, "OpenStdin": false, "StdinOnce": false, "Image": "",
}

// inspectWithLegacyConfig is InspectResponse with Config as a map, for
// clients older than API 1.50.
type inspectWithLegacyConfig struct {
	image.InspectResponse
	Config map[string]any
}

func imageInspectToDocker(ctx context.Context, img *enginev1.Image) (any, error) {
	out, err := imageInspect(img)
	if err != nil || !versionBefore(ctx, "1.50") {
		return out, err
	}
	raw, err := json.Marshal(out.Config)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	for k, v := range legacyImageConfig {
		if _, ok := cfg[k]; !ok {
			cfg[k] = v
		}
	}
	return inspectWithLegacyConfig{InspectResponse: out, Config: cfg}, nil
}

func imageInspect(img *enginev1.Image) (image.InspectResponse, error) {
	var cfg dockerspec.DockerOCIImage
	if len(img.GetConfigJson()) > 0 {
		if err := json.Unmarshal(img.GetConfigJson(), &cfg); err != nil {
			return image.InspectResponse{}, fmt.Errorf("image %s config: %w", img.GetId(), err)
		}
	}
	out := image.InspectResponse{
		ID:           img.GetId(),
		RepoTags:     nonNil(img.GetRepoTags()),
		RepoDigests:  nonNil(img.GetRepoDigests()),
		Comment:      historyComment(cfg),
		Author:       cfg.Author,
		Config:       &cfg.Config,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		OsVersion:    cfg.OSVersion,
		Size:         img.GetSize(),
		RootFS:       image.RootFS{Type: "layers", Layers: img.GetDiffIds()},
	}
	if cfg.Created != nil {
		out.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	if t := img.GetLastTagTime(); t != nil {
		out.Metadata.LastTagTime = t.AsTime()
	}
	if dirs := img.GetLayerDirs(); len(dirs) > 0 {
		data := map[string]string{"MergedDir": "", "UpperDir": dirs[0], "WorkDir": ""}
		if len(dirs) > 1 {
			data["LowerDir"] = strings.Join(dirs[1:], ":")
		}
		out.GraphDriver = &storage.DriverData{Name: "overlay2", Data: data}
	}
	return out, nil
}

func historyComment(cfg dockerspec.DockerOCIImage) string {
	if n := len(cfg.History); n > 0 {
		return cfg.History[n-1].Comment
	}
	return ""
}

// progressMessage is a line of Docker's JSON progress stream; "error" and
// "progress" are the deprecated fields older clients still read.
type progressMessage struct {
	jsonstream.Message
	ErrorMessage    string `json:"error,omitempty"`
	ProgressMessage string `json:"progress,omitempty"`
}

func progressLine(p *enginev1.Progress) progressMessage {
	m := progressMessage{Message: jsonstream.Message{ID: p.GetId(), Status: p.GetStatus()}}
	if p.GetTotal() > 0 || p.GetCurrent() > 0 {
		m.Progress = &jsonstream.Progress{Current: p.GetCurrent(), Total: p.GetTotal()}
	}
	if a := p.GetAux(); a != nil {
		raw, _ := json.Marshal(map[string]any{"Tag": a.GetTag(), "Digest": a.GetDigest(), "Size": a.GetSize()})
		aux := json.RawMessage(raw)
		m.Aux = &aux
	}
	return m
}

// streamJSON answers with Docker's NDJSON stream. An error before the first
// message is an HTTP status; later ones go in-band, as dockerd does.
func streamJSON[T any](w http.ResponseWriter, recv func() (T, error), line func(T) any) {
	first, err := recv()
	if err != nil && !errors.Is(err, io.EOF) {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	if errors.Is(err, io.EOF) {
		return
	}
	msg := first
	for {
		if err := enc.Encode(line(msg)); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		msg, err = recv()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			text := grpcMessage(err)
			enc.Encode(progressMessage{Message: jsonstream.Message{Error: &jsonstream.Error{Message: text}}, ErrorMessage: text})
			return
		}
	}
}

// registryAuth decodes X-Registry-Auth (base64url JSON; dockerd also
// accepts standard base64).
func registryAuth(r *http.Request) (*enginev1.RegistryAuth, error) {
	h := r.Header.Get("X-Registry-Auth")
	if h == "" {
		return nil, nil
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if raw, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("invalid X-Registry-Auth header: %w", err)
	}
	var a registry.AuthConfig
	if len(strings.TrimSpace(string(raw))) > 0 && string(raw) != "{}" {
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("invalid X-Registry-Auth header: %w", err)
		}
	}
	return &enginev1.RegistryAuth{Username: a.Username, Password: a.Password, ServerAddress: a.ServerAddress,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}, nil
}

// imageCreate is POST /images/create: pull (fromImage) or import (fromSrc).
func (h *handlers) imageCreate(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		h.imageImport(w, r)
		return
	}
	from := q.Get("fromImage")
	if from == "" {
		writeError(w, http.StatusBadRequest, "fromImage or fromSrc must be set")
		return
	}
	auth, err := registryAuth(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	stream, err := h.engine.ImagePull(r.Context(), &enginev1.ImagePullRequest{Image: from, Tag: q.Get("tag"), Platform: q.Get("platform"), Auth: auth})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	streamJSON(w, stream.Recv, func(p *enginev1.Progress) any { return progressLine(p) })
}
