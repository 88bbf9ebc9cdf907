package container

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// Health checks, as dockerd runs them. A running container whose config
// has a CMD or CMD-SHELL test gets a monitor that runs the test every
// interval as an exec, through the same path as docker exec (so it logs
// exec_create, exec_start and exec_die, and sees the container's
// environment, user and working directory). Its results move the state:
// starting until a probe passes or retries probes in a row fail (failures
// within the start period do not count while starting), then healthy or
// unhealthy; each change is a "health_status: <status>" event. The state
// lives in the container's record, so it survives engined: a restarted
// engined resumes the monitors of running containers where they were
// (dockerd starts them over at starting). A container that stops (or is
// paused) has its monitor stopped and is unhealthy, as with dockerd; a
// start resets it to starting, keeping the log.
const (
	healthMaxOutput            = 4096 // bytes of a probe's output kept, then "..."
	healthMaxLog               = 5    // results kept
	healthDefaultInterval      = 30 * time.Second
	healthDefaultTimeout       = 30 * time.Second
	healthDefaultStartInterval = 5 * time.Second
	healthDefaultRetries       = 3
	// healthStartWait bounds the start of a probe's process, which does
	// not count towards its timeout (dockerd's 30 s).
	healthStartWait = 30 * time.Second
	// healthOutputWait bounds the wait for a probe's output to end after
	// its process exited (a descendant it left may hold the pipe open).
	healthOutputWait = time.Second
)

// Health statuses.
const (
	healthStarting  = "starting"
	healthHealthy   = "healthy"
	healthUnhealthy = "unhealthy"
)

// A healthMonitor is the running health check of one container. The
// service owns it (Service.health, Service.wg): it ends when the container
// stops, is paused or removed, or engined stops.
type healthMonitor struct {
	cancel context.CancelFunc
	// mu orders a result's recording against stop: once stopped, the
	// monitor writes nothing more.
	mu      sync.Mutex
	stopped bool
}

func (m *healthMonitor) stop() {
	m.mu.Lock()
	m.stopped = true
	m.cancel()
	m.mu.Unlock()
}

// probeCommand is the argv a health check runs; nil: none runs (NONE, no
// test, or a type dockerd does not run).
func probeCommand(h *enginev1.HealthConfig) []string {
	t := h.GetTest()
	if len(t) < 2 {
		return nil
	}
	switch t[0] {
	case "CMD":
		return t[1:]
	case "CMD-SHELL":
		// The container's shell: dockerd's Config.Shell, which engined
		// does not take, defaults to this.
		return append([]string{"/bin/sh", "-c"}, t[1:]...)
	}
	return nil
}

// mergeHealthcheck is the health check a container runs: its own, with
// what it leaves unset (zero) taken from the image's, as dockerd merges.
func mergeHealthcheck(own, img *enginev1.HealthConfig) *enginev1.HealthConfig {
	if img == nil {
		return own
	}
	if own == nil {
		return proto.Clone(img).(*enginev1.HealthConfig)
	}
	if len(own.Test) == 0 {
		own.Test = img.GetTest()
	}
	if own.Interval == 0 {
		own.Interval = img.GetInterval()
	}
	if own.Timeout == 0 {
		own.Timeout = img.GetTimeout()
	}
	if own.StartPeriod == 0 {
		own.StartPeriod = img.GetStartPeriod()
	}
	if own.StartInterval == 0 {
		own.StartInterval = img.GetStartInterval()
	}
	if own.Retries == 0 {
		own.Retries = img.GetRetries()
	}
	return own
}

func durationOr(ns int64, def time.Duration) time.Duration {
	if ns == 0 {
		return def
	}
	return time.Duration(ns)
}

// hasHealthcheck says whether the record's config runs a health check.
func hasHealthcheck(r *Record) bool {
	cfg, err := r.config()
	return err == nil && probeCommand(cfg.GetHealthcheck()) != nil
}

// resetHealth is a start's: starting again, no failures, the log kept.
func resetHealth(r *Record) {
	if !hasHealthcheck(r) {
		return
	}
	if r.Health == nil {
		r.Health = &Health{}
	}
	r.Health.Status, r.Health.FailingStreak = healthStarting, 0
}

// healthStopped is what a stopped monitor leaves: unhealthy, as dockerd
// says of a container whose health is no longer checked.
func healthStopped(r *Record) {
	if r.Health != nil {
		r.Health.Status = healthUnhealthy
	}
}

