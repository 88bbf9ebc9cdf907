// Package shim is the service the shim binary runs for one container: it
// creates and starts the container with runc's libcontainer, is the parent
// (and child subreaper) of its processes, copies their output into the
// json-file log, and records how the init process exited before telling
// anyone. It imports nothing of gRPC or the gateway: every package here
// is initialised again in each container's init re-exec.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/engined/engined/internal/exitfile"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/logs"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// ProtocolVersion is the newest Shim protocol this build speaks.
// Version 2 gives the container and its state directory in Create (a
// shim is started before it has a container), and adds execs and events.
const ProtocolVersion = 2

// Service is one container's shim.
type Service struct {
	runcRoot string

	// startMu is held across libcontainer calls that start and wait for
	// their own helper processes; the reaper takes it too, so it never
	// steals an exit libcontainer is waiting for.
	startMu sync.Mutex

	mu        sync.Mutex
	id        string
	stateDir  string
	container *libcontainer.Container
	started   bool
	// paused follows Pause and Resume, for Connect.
	paused bool
	init   *process
	execs  map[string]*process
	logw   *logs.Writer

	// clients counts the open client connections (see ClientConnected).
	clients int

	events eventLog
	// Done is closed when the shim should exit (after Delete).
	Done chan struct{}
}

// process is the container's init or one exec'd process.
type process struct {
	execID  string
	lc      *libcontainer.Process
	pid     int
	stdin   io.WriteCloser
	console console.Console
	copies  sync.WaitGroup
	// output carries an exec's output to Output; nil for the init, whose
	// output goes to the log.
	output  chan *shimv1.OutputChunk
	started bool
	exit    *shimv1.ExitStatus
	exited  chan struct{}
	// An exec's stdio, as registered.
	openStdin, tty bool
}

// New returns a shim service that keeps libcontainer's state under
// runcRoot; Create gives it its container.
func New(runcRoot string) *Service {
	return &Service{runcRoot: runcRoot, execs: map[string]*process{}, Done: make(chan struct{})}
}

var _ shimv1.ShimService = (*Service)(nil)

func (s *Service) Connect(ctx context.Context, req *shimv1.ConnectRequest) (*shimv1.ConnectResponse, error) {
	// The shim's own view, not libcontainer's Status: that reads the
	// cgroup and /proc, and engined connects to every shim at once when
	// it starts (it halved the time to reattach 100 containers).
	resp := &shimv1.ConnectResponse{
		ProtocolVersion: min(req.GetProtocolVersion(), ProtocolVersion),
		ShimPid:         uint32(os.Getpid()),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.init == nil {
		return resp, nil
	}
	resp.TaskPid = uint32(s.init.pid)
	switch {
	case s.init.exit != nil:
		resp.Status = shimv1.Status_STATUS_STOPPED
	case s.paused:
		resp.Status = shimv1.Status_STATUS_PAUSED
	case s.started:
		resp.Status = shimv1.Status_STATUS_RUNNING
	default:
		resp.Status = shimv1.Status_STATUS_CREATED
	}
	return resp, nil
}

func (s *Service) Create(ctx context.Context, req *shimv1.CreateRequest) (*shimv1.CreateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container != nil {
		return nil, errors.New("container already created")
	}
	if req.GetId() == "" || !filepath.IsAbs(req.GetStateDir()) {
		return nil, errors.New("create needs the container id and an absolute state directory")
	}
	s.id, s.stateDir = req.GetId(), req.GetStateDir()
	redirectStderr(filepath.Join(s.stateDir, "shim.log"))
	spec, err := readSpec(req.GetSpecPath())
	if err != nil {
		return nil, err
	}
	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: s.id, Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("container config: %w", err)
	}
	logw, err := logs.NewWriter(logs.Config{Path: req.GetLogPath(), MaxSize: req.GetLogMaxSize(), MaxFiles: int(req.GetLogMaxFiles())})
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	c, err := libcontainer.Create(s.runcRoot, s.id, config)
	if err != nil {
		logw.Close()
		return nil, fmt.Errorf("create container: %w", err)
	}
	lp, err := newLibcontainerProcess(spec.Process, true)
	if err != nil {
		return nil, s.failCreate(c, logw, err)
	}
	p := &process{lc: lp, exited: make(chan struct{})}
	sink := func(stream string, r io.Reader) { logw.Copy(stream, r) }
	if err := s.startProcess(c, p, req.GetStdin(), req.GetTty(), true, true, sink); err != nil {
		return nil, s.failCreate(c, logw, err)
	}
	s.container, s.logw, s.init = c, logw, p
	return &shimv1.CreateResponse{Pid: uint32(p.pid)}, nil
}

