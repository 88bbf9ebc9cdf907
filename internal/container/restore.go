package container

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/engined/engined/internal/exitfile"
	"github.com/engined/engined/internal/shimclient"
)

// Restore reconciles the records with the shims after engined starts:
// running containers whose shim answers are watched again; those whose
// shim is gone get the exit status the shim wrote (or 255 if it wrote
// none: the shim was killed, or the host rebooted and /run is empty).
// The channel is closed once the shims of the running containers have
// all been dialled again and watched, in the background.
func (s *Service) Restore(ctx context.Context) <-chan struct{} {
	recs := s.recs.all()
	s.warmViews()
	s.removeOrphans(recs)
	running := map[string]bool{}
	for _, r := range recs {
		running[r.ID] = r.Status == "running" || r.Status == "paused"
	}
	s.unstageOrphans(running)
	defer s.restartAtEngineStart(recs)
	// A running container whose shim is alive and recorded no exit is
	// running as far as anyone can know: engined serves at once, and the
	// shims are dialled again meanwhile (an operation on one of them
	// waits for its own). One that ended while engined was down is
	// settled before engined serves, so no client sees it running after
	// it ended.
	var alive []*pendingShim
	var wg sync.WaitGroup
	sem := make(chan struct{}, restoreParallel)
	for _, r := range recs {
		if r.Status != "running" && r.Status != "paused" {
			// A shim may be left from a start engined did not finish, or
			// from an exit it recorded but did not clean up after.
			if b, err := shimclient.ReadBootstrap(s.stateDir(r.ID)); err == nil {
				s.cfg.Logger.Info("cleaning up after an unfinished start or exit", "id", r.ID[:12], "shim", b.Pid)
				s.cleanupRuntime(r.ID)
			}
			// An engined killed mid-start (after the rootfs mount, before
			// the shim's bootstrap record) leaves the mount alone: a
			// container that does not run has none.
			s.unmountRootfs(r.ID)
			continue
		}
		if b, err := shimclient.ReadBootstrap(s.stateDir(r.ID)); err == nil && b.Alive() {
			if e, _ := exitfile.Read(s.stateDir(r.ID)); e == nil {
				p := s.pendingShim(r)
				s.mu.Lock()
				s.reattaching[r.ID] = p
				s.mu.Unlock()
				alive = append(alive, p)
				continue
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if watch := s.reconnect(ctx, r); watch != nil {
				watch()
			}
		}()
	}
	wg.Wait()
	reattached := s.reattach(alive)
	s.reconcileNetworks(ctx)
	return reattached
}

// restoreParallel bounds the containers that ended while engined was
// down cleaned up after at once at start.
const restoreParallel = 128

// pendingShim is the reattachment of one restored container's shim: its
// dial and the start of its watch, each done once, by the background
// reattach or by the first operation on the container that cannot wait
// for its turn. It stays in reattaching until its watch has started.
type pendingShim struct {
	dialed, watched sync.Once
	dial            func() (watch func())
	watch           func()
	forget          func()
}

func (s *Service) pendingShim(r *Record) *pendingShim {
	return &pendingShim{
		dial: func() func() { return s.reconnect(s.ctx, r) },
		forget: func() {
			s.mu.Lock()
			delete(s.reattaching, r.ID)
			s.mu.Unlock()
		},
	}
}

// reattach dials the shim unless that is done. now also starts its watch
// at once: an operation is waiting on this container, and its exit (a
// kill's, a stop's) is recorded by the watch only.
func (p *pendingShim) reattach(now bool) {
	p.dialed.Do(func() { p.watch = p.dial() })
	if now {
		p.startWatch()
	}
}

func (p *pendingShim) startWatch() {
	p.watched.Do(func() {
		p.forget()
		if p.watch != nil {
			p.watch()
		}
	})
}

// reattach dials the shims of restored running containers again, one
// fewer at a time than there are CPUs (engined serves meanwhile, and
// each answer costs a shim a wake-up: 128 at once on two CPUs made the
// first requests wait for them, and even two at once on two CPUs left
// the first requests none), and watches each once all have answered: a
// watch is a second call to the shim, and 100 shims woken twice made
// every answer wait longer. What happens meanwhile is not missed: a shim replays the
// events engined has not seen. An operation on a container whose turn
// has not come, or whose watch has not started, dials its shim and
// starts its watch at once (see shim): a few hung shims, each given up
// on after a bound, hold up only the background.
func (s *Service) reattach(pending []*pendingShim) <-chan struct{} {
	done := make(chan struct{})
	if len(pending) == 0 {
		close(done)
		return done
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		began := time.Now()
		var wg sync.WaitGroup
		work := make(chan *pendingShim)
		for range min(max(runtime.NumCPU()-1, 1), len(pending)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range work {
					p.reattach(false)
				}
			}()
		}
		for _, p := range pending {
			work <- p
		}
		close(work)
		wg.Wait()
		for _, p := range pending {
			p.startWatch()
		}
		s.cfg.Logger.Info("shims reattached", "containers", len(pending), "took", time.Since(began))
	}()
	return done
}

