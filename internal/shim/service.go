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
	"io"
	"os"
	"path/filepath"
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
const ProtocolVersion = 1

// ExitFile is where the exit status is written, in the state directory,
// before anyone is told: engined reads it after a restart.
const ExitFile = "exit.json"

// Service is one container's shim.
type Service struct {
	id       string
	stateDir string
	runcRoot string

	// startMu is held across libcontainer calls that start and wait for
	// their own helper processes; the reaper takes it too, so it never
	// steals an exit libcontainer is waiting for.
	startMu sync.Mutex

	mu        sync.Mutex
	container *libcontainer.Container
	initPid   int
	started   bool
	stdin     io.WriteCloser
	console   console.Console
	logw      *logs.Writer
	copies    sync.WaitGroup
	exit      *shimv1.ExitStatus
	exited    chan struct{}
	// Done is closed when the shim should exit (after Delete).
	Done chan struct{}
}

// New returns the service for container id, keeping libcontainer's state
// under runcRoot.
func New(id, stateDir, runcRoot string) *Service {
	return &Service{id: id, stateDir: stateDir, runcRoot: runcRoot, exited: make(chan struct{}), Done: make(chan struct{})}
}

var _ shimv1.ShimService = (*Service)(nil)

func (s *Service) Connect(ctx context.Context, req *shimv1.ConnectRequest) (*shimv1.ConnectResponse, error) {
	st, _ := s.State(ctx, nil)
	return &shimv1.ConnectResponse{
		ProtocolVersion: min(req.GetProtocolVersion(), ProtocolVersion),
		ShimPid:         uint32(os.Getpid()),
		TaskPid:         st.GetPid(),
		Status:          st.GetStatus(),
	}, nil
}

func (s *Service) Create(ctx context.Context, req *shimv1.CreateRequest) (*shimv1.CreateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container != nil {
		return nil, errors.New("container already created")
	}
	raw, err := os.ReadFile(req.GetSpecPath())
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
	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: s.id, Spec: &spec})
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
	p := &libcontainer.Process{
		Args: spec.Process.Args, Env: spec.Process.Env, Cwd: spec.Process.Cwd,
		UID: int(spec.Process.User.UID), GID: int(spec.Process.User.GID), Init: true,
	}
	for _, g := range spec.Process.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	// libcontainer takes the init's rlimits from the Process only.
	for _, rl := range spec.Process.Rlimits {
		n, ok := rlimits[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		p.Rlimits = append(p.Rlimits, configs.Rlimit{Type: n, Soft: rl.Soft, Hard: rl.Hard})
	}
	// The container's ends of its stdio, closed here once it has them.
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
	}
	var consoleParent *os.File
	if req.GetTty() {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			return nil, s.failCreate(c, logw, err)
		}
		p.ConsoleSocket, consoleParent = child, parent
		childEnds = append(childEnds, child)
		defer parent.Close()
	} else {
		for _, stream := range []string{"stdout", "stderr"} {
			r, w, err := os.Pipe()
			if err != nil {
				closeChildEnds()
				return nil, s.failCreate(c, logw, err)
			}
			childEnds = append(childEnds, w)
			if stream == "stdout" {
				p.Stdout = w
			} else {
				p.Stderr = w
			}
			s.copies.Add(1)
			go func() {
				defer s.copies.Done()
				defer r.Close()
				logw.Copy(stream, r)
			}()
		}
		if req.GetStdin() {
			r, w, err := os.Pipe()
			if err != nil {
				closeChildEnds()
				return nil, s.failCreate(c, logw, err)
			}
			childEnds = append(childEnds, r)
			p.Stdin, s.stdin = r, w
		}
	}
	s.startMu.Lock()
	err = c.Start(p)
	var pid int
	if err == nil {
		pid, err = p.Pid()
	}
	if err == nil {
		s.initPid = pid
	}
	s.startMu.Unlock()
	closeChildEnds()
	if err != nil {
		if s.stdin != nil {
			s.stdin.Close()
		}
		return nil, s.failCreate(c, logw, fmt.Errorf("start container init: %w", err))
	}
	if consoleParent != nil {
		f, err := utils.RecvFile(consoleParent)
		if err != nil {
			return nil, s.failCreate(c, logw, fmt.Errorf("receive the container's terminal: %w", err))
		}
		con, err := console.ConsoleFromFile(f)
		if err != nil {
			return nil, s.failCreate(c, logw, err)
		}
		s.console, s.stdin = con, con
		s.copies.Add(1)
		go func() {
			defer s.copies.Done()
			logw.Copy("stdout", con)
		}()
	}
	s.container, s.logw = c, logw
	return &shimv1.CreateResponse{Pid: uint32(pid)}, nil
}

func (s *Service) failCreate(c *libcontainer.Container, logw *logs.Writer, err error) error {
	c.Destroy()
	logw.Close()
	return err
}

func (s *Service) Start(ctx context.Context, _ *shimv1.StartRequest) (*shimv1.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container == nil {
		return nil, errors.New("container not created")
	}
	if s.started {
		return nil, errors.New("container already started")
	}
	if err := s.container.Exec(); err != nil {
		return nil, fmt.Errorf("start container: %w", err)
	}
	s.started = true
	return &shimv1.StartResponse{Pid: uint32(s.initPid)}, nil
}