func readSpec(path string) (*specs.Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	if spec.Process == nil {
		return nil, errors.New("spec has no process")
	}
	return &spec, nil
}

// redirectStderr points the shim's own log at its container's state
// directory once it has one.
func redirectStderr(path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	unix.Dup3(int(f.Fd()), 2, 0)
	f.Close()
}

// newLibcontainerProcess translates an OCI process.
func newLibcontainerProcess(sp *specs.Process, init bool) (*libcontainer.Process, error) {
	p := &libcontainer.Process{
		Args: sp.Args, Env: sp.Env, Cwd: sp.Cwd,
		UID: int(sp.User.UID), GID: int(sp.User.GID), Init: init,
	}
	if len(p.Args) == 0 {
		return nil, errors.New("process has no command")
	}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	if c := sp.Capabilities; c != nil && !init {
		p.Capabilities = &configs.Capabilities{Bounding: c.Bounding, Effective: c.Effective,
			Inheritable: c.Inheritable, Permitted: c.Permitted, Ambient: c.Ambient}
	}
	if !init && sp.NoNewPrivileges {
		nnp := true
		p.NoNewPrivileges = &nnp
	}
	// libcontainer takes the init's rlimits from the Process only.
	for _, rl := range sp.Rlimits {
		n, ok := rlimits[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		p.Rlimits = append(p.Rlimits, configs.Rlimit{Type: n, Soft: rl.Soft, Hard: rl.Hard})
	}
	return p, nil
}

// startProcess wires p's stdio (pipes, or a terminal through a console
// socket), starts it in the container, and copies its output to sink.
// For the init, libcontainer's Start leaves it waiting for Exec.
func (s *Service) startProcess(c *libcontainer.Container, p *process, stdin, tty, stdout, stderr bool, sink func(stream string, r io.Reader)) error {
	// The container's ends of its stdio, closed here once it has them.
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	var consoleParent *os.File
	if tty {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			return err
		}
		p.lc.ConsoleSocket, consoleParent = child, parent
		childEnds = append(childEnds, child)
		defer parent.Close()
	} else {
		for _, stream := range []string{"stdout", "stderr"} {
			want := stdout
			if stream == "stderr" {
				want = stderr
			}
			var w *os.File
			if !want {
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					return err
				}
				w = null
			} else {
				r, pw, err := os.Pipe()
				if err != nil {
					return err
				}
				w = pw
				p.copies.Add(1)
				go func() {
					defer p.copies.Done()
					defer r.Close()
					sink(stream, r)
				}()
			}
			childEnds = append(childEnds, w)
			if stream == "stdout" {
				p.lc.Stdout = w
			} else {
				p.lc.Stderr = w
			}
		}
		if stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			childEnds = append(childEnds, r)
			p.lc.Stdin, p.stdin = r, w
		}
	}
	s.startMu.Lock()
	stopWatch := watchHungStart()
	err := c.Start(p.lc)
	stopWatch()
	if err == nil {
		p.pid, err = p.lc.Pid()
	}
	s.startMu.Unlock()
	if err != nil {
		if p.stdin != nil {
			p.stdin.Close()
		}
		return fmt.Errorf("start process: %w", err)
	}
	if consoleParent != nil {
		f, err := utils.RecvFile(consoleParent)
		if err != nil {
			return fmt.Errorf("receive the terminal: %w", err)
		}
		con, err := console.ConsoleFromFile(f)
		if err != nil {
			return err
		}
		p.console, p.stdin = con, con
		p.copies.Add(1)
		go func() {
			defer p.copies.Done()
			sink("stdout", con)
		}()
	}
	return nil
}

