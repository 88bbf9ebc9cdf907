package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/moby/moby/api/types/jsonstream"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// uploadChunk is the size of request-body pieces sent to the engine.
const uploadChunk = 1 << 20

// upload streams a request body to a client-streaming Engine call and
// returns its reply. The engine's error, if any, explains a failed send.
func upload[Resp any](body io.Reader, send func([]byte) error, closeAndRecv func() (Resp, error)) (Resp, error) {
	sendErr := sendBody(body, send)
	resp, err := closeAndRecv()
	if err == nil && sendErr != nil {
		err = sendErr
	}
	return resp, err
}

func sendBody(body io.Reader, send func([]byte) error) error {
	buf := make([]byte, uploadChunk)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if serr := send(append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// imageImport is POST /images/create?fromSrc=-: the body is a root
// filesystem tar. (fromSrc=URL would make the engine fetch from the
// network; it is refused.)
func (h *handlers) imageImport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("fromSrc") != "-" {
		writeError(w, http.StatusBadRequest, "fromSrc must be \"-\" (the request body); importing from a URL is not supported")
		return
	}
	stream, err := h.engine.ImageImport(r.Context())
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	opts := &enginev1.ImageImportOptions{Repo: q.Get("repo"), Tag: q.Get("tag"), Message: q.Get("message"), Changes: q["changes"], Platform: q.Get("platform")}
	if err := stream.Send(&enginev1.ImageImportRequest{Options: opts}); err != nil {
		writeGRPCError(w, err)
		return
	}
	resp, err := upload(r.Body, func(b []byte) error { return stream.Send(&enginev1.ImageImportRequest{Data: b}) }, stream.CloseAndRecv)
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(jsonstream.Message{Status: resp.GetId()})
}

// imagePush is POST /images/{name}/push.
func (h *handlers) imagePush(w http.ResponseWriter, r *http.Request, p map[string]string) {
	auth, err := registryAuth(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	stream, err := h.engine.ImagePush(r.Context(), &enginev1.ImagePushRequest{Name: p["name"], Tag: r.URL.Query().Get("tag"), Auth: auth})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	streamJSON(w, stream.Recv, func(p *enginev1.Progress) any { return progressLine(p) })
}

// imageSave is GET /images/get?names=... and GET /images/{name}/get.
func (h *handlers) imageSave(w http.ResponseWriter, r *http.Request, p map[string]string) {
	names := r.URL.Query()["names"]
	if n := p["name"]; n != "" {
		names = []string{n}
	}
	stream, err := h.engine.ImageSave(r.Context(), &enginev1.ImageSaveRequest{Names: names})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	h.writeTar(w, "image save", stream.Recv)
}

// writeTar writes a tar streamed by the engine as the response body. An
// error before the first chunk is an HTTP status; a later one cuts the
// connection, so the client sees a truncated archive, not a short one
// that looks whole.
func (h *handlers) writeTar(w http.ResponseWriter, what string, recv func() (*enginev1.Chunk, error)) {
	first, err := recv()
	if err != nil && !errors.Is(err, io.EOF) {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	for err == nil {
		if _, werr := w.Write(first.GetData()); werr != nil {
			return
		}
		first, err = recv()
	}
	if !errors.Is(err, io.EOF) {
		h.log.Warn(what+" failed mid-stream", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// imageLoad is POST /images/load. As dockerd, it answers 200 with an
// NDJSON stream (chunked, not a Content-Length body) and reports a bad
// archive in the stream as an errorDetail message. dockerd's per-layer
// "Loading layer" progress (left out with ?quiet=1) is not produced: the
// engine reports what it loaded once it has, so quiet changes nothing.
func (h *handlers) imageLoad(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	stream, err := h.engine.ImageLoad(r.Context())
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	resp, err := upload(r.Body, func(b []byte) error { return stream.Send(&enginev1.Chunk{Data: b}) }, stream.CloseAndRecv)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	write := func(v any) {
		enc.Encode(v)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if err != nil {
		text := grpcMessage(err)
		write(progressMessage{Message: jsonstream.Message{Error: &jsonstream.Error{Message: text}}, ErrorMessage: text})
		return
	}
	for _, l := range resp.GetLoaded() {
		write(jsonstream.Message{Stream: l + "\n"})
	}
	if flusher != nil {
		flusher.Flush() // an empty load is a stream too
	}
}
