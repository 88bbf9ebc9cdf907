package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/status"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/oci"
	"github.com/engined/engined/internal/shimclient"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// An execProc is a process run in a running container. As in dockerd, execs
// live in memory only: they belong to the container's current run.
type execProc struct {
	id          string
	containerID string
	config      *enginev1.ExecConfig

	mu       sync.Mutex
	started  bool
	running  bool
	pid      int
	exitCode *int32
	done     chan struct{} // closed when the process has exited
}

func (e *execProc) inspect() *enginev1.ExecInspectResponse {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &enginev1.ExecInspectResponse{Id: e.id, ContainerId: e.containerID, Running: e.running,
		ExitCode: e.exitCode, Pid: int32(e.pid), Config: e.config}
}

// fail ends an exec whose process could not run with code.
func (e *execProc) fail(code int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exitCode == nil {
		e.exitCode = &code
		close(e.done)
	}
}

// ContainerExecCreate registers an exec in a running container.
func (s *Service) ContainerExecCreate(ctx context.Context, req *enginev1.ContainerExecCreateRequest) (*enginev1.ContainerExecCreateResponse, error) {
	rec, err := s.get(req.GetId())
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	if len(cfg.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument(errors.New("no exec command specified"))
	}
	if k := cfg.GetDetachKeys(); k != "" {
		if _, err := parseDetachKeys(k); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("Invalid escape keys (%s) provided", k))
		}
	}
	if rec.Status == "paused" {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is paused, unpause the container before exec", rec.ID))
	}
	if rec.Status != "running" || s.shim(rec.ID) == nil {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is not running", rec.ID))
	}
	var b [32]byte
	rand.Read(b[:])
	e := &execProc{id: hex.EncodeToString(b[:]), containerID: rec.ID, config: cfg, done: make(chan struct{})}
	s.mu.Lock()
	s.execs[e.id] = e
	s.mu.Unlock()
	s.event(execAction("exec_create", cfg.GetCmd()), rec, map[string]string{"execID": e.id})
	return &enginev1.ContainerExecCreateResponse{Id: e.id}, nil
}

