package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/container"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// containerExecCreate is POST /containers/{id}/exec.
func (h *handlers) containerExecCreate(w http.ResponseWriter, r *http.Request, p map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if strings.TrimSpace(string(body)) == "" {
		writeError(w, http.StatusBadRequest, "invalid JSON: the request body is empty")
		return
	}
	var o container.ExecCreateRequest
	if err := json.Unmarshal(body, &o); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON: %v", err))
		return
	}
	cfg := &enginev1.ExecConfig{Cmd: o.Cmd, Env: o.Env, User: o.User, WorkingDir: o.WorkingDir, Tty: o.Tty,
		Privileged: o.Privileged, AttachStdin: o.AttachStdin, AttachStdout: o.AttachStdout, AttachStderr: o.AttachStderr,
		DetachKeys: o.DetachKeys}
	if o.ConsoleSize != nil {
		cfg.ConsoleSize = []uint32{uint32(o.ConsoleSize[0]), uint32(o.ConsoleSize[1])}
	}
	resp, err := h.engine.ContainerExecCreate(r.Context(), &enginev1.ContainerExecCreateRequest{Id: p["id"], Config: cfg})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(container.ExecCreateResponse{ID: resp.GetId()})
}

// execStart is POST /exec/{id}/start: detached, a plain 200; attached,
// the connection is hijacked as for attach.
func (h *handlers) execStart(w http.ResponseWriter, r *http.Request, p map[string]string) {
	// Not r.Context(): net/http cancels that when the client half-closes
	// its side, which is how a client ends stdin on a hijacked stream.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	var o container.ExecStartRequest
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if strings.TrimSpace(string(body)) != "" {
		if err := json.Unmarshal(body, &o); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON: %v", err))
			return
		}
	}
	ins, err := h.engine.ExecInspect(ctx, &enginev1.ExecInspectRequest{Id: p["id"]})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	opts := &enginev1.ExecStartOptions{Id: p["id"], Detach: o.Detach, Tty: o.Tty}
	if o.ConsoleSize != nil {
		opts.ConsoleSize = []uint32{uint32(o.ConsoleSize[0]), uint32(o.ConsoleSize[1])}
	}
	stream, err := h.engine.ExecStart(ctx)
	if err == nil {
		err = stream.Send(&enginev1.ExecStartRequest{Options: opts})
	}
	if err == nil {
		// The first reply says the process started; errors come instead.
		_, err = stream.Recv()
	}
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	if o.Detach {
		stream.CloseSend()
		w.WriteHeader(http.StatusOK)
		return
	}
	// The framing follows this request's Tty, not the exec's: dockerd
	// multiplexes unless the start asked for a terminal stream.
	hijack(w, r, o.Tty, ins.GetConfig().GetAttachStdin(), hijackedStream{
		sendStdin:  func(b []byte) error { return stream.Send(&enginev1.ExecStartRequest{Stdin: b}) },
		closeStdin: func() { stream.Send(&enginev1.ExecStartRequest{CloseStdin: true}) },
		closeSend:  func() { stream.CloseSend() },
		recv:       stream.Recv,
	})
}

func init() {
	registerResponse(func(_ context.Context, m *enginev1.ExecInspectResponse) (any, error) {
		c := m.GetConfig()
		out := container.ExecInspectResponse{
			ID: m.GetId(), ContainerID: m.GetContainerId(), Running: m.GetRunning(), Pid: int(m.GetPid()),
			OpenStdin: c.GetAttachStdin(), OpenStdout: c.GetAttachStdout(), OpenStderr: c.GetAttachStderr(),
			DetachKeys: []byte(c.GetDetachKeys()), CanRemove: false,
			ProcessConfig: &container.ExecProcessConfig{Tty: c.GetTty(), Privileged: &c.Privileged, User: c.GetUser()},
		}
		if m.ExitCode != nil {
			code := int(m.GetExitCode())
			out.ExitCode = &code
		}
		if cmd := c.GetCmd(); len(cmd) > 0 {
			out.ProcessConfig.Entrypoint, out.ProcessConfig.Arguments = cmd[0], nonNil(cmd[1:])
		}
		return out, nil
	})
	registerResponse(func(context.Context, *enginev1.ExecResizeResponse) (any, error) { return noBody{}, nil })
}
