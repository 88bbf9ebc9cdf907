package container

import (
	"context"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/shim"
	"github.com/engined/engined/internal/shimclient"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// Restore reconciles the records with the shims after engined starts:
// running containers whose shim answers are watched again; those whose
// shim is gone get the exit status the shim wrote (or 255 if it wrote
// none: the shim was killed, or the host rebooted and /run is empty).
func (s *Service) Restore(ctx context.Context) {
	var recs []*Record
	s.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		recs, err = allRecords(tx)
		return err
	})
	for _, r := range recs {
		if r.Status != "running" && r.Status != "paused" {
			continue
		}
		if b, err := shimclient.ReadBootstrap(s.stateDir(r.ID)); err == nil && b.Alive() {
			client, err := shimclient.Dial(ctx, b)
			if err == nil {
				st, err := client.State(ctx, &shimv1.StateRequest{})
				if err == nil && st.GetExit() == nil {
					s.mu.Lock()
					s.shims[r.ID] = client
					s.mu.Unlock()
					s.monitor(r.ID, client)
					s.cfg.Logger.Info("reconnected to container", "id", r.ID[:12], "pid", st.GetPid())
					continue
				}
				if err == nil {
					// It exited while engined was down.
					s.mu.Lock()
					s.shims[r.ID] = client
					s.mu.Unlock()
					s.exited(r.ID, st.GetExit())
					continue
				}
				client.Close()
			}
			s.cfg.Logger.Warn("shim does not answer; cleaning up", "id", r.ID[:12], "err", err)
			if p, err := os.FindProcess(b.Pid); err == nil {
				p.Kill()
			}
		}
		e, _ := shim.ReadExit(s.stateDir(r.ID))
		if e == nil {
			s.killOrphans(r.ID, r.Pid)
		}
		s.exited(r.ID, e)
	}
}

// Counts are the container counts for /info.
func (s *Service) Counts(ctx context.Context) (total, running, paused, stopped int, err error) {
	err = s.cfg.Store.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			total++
			switch r.Status {
			case "running":
				running++
			case "paused":
				paused++
			default:
				stopped++
			}
		}
		return err
	})
	return
}