func (s *Service) lookupExec(id string) (*execProc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.execs[id]; e != nil {
		return e, nil
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such exec instance: %s", id))
}

func (s *Service) ExecInspect(ctx context.Context, req *enginev1.ExecInspectRequest) (*enginev1.ExecInspectResponse, error) {
	e, err := s.lookupExec(req.GetId())
	if err != nil {
		return nil, err
	}
	return e.inspect(), nil
}

func (s *Service) ExecResize(ctx context.Context, req *enginev1.ExecResizeRequest) (*enginev1.ExecResizeResponse, error) {
	e, err := s.lookupExec(req.GetId())
	if err != nil {
		return nil, err
	}
	client := s.shim(e.containerID)
	if client == nil {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is not running", e.containerID))
	}
	if _, err := client.ResizePty(ctx, &shimv1.ResizePtyRequest{ExecId: e.id, Width: req.GetW(), Height: req.GetH()}); err != nil {
		return nil, errdefs.Conflict(fmt.Errorf("resize exec %s: %w", e.id, err))
	}
	return &enginev1.ExecResizeResponse{}, nil
}

// ExecStart runs the exec and, unless detached, streams its output until
// it has exited, forwarding stdin.
func (s *Service) ExecStart(stream enginev1.Engine_ExecStartServer) error {
	ctx := stream.Context()
	_, opts, err := firstMessage(stream.Recv, (*enginev1.ExecStartRequest).GetOptions, "exec start")
	if err != nil {
		return err
	}
	e, err := s.lookupExec(opts.GetId())
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("Error: Exec command %s is already running", e.id))
	}
	e.started = true
	e.mu.Unlock()
	started, failed, err := s.startExec(ctx, s.ctx, e, !opts.GetDetach())
	if err != nil {
		return err
	}
	if failed != nil {
		return s.execFailed(e, stream, opts, failed.code, failed.msg)
	}
	client, out, cancelOut, cfg := started.client, started.out, started.cancel, e.config
	if cs := cfg.GetConsoleSize(); cfg.GetTty() && len(cs) == 2 && cs[0] > 0 && cs[1] > 0 {
		client.ResizePty(ctx, &shimv1.ResizePtyRequest{ExecId: e.id, Height: cs[0], Width: cs[1]})
	}
	if err := stream.Send(&enginev1.LogEntry{}); err != nil {
		cancelOut()
		return err
	}
	if opts.GetDetach() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer cancelOut()
			for {
				if _, err := out.Recv(); err != nil {
					return
				}
			}
		}()
		return nil
	}
	// Closed on the detach keys: the stream ends, the process runs on.
	detached := make(chan struct{})
	if cfg.GetAttachStdin() {
		keys, _ := detachKeysFor(cfg.GetTty(), cfg.GetDetachKeys()) // checked at create
		det := &detacher{keys: keys}
		// Owned by the stream: it ends with stdin, on the detach keys or
		// when the call ends.
		go func() {
			for {
				msg, err := stream.Recv()
				if err != nil || msg.GetCloseStdin() {
					if !cfg.GetTty() || errors.Is(err, io.EOF) || msg.GetCloseStdin() {
						client.CloseIO(ctx, &shimv1.CloseIORequest{ExecId: e.id})
					}
					return
				}
				data, done := det.feed(msg.GetStdin())
				if len(data) > 0 {
					client.WriteStdin(ctx, &shimv1.WriteStdinRequest{ExecId: e.id, Data: data})
				}
				if done {
					close(detached)
					return
				}
			}
		}()
	}
	// The reader takes the output to its end whatever becomes of this
	// call: a process whose output nobody reads would block writing it.
	// It hands chunks over until the call returns (stop).
	chunks := make(chan *shimv1.OutputChunk)
	stop := make(chan struct{})
	defer close(stop)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancelOut()
		defer close(chunks)
		for {
			chunk, err := out.Recv()
			if err != nil {
				return
			}
			select {
			case chunks <- chunk:
			case <-stop:
			}
		}
	}()
	for ended := false; !ended; {
		select {
		case chunk, ok := <-chunks:
			if !ok {
				ended = true
				break
			}
			if chunk.GetStream() == 2 && !cfg.GetAttachStderr() || chunk.GetStream() != 2 && !cfg.GetAttachStdout() {
				continue
			}
			if err := stream.Send(&enginev1.LogEntry{Stream: int32(chunk.GetStream()), Data: chunk.GetData()}); err != nil {
				return err
			}
		case <-detached:
			return nil
		}
	}
	// The client asks for the exit code next: have it.
	select {
	case <-e.done:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	return nil
}

// A startedExec is an exec whose process runs: its output comes on out
// until the process closes it, or until cancel.
type startedExec struct {
	client *shimclient.Client
	out    shimv1.Shim_OutputClient
	cancel context.CancelFunc
}

// execFailure is the outcome of an exec whose process could not run.
type execFailure struct {
	code int32
	msg  string
}

// startExec starts a created exec's process in its running container
// (docker exec and health checks alike): the shim registers the
// process, the output stream is opened (under outCtx) before the process
// starts so none of it is missed, then it starts and exec_start is
// logged. A process that cannot run is a failure (the exec's outcome);
// err is the call's own.
func (s *Service) startExec(ctx, outCtx context.Context, e *execProc, stdin bool) (*startedExec, *execFailure, error) {
	client := s.shim(e.containerID)
	rec, err := s.get(e.containerID)
	if err != nil {
		return nil, nil, err
	}
	if client == nil || rec.Status != "running" {
		return nil, nil, errdefs.Conflict(fmt.Errorf("container %s is not running", e.containerID))
	}
	if client.Version < 2 {
		return nil, &execFailure{126, "this container runs under a shim from an older engined, which cannot exec; restart the container to exec in it"}, nil
	}
	cfg := e.config
	proc, err := s.execProcess(rec, cfg)
	if err != nil {
		return nil, &execFailure{126, err.Error()}, nil
	}
	raw, err := json.Marshal(proc)
	if err != nil {
		return nil, nil, err
	}
	if _, err := client.Exec(ctx, &shimv1.ExecRequest{ExecId: e.id, Process: raw, Stdin: cfg.GetAttachStdin() && stdin, Tty: cfg.GetTty()}); err != nil {
		return nil, &execFailure{126, grpcMessage(err)}, nil
	}
	outCtx, cancelOut := context.WithCancel(outCtx)
	out, err := client.Output(outCtx, &shimv1.OutputRequest{ExecId: e.id})
	if err != nil {
		cancelOut()
		return nil, nil, fmt.Errorf("exec output: %w", err)
	}
	resp, err := client.Start(ctx, &shimv1.StartRequest{ExecId: e.id})
	if err != nil {
		cancelOut()
		code := int32(126)
		if msg := grpcMessage(err); strings.Contains(msg, "not found") || strings.Contains(msg, "no such file") {
			code = 127
		}
		return nil, &execFailure{code, "OCI runtime exec failed: " + strings.TrimPrefix(grpcMessage(err), "start process: ")}, nil
	}
	e.mu.Lock()
	e.running, e.pid = true, int(resp.GetPid())
	e.mu.Unlock()
	s.event(execAction("exec_start", cfg.GetCmd()), rec, map[string]string{"execID": e.id})
	return &startedExec{client: client, out: out, cancel: cancelOut}, nil, nil
}