// startHealth starts the container's health monitor if it runs and has a
// health check, replacing any monitor it had. The state is left as the
// record has it (a start resets it first).
func (s *Service) startHealth(id string) {
	rec, err := s.get(id)
	if err != nil || !hasHealthcheck(rec) {
		return
	}
	cfg, _ := rec.config()
	hc := cfg.GetHealthcheck()
	ctx, cancel := context.WithCancel(s.ctx)
	m := &healthMonitor{cancel: cancel}
	s.mu.Lock()
	old := s.health[id]
	s.health[id] = m
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
	// Read again now the monitor is registered: a stop from now on
	// finds it; one before this shows in the record.
	if rec, err = s.get(id); err != nil || rec.Status != "running" {
		s.stopHealthMonitor(id, m)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		s.healthLoop(ctx, m, id, hc, rec.StartedAt)
	}()
}

// stopHealth stops the container's health monitor, if it has one: it
// records nothing more, and a probe in flight is killed.
func (s *Service) stopHealth(id string) {
	s.mu.Lock()
	m := s.health[id]
	delete(s.health, id)
	s.mu.Unlock()
	if m != nil {
		m.stop()
	}
}

// stopHealthMonitor stops m, and forgets it if it is still id's.
func (s *Service) stopHealthMonitor(id string, m *healthMonitor) {
	s.mu.Lock()
	if s.health[id] == m {
		delete(s.health, id)
	}
	s.mu.Unlock()
	m.stop()
}

// healthLoop runs the probes on dockerd's schedule: every interval (from
// the end of one to the start of the next), every start interval while
// starting within the start period, and at the end of the start period
// if that comes first.
func (s *Service) healthLoop(ctx context.Context, m *healthMonitor, id string, hc *enginev1.HealthConfig, started time.Time) {
	defer s.stopHealthMonitor(id, m)
	interval := durationOr(hc.GetInterval(), healthDefaultInterval)
	startInterval := durationOr(hc.GetStartInterval(), healthDefaultStartInterval)
	startPeriod := time.Duration(hc.GetStartPeriod())
	cmd := probeCommand(hc)
	next := func() time.Duration {
		elapsed := time.Since(started)
		if elapsed >= startPeriod {
			return interval
		}
		if rest := startPeriod - elapsed; rest < interval {
			return rest
		}
		if rec, err := s.get(id); err == nil && rec.Health != nil && rec.Health.Status == healthStarting {
			return startInterval
		}
		return interval
	}
	t := time.NewTimer(next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, ok := s.probe(ctx, id, hc, cmd)
		if !ok || !s.recordProbe(m, id, hc, res) {
			return
		}
		t.Reset(next())
	}
}

// probe runs the health check once, as an exec. ok is false when there is
// no result: the monitor was stopped, or the container no longer runs.
func (s *Service) probe(ctx context.Context, id string, hc *enginev1.HealthConfig, cmd []string) (res HealthResult, ok bool) {
	res.Start = time.Now().UTC()
	failed := func(msg string) (HealthResult, bool) {
		res.ExitCode, res.Output, res.End = -1, msg, time.Now().UTC()
		return res, true
	}
	created, err := s.ContainerExecCreate(ctx, &enginev1.ContainerExecCreateRequest{Id: id,
		Config: &enginev1.ExecConfig{Cmd: cmd, AttachStdout: true, AttachStderr: true}})
	if err != nil {
		if ctx.Err() != nil || errdefs.Code(err) == codes.NotFound || errdefs.Code(err) == codes.FailedPrecondition {
			return res, false // stopped, paused or removed meanwhile
		}
		return failed(err.Error())
	}
	e, err := s.lookupExec(created.GetId())
	if err != nil {
		return res, false // the container stopped: its execs are gone
	}
	defer s.forgetExec(e)
	e.mu.Lock()
	e.started = true
	e.mu.Unlock()
	startCtx, cancelStart := context.WithTimeout(ctx, healthStartWait)
	run, failure, err := s.startExec(startCtx, ctx, e, false)
	cancelStart()
	switch {
	case err != nil && ctx.Err() != nil:
		e.fail(-1)
		return res, false
	case err != nil && errdefs.Code(err) == codes.FailedPrecondition:
		e.fail(-1)
		return res, false // no longer running
	case err != nil:
		e.fail(-1)
		if startCtx.Err() != nil {
			return failed(fmt.Sprintf("timed out starting health check for container %s", id))
		}
		return failed(err.Error())
	case failure != nil:
		// dockerd's probe fails with the exec's error: -1, the reason.
		e.fail(failure.code)
		return failed(failure.msg)
	}
	defer run.cancel()
	var out limitedBuffer
	outDone := make(chan struct{})
	s.wg.Add(1)
	go func() { // ends with the output, or at run.cancel
		defer s.wg.Done()
		defer close(outDone)
		for {
			chunk, err := run.out.Recv()
			if err != nil {
				return
			}
			out.Write(chunk.GetData())
		}
	}()
	timeout := durationOr(hc.GetTimeout(), healthDefaultTimeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-e.done:
		wait := time.NewTimer(healthOutputWait)
		select {
		case <-outDone:
		case <-wait.C:
		case <-ctx.Done():
		}
		wait.Stop()
		e.mu.Lock()
		res.ExitCode = int(*e.exitCode)
		e.mu.Unlock()
		res.Output, res.End = validUTF8(out.String()), time.Now().UTC()
		return res, true
	case <-timer.C:
		// A probe that hangs is killed; its exit (137) is its exec_die.
		s.killExec(run, e)
		kill := time.NewTimer(killWait)
		select {
		case <-e.done:
		case <-kill.C:
		case <-ctx.Done():
		}
		kill.Stop()
		msg := fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
		if o := validUTF8(out.String()); o != "" {
			msg += ": " + o
		}
		return failed(msg)
	case <-ctx.Done():
		s.killExec(run, e)
		return res, false
	}
}