func (s *Service) State(ctx context.Context, _ *shimv1.StateRequest) (*shimv1.StateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &shimv1.StateResponse{Pid: uint32(s.initPid), Exit: s.exit}
	switch {
	case s.exit != nil:
		resp.Status = shimv1.Status_STATUS_STOPPED
	case s.container == nil:
		resp.Status = shimv1.Status_STATUS_UNSPECIFIED
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
	return resp, nil
}

func (s *Service) Kill(ctx context.Context, req *shimv1.KillRequest) (*shimv1.KillResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	sig := syscall.Signal(req.GetSignal())
	if err := c.Signal(sig); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return nil, errNotRunning
		}
		return nil, fmt.Errorf("signal %d: %w", sig, err)
	}
	return &shimv1.KillResponse{}, nil
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
	if s.container == nil || s.exit != nil {
		return nil, errNotRunning
	}
	return s.container, nil
}

// errNotRunning's text is matched by engined.
var errNotRunning = errors.New("container is not running")

func (s *Service) Wait(ctx context.Context, _ *shimv1.WaitRequest) (*shimv1.WaitResponse, error) {
	select {
	case <-s.exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &shimv1.WaitResponse{Exit: s.exit}, nil
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
	return &shimv1.PauseResponse{}, c.Pause()
}

func (s *Service) Resume(ctx context.Context, _ *shimv1.ResumeRequest) (*shimv1.ResumeResponse, error) {
	c, err := s.live()
	if err != nil {
		return nil, err
	}
	return &shimv1.ResumeResponse{}, c.Resume()
}

func (s *Service) WriteStdin(ctx context.Context, req *shimv1.WriteStdinRequest) (*shimv1.WriteStdinResponse, error) {
	s.mu.Lock()
	w := s.stdin
	s.mu.Unlock()
	if w == nil {
		return nil, errors.New("container has no open stdin")
	}
	if _, err := w.Write(req.GetData()); err != nil {
		return nil, err
	}
	return &shimv1.WriteStdinResponse{}, nil
}

func (s *Service) CloseIO(ctx context.Context, _ *shimv1.CloseIORequest) (*shimv1.CloseIOResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdin != nil && s.console == nil {
		s.stdin.Close()
		s.stdin = nil
	}
	return &shimv1.CloseIOResponse{}, nil
}

func (s *Service) ResizePty(ctx context.Context, req *shimv1.ResizePtyRequest) (*shimv1.ResizePtyResponse, error) {
	s.mu.Lock()
	con := s.console
	s.mu.Unlock()
	if con == nil {
		return nil, errors.New("container has no terminal")
	}
	return &shimv1.ResizePtyResponse{}, con.Resize(console.WinSize{Width: uint16(req.GetWidth()), Height: uint16(req.GetHeight())})
}

func (s *Service) Delete(ctx context.Context, _ *shimv1.DeleteRequest) (*shimv1.DeleteResponse, error) {
	s.mu.Lock()
	c := s.container
	s.mu.Unlock()
	if c != nil {
		select {
		case <-s.exited:
		default:
			c.Signal(unix.SIGKILL)
			select {
			case <-s.exited:
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
	}
	s.mu.Lock()
	exit := s.exit
	if s.logw != nil {
		s.logw.Close()
	}
	s.mu.Unlock()
	select {
	case <-s.Done:
	default:
		close(s.Done)
	}
	return &shimv1.DeleteResponse{Exit: exit}, nil
}

// Reap is the child-reaper loop: it collects every exited child of the
// shim (it is their subreaper) and records the init process's status. It
// returns when ctx is done.
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
		isInit := pid == s.initPid && s.exit == nil
		s.mu.Unlock()
		if isInit {
			s.initExited(ws)
		}
	}
}

// initExited drains the output, writes exit.json and only then wakes
// the waiters.
func (s *Service) initExited(ws unix.WaitStatus) {
	exit := &shimv1.ExitStatus{ExitedAtUnixNano: time.Now().UnixNano()}
	switch {
	case ws.Exited():
		exit.Code = int32(ws.ExitStatus())
	case ws.Signaled():
		exit.Signal = int32(ws.Signal())
		exit.Code = 128 + int32(ws.Signal())
	}
	exit.OomKilled = s.oomKilled()
	// The output pipes close when the last process holding them is gone;
	// bound the wait in case a leaked descendant keeps one open.
	drained := make(chan struct{})
	go func() { s.copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	if err := WriteExit(s.stateDir, exit); err != nil {
		fmt.Fprintln(os.Stderr, "shim: write exit status:", err)
	}
	s.mu.Lock()
	s.exit = exit
	s.mu.Unlock()
	close(s.exited)
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

// WriteExit records the exit status atomically.
func WriteExit(dir string, exit *shimv1.ExitStatus) error {
	b, err := json.Marshal(exit)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ExitFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ExitFile))
}

// ReadExit reads a recorded exit status; nil if none was written.
func ReadExit(dir string) (*shimv1.ExitStatus, error) {
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e shimv1.ExitStatus
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
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
	raw, err := os.ReadFile(req.GetSpecPath())
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	next, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: s.id, Spec: &spec})
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
