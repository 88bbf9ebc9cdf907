package container

import (
	"errors"
	"fmt"
	"time"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Restart policies, as dockerd applies them: after an exit that was not
// asked for (docker stop, or a fatal docker kill), "always" and
// "unless-stopped" restart the container, "on-failure" does when the exit
// code is not 0, up to MaximumRetryCount times if that is set. Restarts
// wait 100 ms, doubling each time up to a minute; a run of 10 s or more
// starts the delay over. While it waits the container is "restarting".
const (
	restartDelayMin   = 100 * time.Millisecond
	restartDelayMax   = time.Minute
	restartResetAfter = 10 * time.Second
)

// validRestartPolicy checks a policy from create or update.
func validRestartPolicy(p *enginev1.RestartPolicy) error {
	switch p.GetName() {
	case "", "no", "always", "unless-stopped":
		if p.GetMaximumRetryCount() != 0 {
			msg := "invalid restart policy: maximum retry count can only be used with 'on-failure'"
			if p.GetMaximumRetryCount() < 0 {
				msg += " and cannot be negative"
			}
			return errdefs.InvalidArgument(errors.New(msg))
		}
	case "on-failure":
		if p.GetMaximumRetryCount() < 0 {
			return errdefs.InvalidArgument(errors.New("invalid restart policy: maximum retry count cannot be negative"))
		}
	default:
		return errdefs.InvalidArgument(fmt.Errorf("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", p.GetName()))
	}
	return nil
}

// shouldRestart says whether the policy restarts r after the exit it
// records.
func shouldRestart(hc *enginev1.HostConfig, r *Record) bool {
	if r.StopRequested {
		return false
	}
	p := hc.GetRestartPolicy()
	switch p.GetName() {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		max := int(p.GetMaximumRetryCount())
		return r.ExitCode != 0 && (max == 0 || r.RestartCount < max)
	}
	return false
}

// restartAtStart says whether engined starts r when it starts: dockerd
// starts "always" containers, and "unless-stopped" ones nobody stopped,
// when the daemon starts.
func restartAtStart(hc *enginev1.HostConfig, r *Record) bool {
	switch hc.GetRestartPolicy().GetName() {
	case "always":
		return true
	case "unless-stopped":
		return !r.StopRequested
	}
	return false
}

// nextRestartDelay is the wait before restarting a container that ran
// for ran.
func (s *Service) nextRestartDelay(id string, ran time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.restartDelay[id]
	switch {
	case d == 0 || ran >= restartResetAfter:
		d = restartDelayMin
	default:
		d = min(2*d, restartDelayMax)
	}
	s.restartDelay[id] = d
	return d
}

// scheduleRestart starts the container again after delay, unless it was
// stopped, started or removed meanwhile.
func (s *Service) scheduleRestart(id string, delay time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return // the next engined restarts it
		}
		unlock := s.lock(id)
		defer unlock()
		rec, err := s.get(id)
		if err != nil || rec.Status != "restarting" {
			return
		}
		if _, err := s.update(id, func(r *Record) error { r.RestartCount++; return nil }); err != nil {
			return
		}
		if err := s.startLocked(s.ctx, id); err != nil {
			s.cfg.Logger.Warn("restart container", "id", id, "err", err)
		}
	}()
}

// restartAtEngineStart starts, at engined's start, the containers their
// policy says run whenever engined does.
func (s *Service) restartAtEngineStart(recs []*Record) {
	for _, r := range recs {
		hc, err := r.hostConfig()
		if err != nil {
			continue
		}
		switch {
		case r.Status == "restarting":
			s.scheduleRestart(r.ID, 0)
		case r.Status == "exited" && restartAtStart(hc, r):
			if _, err := s.update(r.ID, func(r *Record) error { r.Status = "restarting"; return nil }); err == nil {
				s.scheduleRestart(r.ID, 0)
			}
		}
	}
}