// killExec SIGKILLs a probe's process.
func (s *Service) killExec(run *startedExec, e *execProc) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := run.client.Kill(ctx, &shimv1.KillRequest{ExecId: e.id, Signal: uint32(syscall.SIGKILL)}); err != nil && !isNotRunning(err) {
		s.cfg.Logger.Debug("kill health check", "id", e.containerID, "exec", e.id, "err", err)
	}
}

// forgetExec drops a probe's exec once it is done, here and (when its
// process has exited) in the shim: a check every interval would pile
// them up otherwise.
func (s *Service) forgetExec(e *execProc) {
	s.mu.Lock()
	if s.execs[e.id] == e {
		delete(s.execs, e.id)
	}
	s.mu.Unlock()
	select {
	case <-e.done:
	default:
		return // still running (killed, not yet reaped): the shim keeps it
	}
	client := s.shim(e.containerID)
	if client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.DeleteExec(ctx, &shimv1.DeleteExecRequest{ExecId: e.id}); err != nil {
		s.cfg.Logger.Debug("forget health check exec", "id", e.containerID, "exec", e.id, "err", err)
	}
}

// errHealthNotRunning ends a probe's recording for a container that
// stopped meanwhile.
var errHealthNotRunning = fmt.Errorf("container is not running")

// recordProbe applies a result to the container's health, as dockerd's
// handleProbeResult, and logs a change of status. It reports whether the
// monitor goes on.
func (s *Service) recordProbe(m *healthMonitor, id string, hc *enginev1.HealthConfig, res HealthResult) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return false
	}
	retries := int(hc.GetRetries())
	if retries <= 0 {
		retries = healthDefaultRetries
	}
	startPeriod := time.Duration(hc.GetStartPeriod())
	var before, after string
	rec, err := s.update(id, func(r *Record) error {
		if r.Status != "running" {
			return errHealthNotRunning
		}
		h := r.Health
		if h == nil {
			h = &Health{Status: healthStarting}
			r.Health = h
		}
		before = h.Status
		h.Log = append(h.Log, res)
		if n := len(h.Log); n > healthMaxLog {
			h.Log = append([]HealthResult(nil), h.Log[n-healthMaxLog:]...)
		}
		if res.ExitCode == 0 {
			h.FailingStreak, h.Status = 0, healthHealthy
		} else if h.Status != healthStarting || res.Start.Sub(r.StartedAt) >= startPeriod {
			// Failures while starting within the start period do not count.
			h.FailingStreak++
			if h.FailingStreak >= retries {
				h.Status = healthUnhealthy
			}
		}
		after = h.Status
		return nil
	})
	if err != nil {
		return false
	}
	if before != after {
		s.event("health_status: "+after, rec, nil)
	}
	return true
}

// limitedBuffer keeps the first healthMaxOutput bytes written to it.
type limitedBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := min(healthMaxOutput-b.buf.Len(), len(p))
	if keep > 0 {
		b.buf.Write(p[:keep])
	}
	if keep < len(p) {
		b.truncated = true
	}
	return len(p), nil
}

// String is what was kept, with "..." after it if more was written.
func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.truncated {
		return b.buf.String() + "..."
	}
	return b.buf.String()
}

// validUTF8 replaces each byte that is not UTF-8 with U+FFFD, as Go's
// JSON (and so dockerd's inspect) does: a probe may print anything, and
// the cap may cut a character; the API's strings must be UTF-8.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