// execAction is an exec event's action as dockerd words it: the
// command's first word, a space, then the rest ("exec_start: true ").
func execAction(kind string, cmd []string) string {
	if len(cmd) == 0 {
		return kind + ":  "
	}
	return kind + ": " + cmd[0] + " " + strings.Join(cmd[1:], " ")
}

// execFailed ends an exec whose process could not run. As with dockerd,
// that is the exec's outcome (126, or 127 for a command not found), and
// the client hears why on the exec's stderr.
func (s *Service) execFailed(e *execProc, stream enginev1.Engine_ExecStartServer, opts *enginev1.ExecStartOptions, code int32, msg string) error {
	e.fail(code)
	if err := stream.Send(&enginev1.LogEntry{}); err != nil || opts.GetDetach() {
		return err
	}
	return stream.Send(&enginev1.LogEntry{Stream: 2, Data: []byte(msg + "\n")})
}

// execProcess is the exec's OCI process: the container's, with the
// exec's command, environment, user, directory and terminal.
func (s *Service) execProcess(rec *Record, cfg *enginev1.ExecConfig) (*specs.Process, error) {
	data, err := os.ReadFile(filepath.Join(s.stateDir(rec.ID), "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read the container's spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("parse the container's spec: %v", err)
	}
	p := *spec.Process
	p.Args = cfg.GetCmd()
	p.Terminal = cfg.GetTty()
	p.ConsoleSize = nil
	p.Env = oci.MergeEnv(p.Env, cfg.GetEnv())
	if cfg.GetWorkingDir() != "" {
		p.Cwd = cfg.GetWorkingDir()
	}
	if cfg.GetUser() != "" {
		uid, gid, groups, _, err := oci.ResolveUser(spec.Root.Path, cfg.GetUser())
		if err != nil {
			return nil, fmt.Errorf("unable to find user %s: %w", cfg.GetUser(), err)
		}
		p.User = specs.User{UID: uid, GID: gid, AdditionalGids: groups}
	}
	p.Capabilities = oci.ExecCapabilities(p.Capabilities, cfg.GetPrivileged())
	// p.Rlimits stay the container's (--ulimit): an exec'd process is the
	// shim's child, not the init's, and inherits nothing from the init;
	// libcontainer sets the process's rlimits on it as on the init.
	return &p, nil
}

// execExited records how an exec'd process exited.
func (s *Service) execExited(id, execID string, st *shimv1.ExitStatus) {
	e, err := s.lookupExec(execID)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exitCode != nil {
		return // replayed
	}
	code := st.GetCode()
	e.exitCode, e.running = &code, false
	// Logged before anyone waiting hears of the exit: a health check's
	// health_status comes after its probe's exec_die, as with dockerd.
	s.eventIf(nil, "exec_die", id, map[string]string{"execID": execID, "exitCode": strconv.Itoa(int(code))})
	close(e.done)
}

// dropExecs forgets a container's execs when it stops, as dockerd does.
func (s *Service) dropExecs(containerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.execs {
		if e.containerID == containerID {
			e.mu.Lock()
			if e.exitCode == nil && e.running {
				code := int32(137)
				e.exitCode, e.running = &code, false
				close(e.done)
			}
			e.mu.Unlock()
			delete(s.execs, id)
		}
	}
}

// grpcMessage is the text of an error from the shim, without ttrpc's
// status wrapping.
func grpcMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