// watchHungStart kills, while a process starts, any child of the shim
// whose thread-group leader has died while its other threads live. A
// seccomp profile whose action is SCMP_ACT_KILL (which kills the thread,
// not the process) ends the init's main thread at its first denied call;
// its Go threads keep its end of libcontainer's sync socket open, and
// Start would wait on that socket for ever. Killed, the process closes
// the socket and Start fails. The returned func stops the watch.
func watchHungStart() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, pid := range childPids() {
					if leaderDeadThreadsLive(pid) {
						unix.Kill(pid, unix.SIGKILL)
					}
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// childPids lists the shim's children, from every thread's children file
// (a child belongs to the thread that forked it, or to the subreaper).
func childPids() []int {
	tasks, _ := os.ReadDir("/proc/self/task")
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// leaderDeadThreadsLive reads /proc/PID/stat: state Z (the leader has
// exited) with more than one thread counted.
func leaderDeadThreadsLive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The fields after the command, which may hold spaces, in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[17] field 20 (num_threads).
	if len(f) < 18 || f[0] != "Z" {
		return false
	}
	n, err := strconv.Atoi(f[17])
	return err == nil && n > 1
}

func (s *Service) failCreate(c *libcontainer.Container, logw *logs.Writer, err error) error {
	c.Destroy()
	logw.Close()
	return err
}

// process returns the init (execID "") or a registered exec.
func (s *Service) process(execID string) (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if execID == "" {
		if s.init == nil {
			return nil, errNotCreated
		}
		return s.init, nil
	}
	p := s.execs[execID]
	if p == nil {
		return nil, fmt.Errorf("no such exec %q", execID)
	}
	return p, nil
}

var errNotCreated = errors.New("container not created")

// releaseAfterStart is how long after the container's start its shim
// gives back the memory the start used.
const releaseAfterStart = time.Second

func (s *Service) Start(ctx context.Context, req *shimv1.StartRequest) (*shimv1.StartResponse, error) {
	if req.GetExecId() != "" {
		return s.startExec(req.GetExecId())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container == nil {
		return nil, errNotCreated
	}
	if s.started {
		return nil, errors.New("container already started")
	}
	if err := s.container.Exec(); err != nil {
		return nil, fmt.Errorf("start container: %w", err)
	}
	s.started, s.init.started = true, true
	s.watchOOM()
	// What creating the container allocated is garbage now, and the
	// shim idles from here on, most often for the container's whole
	// life: the runtime would keep those pages (its scavenger returns
	// only what exceeds the heap goal, and a shim's goal is never
	// reached again), so they are collected and given back once, after
	// the start has settled.
	time.AfterFunc(releaseAfterStart, debug.FreeOSMemory)
	return &shimv1.StartResponse{Pid: uint32(s.init.pid)}, nil
}

// watchOOM publishes an event each time the OOM killer acts in the
// container's cgroup, until the container is gone.
func (s *Service) watchOOM() {
	ch, err := s.container.NotifyOOM()
	if err != nil {
		return
	}
	go func() {
		for range ch {
			s.events.publish(&shimv1.Event{Kind: shimv1.Event_KIND_OOM})
		}
	}()
}

func (s *Service) State(ctx context.Context, req *shimv1.StateRequest) (*shimv1.StateResponse, error) {
	if req.GetExecId() != "" {
		p, err := s.process(req.GetExecId())
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		resp := &shimv1.StateResponse{Pid: uint32(p.pid), Exit: p.exit, Status: shimv1.Status_STATUS_CREATED}
		if p.exit != nil {
			resp.Status = shimv1.Status_STATUS_STOPPED
		} else if p.started {
			resp.Status = shimv1.Status_STATUS_RUNNING
		}
		return resp, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &shimv1.StateResponse{}
	switch {
	case s.init == nil:
		resp.Status = shimv1.Status_STATUS_UNSPECIFIED
		return resp, nil
	case s.init.exit != nil:
		resp.Status = shimv1.Status_STATUS_STOPPED
	default:
		st, err := s.container.Status()
		if err != nil {
			return nil, err
		}
		switch st {
		case libcontainer.Created:
			resp.Status = shimv1.Status_STATUS_CREATED
		case libcontainer.Running:
			resp.Status = shimv1.Status_STATUS_RUNNING
		case libcontainer.Paused:
			resp.Status = shimv1.Status_STATUS_PAUSED
		default:
			resp.Status = shimv1.Status_STATUS_STOPPED
		}
	}
	resp.Pid, resp.Exit = uint32(s.init.pid), s.init.exit
	return resp, nil
}

func (s *Service) Kill(ctx context.Context, req *shimv1.KillRequest) (*shimv1.KillResponse, error) {
	sig := syscall.Signal(req.GetSignal())
	if req.GetExecId() != "" {
		p, err := s.process(req.GetExecId())
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		running := p.started && p.exit == nil
		s.mu.Unlock()
		if !running {
			return nil, errNotRunning
		}
		if err := p.lc.Signal(sig); err != nil {
			return nil, fmt.Errorf("signal %d: %w", sig, err)
		}
		return &shimv1.KillResponse{}, nil
	}
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	if err := c.Signal(sig); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return nil, errNotRunning
		}
		return nil, fmt.Errorf("signal %d: %w", sig, err)
	}
	return &shimv1.KillResponse{}, nil
}

func (s *Service) Exec(ctx context.Context, req *shimv1.ExecRequest) (*shimv1.ExecResponse, error) {
	if req.GetExecId() == "" {
		return nil, errors.New("exec needs an id")
	}
	var sp specs.Process
	if err := json.Unmarshal(req.GetProcess(), &sp); err != nil {
		return nil, fmt.Errorf("parse exec process: %w", err)
	}
	lp, err := newLibcontainerProcess(&sp, false)
	if err != nil {
		return nil, err
	}
	if _, err := s.live(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.execs[req.GetExecId()] != nil {
		return nil, fmt.Errorf("exec %q already exists", req.GetExecId())
	}
	s.execs[req.GetExecId()] = &process{execID: req.GetExecId(), lc: lp, exited: make(chan struct{}),
		output: make(chan *shimv1.OutputChunk, 16), openStdin: req.GetStdin(), tty: req.GetTty()}
	return &shimv1.ExecResponse{}, nil
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// live returns the container while its init has not exited.
func (s *Service) live() (*libcontainer.Container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container == nil || s.init.exit != nil {
		return nil, errNotRunning
	}
	return s.container, nil
}

// errNotRunning's text is matched by engined.
var errNotRunning = errors.New("container is not running")

func (s *Service) startExec(execID string) (*shimv1.StartResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	p, err := s.process(execID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if p.started {
		s.mu.Unlock()
		return nil, fmt.Errorf("exec %q already started", execID)
	}
	p.started = true
	s.mu.Unlock()
	sink := func(stream string, r io.Reader) {
		n := uint32(1)
		if stream == "stderr" {
			n = 2
		}
		buf := make([]byte, 32<<10)
		for {
			k, err := r.Read(buf)
			if k > 0 {
				p.output <- &shimv1.OutputChunk{Stream: n, Data: append([]byte(nil), buf[:k]...)}
			}
			if err != nil {
				return
			}
		}
	}
	if err := s.startProcess(c, p, p.openStdin, p.tty, true, true, sink); err != nil {
		s.mu.Lock()
		delete(s.execs, execID)
		s.mu.Unlock()
		close(p.output)
		return nil, err
	}
	return &shimv1.StartResponse{Pid: uint32(p.pid)}, nil
}

func (s *Service) Output(ctx context.Context, req *shimv1.OutputRequest, stream shimv1.Shim_OutputServer) error {
	p, err := s.process(req.GetExecId())
	if err != nil {
		return err
	}
	if p.output == nil {
		return errors.New("the init process's output goes to the log")
	}
	for {
		select {
		case chunk, ok := <-p.output:
			if !ok {
				return nil
			}
			if err := stream.Send(chunk); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Service) Wait(ctx context.Context, req *shimv1.WaitRequest) (*shimv1.WaitResponse, error) {
	p, err := s.process(req.GetExecId())
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &shimv1.WaitResponse{Exit: p.exit}, nil
}

func (s *Service) Events(ctx context.Context, req *shimv1.EventsRequest) (*shimv1.EventsResponse, error) {
	evs, err := s.events.after(ctx, req.GetAfter())
	if err != nil {
		return nil, err
	}
	return &shimv1.EventsResponse{Events: evs}, nil
}

func (s *Service) Pids(ctx context.Context, _ *shimv1.PidsRequest) (*shimv1.PidsResponse, error) {
	s.mu.Lock()
	c := s.container
	s.mu.Unlock()
	if c == nil {
		return &shimv1.PidsResponse{}, nil
	}
	pids, err := c.Processes()
	if err != nil {
		return nil, err
	}
	resp := &shimv1.PidsResponse{}
	for _, p := range pids {
		resp.Pids = append(resp.Pids, uint32(p))
	}
	return resp, nil
}

func (s *Service) Pause(ctx context.Context, _ *shimv1.PauseRequest) (*shimv1.PauseResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	if err := c.Pause(); err != nil {
		return nil, err
	}
	s.setPaused(true)
	return &shimv1.PauseResponse{}, nil
}

func (s *Service) setPaused(p bool) {
	s.mu.Lock()
	s.paused = p
	s.mu.Unlock()
}

func (s *Service) Resume(ctx context.Context, _ *shimv1.ResumeRequest) (*shimv1.ResumeResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	if err := c.Resume(); err != nil {
		return nil, err
	}
	s.setPaused(false)
	return &shimv1.ResumeResponse{}, nil
}

func (s *Service) WriteStdin(ctx context.Context, req *shimv1.WriteStdinRequest) (*shimv1.WriteStdinResponse, error) {
	p, err := s.process(req.GetExecId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	w := p.stdin
	s.mu.Unlock()
	if w == nil {
		return nil, errors.New("process has no open stdin")
	}
	if _, err := w.Write(req.GetData()); err != nil {
		return nil, err
	}
	return &shimv1.WriteStdinResponse{}, nil
}

func (s *Service) CloseIO(ctx context.Context, req *shimv1.CloseIORequest) (*shimv1.CloseIOResponse, error) {
	p, err := s.process(req.GetExecId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.stdin != nil && p.console == nil {
		p.stdin.Close()
		p.stdin = nil
	}
	return &shimv1.CloseIOResponse{}, nil
}

func (s *Service) ResizePty(ctx context.Context, req *shimv1.ResizePtyRequest) (*shimv1.ResizePtyResponse, error) {
	p, err := s.process(req.GetExecId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	con := p.console
	s.mu.Unlock()
	if con == nil {
		return nil, errors.New("process has no terminal")
	}
	return &shimv1.ResizePtyResponse{}, con.Resize(console.WinSize{Width: uint16(req.GetWidth()), Height: uint16(req.GetHeight())})
}

func (s *Service) Delete(ctx context.Context, _ *shimv1.DeleteRequest) (*shimv1.DeleteResponse, error) {
	s.mu.Lock()
	c, init := s.container, s.init
	s.mu.Unlock()
	var exit *shimv1.ExitStatus
	if c != nil {
		select {
		case <-init.exited:
		default:
			c.Signal(unix.SIGKILL)
			select {
			case <-init.exited:
			case <-time.After(10 * time.Second):
				return nil, errors.New("container did not exit after SIGKILL")
			}
		}
		s.startMu.Lock()
		err := c.Destroy()
		s.startMu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("destroy container: %w", err)
		}
		s.mu.Lock()
		exit = init.exit
		if s.logw != nil {
			s.logw.Close()
		}
		s.mu.Unlock()
	}
	s.end()
	return &shimv1.DeleteResponse{Exit: exit}, nil
}

func (s *Service) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
}

func (s *Service) endLocked() {
	select {
	case <-s.Done:
	default:
		close(s.Done)
	}
}

// ClientConnected and ClientGone follow the client connections. A shim
// is started before it has a container, and until Create its only
// client is the engined that started it: if that connection ends, that
// engined is gone, and no later engined hands the shim a container (it
// ends the idle shims its pool recorded, but one started just before a
// kill was never recorded, and a removed root's are never looked for).
// So a shim without a container ends when it has no client left.
func (s *Service) ClientConnected() {
	s.mu.Lock()
	s.clients++
	s.mu.Unlock()
}

func (s *Service) ClientGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients--
	s.endIfUnwantedLocked()
}

// EndIfUnwanted ends a shim that has no container and no client. serve
// also calls it a while after it starts, for a shim whose engined died
// before it dialled.
func (s *Service) EndIfUnwanted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endIfUnwantedLocked()
}

func (s *Service) endIfUnwantedLocked() {
	if s.container == nil && s.clients == 0 {
		s.endLocked()
	}
}

// Reap is the child-reaper loop: it collects every exited child of the
// shim (it is their subreaper) and records how the container's processes
// exited. It returns when ctx is done.
func (s *Service) Reap(ctx context.Context, sigchld <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigchld:
		}
		s.reapAll()
	}
}

func (s *Service) reapAll() {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		if err != nil || pid <= 0 {
			return
		}
		s.mu.Lock()
		var p *process
		if s.init != nil && pid == s.init.pid && s.init.exit == nil {
			p = s.init
		}
		for _, e := range s.execs {
			if e.started && pid == e.pid && e.exit == nil {
				p = e
			}
		}
		s.mu.Unlock()
		if p != nil {
			s.exited(p, ws)
		}
	}
}

// exited drains the process's output, records its status (for the init,
// in exit.json first) and only then tells anyone.
func (s *Service) exited(p *process, ws unix.WaitStatus) {
	exit := &shimv1.ExitStatus{ExitedAtUnixNano: time.Now().UnixNano()}
	switch {
	case ws.Exited():
		exit.Code = int32(ws.ExitStatus())
	case ws.Signaled():
		exit.Signal = int32(ws.Signal())
		exit.Code = 128 + int32(ws.Signal())
	}
	// The output pipes close when the last process holding them is gone;
	// bound the wait in case a leaked descendant keeps one open.
	drained := make(chan struct{})
	go func() { p.copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	ev := &shimv1.Event{Kind: shimv1.Event_KIND_EXEC_EXIT, ExecId: p.execID, Pid: uint32(p.pid), Exit: exit}
	if p.execID == "" {
		ev.Kind = shimv1.Event_KIND_EXIT
		exit.OomKilled = s.oomKilled()
		if err := exitfile.Write(s.stateDir, exit); err != nil {
			fmt.Fprintln(os.Stderr, "shim: write exit status:", err)
		}
	} else {
		// Output ends once the copies are done or given up on.
		go func() { <-drained; close(p.output) }()
	}
	s.mu.Lock()
	p.exit = exit
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	s.mu.Unlock()
	close(p.exited)
	s.events.publish(ev)
}

// oomKilled reports whether the kernel's OOM killer acted in the
// container's memory cgroup.
func (s *Service) oomKilled() bool {
	s.mu.Lock()
	c := s.container
	s.mu.Unlock()
	if c == nil {
		return false
	}
	st, err := c.State()
	if err != nil {
		return false
	}
	if p := st.CgroupPaths["memory"]; p != "" {
		data, err := os.ReadFile(filepath.Join(p, "memory.oom_control"))
		return err == nil && containsOOMKill(string(data))
	}
	if p := st.CgroupPaths[""]; p != "" {
		data, err := os.ReadFile(filepath.Join(p, "memory.events"))
		return err == nil && containsOOMKill(string(data))
	}
	return false
}

func containsOOMKill(s string) bool {
	var n int
	for _, line := range strings.Split(s, "\n") {
		if _, err := fmt.Sscanf(line, "oom_kill %d", &n); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// eventLog numbers events and keeps them until engined acknowledges them.
type eventLog struct {
	mu     sync.Mutex
	seq    uint64
	events []*shimv1.Event
	wake   chan struct{} // closed and replaced when an event is added
}

// maxEvents bounds the events kept for an engined that does not ask.
const maxEvents = 4096

func (l *eventLog) publish(ev *shimv1.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	ev.Seq = l.seq
	l.events = append(l.events, ev)
	if len(l.events) > maxEvents {
		l.events = l.events[len(l.events)-maxEvents:]
	}
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// after drops the events up to n and returns the rest, waiting for one
// if there is none.
func (l *eventLog) after(ctx context.Context, n uint64) ([]*shimv1.Event, error) {
	for {
		l.mu.Lock()
		i := 0
		for i < len(l.events) && l.events[i].GetSeq() <= n {
			i++
		}
		l.events = l.events[i:]
		if len(l.events) > 0 {
			evs := append([]*shimv1.Event(nil), l.events...)
			l.mu.Unlock()
			return evs, nil
		}
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Service) Stats(ctx context.Context, _ *shimv1.StatsRequest) (*shimv1.StatsResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	st, err := c.Stats()
	if err != nil {
		return nil, fmt.Errorf("read container stats: %w", err)
	}
	cg := st.CgroupStats
	if cg == nil {
		return &shimv1.StatsResponse{}, nil
	}
	resp := &shimv1.StatsResponse{
		CpuTotalNs: cg.CpuStats.CpuUsage.TotalUsage, CpuKernelNs: cg.CpuStats.CpuUsage.UsageInKernelmode,
		CpuUserNs: cg.CpuStats.CpuUsage.UsageInUsermode, CpuPercpuNs: cg.CpuStats.CpuUsage.PercpuUsage,
		ThrottlingPeriods: cg.CpuStats.ThrottlingData.Periods, ThrottledPeriods: cg.CpuStats.ThrottlingData.ThrottledPeriods,
		ThrottledTimeNs: cg.CpuStats.ThrottlingData.ThrottledTime,
		MemoryUsage:     cg.MemoryStats.Usage.Usage, MemoryMaxUsage: cg.MemoryStats.Usage.MaxUsage, MemoryLimit: cg.MemoryStats.Usage.Limit,
		MemoryStats: cg.MemoryStats.Stats, PidsCurrent: cg.PidsStats.Current, PidsLimit: cg.PidsStats.Limit,
	}
	return resp, nil
}

func (s *Service) Update(ctx context.Context, req *shimv1.UpdateRequest) (*shimv1.UpdateResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	spec, err := readSpec(req.GetSpecPath())
	if err != nil {
		return nil, err
	}
	next, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: s.id, Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("container config: %w", err)
	}
	cfg := c.Config()
	cfg.Cgroups.Resources = next.Cgroups.Resources
	if err := c.Set(cfg); err != nil {
		return nil, fmt.Errorf("update resources: %w", err)
	}
	return &shimv1.UpdateResponse{}, nil
}

// DeleteExec forgets an exec whose process has exited (or never
// started); a running one stays.
func (s *Service) DeleteExec(ctx context.Context, req *shimv1.DeleteExecRequest) (*shimv1.DeleteExecResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.execs[req.GetExecId()]
	if p == nil {
		return &shimv1.DeleteExecResponse{}, nil
	}
	if p.started && p.exit == nil {
		return nil, fmt.Errorf("exec %q is running", req.GetExecId())
	}
	delete(s.execs, req.GetExecId())
	return &shimv1.DeleteExecResponse{}, nil
}