// warmViews makes every record's list and inspect views in the
// background, meanwhile most of Restore waits for shims to answer: the
// first list after a restart would otherwise make them all.
func (s *Service) warmViews() {
	entries := s.recs.entries()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, e := range entries {
			if s.ctx.Err() != nil {
				return
			}
			s.summary(e)
		}
	}()
}

// reconnect finds a running container's shim again, or records the
// container's end if the shim is gone or does not answer. What it
// returns starts watching the shim again.
func (s *Service) reconnect(ctx context.Context, r *Record) (watch func()) {
	if b, err := shimclient.ReadBootstrap(s.stateDir(r.ID)); err == nil && b.Alive() {
		client, err := shimclient.Dial(ctx, b)
		if err == nil {
			s.mu.Lock()
			if s.ctx.Err() != nil {
				// Close has closed the clients it knew.
				s.mu.Unlock()
				client.Close()
				return nil
			}
			s.shims[r.ID] = client
			s.mu.Unlock()
			// An exit while engined was down is on disk: it is handled
			// now, before engined serves, so no client sees the
			// container running after it ended. Otherwise the shim
			// replays the events engined had not handled.
			if e, _ := exitfile.Read(s.stateDir(r.ID)); e != nil {
				s.exited(r.ID, client, e)
				s.cfg.Logger.Info("container exited while engined was down", "id", r.ID[:12], "code", e.GetCode())
				return nil
			}
			// One line per container at every start is noise: the
			// background's summary says how many at info.
			s.cfg.Logger.Debug("reconnected to container", "id", r.ID[:12])
			return func() {
				s.monitor(r.ID, client)
				// The health check goes on where it was (the state is
				// the record's); a paused container's resumes at unpause.
				if r.Status == "running" {
					s.startHealth(r.ID)
				}
			}
		}
		if ctx.Err() != nil {
			// engined is stopping while it starts: the shim did not fail
			// to answer, engined stopped asking. The next engined
			// reattaches it.
			return nil
		}
		s.cfg.Logger.Warn("shim does not answer; cleaning up", "id", r.ID[:12], "err", err)
		b.Kill()
	}
	e, _ := exitfile.Read(s.stateDir(r.ID))
	if e == nil {
		s.killOrphans(r.ID, r.Pid)
	}
	s.exited(r.ID, nil, e)
	return nil
}

// removeOrphans removes the files of containers that have no record: a
// removal deletes the record first and engined may have died before the
// files were gone.
func (s *Service) removeOrphans(recs []*Record) {
	known := map[string]bool{}
	for _, r := range recs {
		known[r.ID] = true
	}
	for _, dir := range []string{filepath.Join(s.cfg.ExecRoot, "containers"), filepath.Join(s.cfg.DataRoot, "containers")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && !known[e.Name()] {
				s.cfg.Logger.Info("removing the files of a removed container", "id", e.Name())
				s.removeFiles(e.Name())
			}
		}
	}
}

// Counts are the container counts for /info.
func (s *Service) Counts(ctx context.Context) (total, running, paused, stopped int, err error) {
	s.recs.each(func(e *indexed) bool {
		total++
		switch e.rec.Status {
		case "running":
			running++
		case "paused":
			paused++
		default:
			stopped++
		}
		return true
	})
	return
}
