package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/logs"
	"github.com/engined/engined/internal/shimclient"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// ContainerAttach streams the container's output from now on (and, with
// logs, what it wrote before), and forwards stdin. Output comes from the
// log file the shim writes, so a slow client never blocks the container.
// An empty first reply says the attach is accepted (errors come instead).
// With a terminal, the detach keys (given, or ctrl-p ctrl-q) in stdin end
// the stream and leave the container running, as with dockerd.
func (s *Service) ContainerAttach(stream enginev1.Engine_ContainerAttachServer) error {
	_, opts, err := firstMessage(stream.Recv, (*enginev1.ContainerAttachRequest).GetOptions, "attach")
	if err != nil {
		return err
	}
	r, err := s.get(opts.GetId())
	if err != nil {
		return err
	}
	cfg, _ := r.config()
	keys, err := detachKeysFor(cfg.GetTty(), opts.GetDetachKeys())
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("Invalid detach keys (%s) provided", opts.GetDetachKeys()))
	}
	if err := stream.Send(&enginev1.LogEntry{}); err != nil {
		return err
	}
	s.event("attach", r, nil)
	// Detaching cancels ctx: the output ends, and the stream with it.
	ctx, detach := context.WithCancel(stream.Context())
	defer detach()
	var detached atomic.Bool
	if opts.GetStdin() {
		stdinOnce := cfg.GetStdinOnce()
		det := &detacher{keys: keys}
		// Owned by the stream: it ends when the client ends stdin, on
		// the detach keys, or when the call ends (ctx). Input that comes
		// before the container runs, as `docker run -i` and `start -ai`
		// send it, waits for its shim rather than being dropped; so does
		// the end of input.
		go func() {
			for {
				msg, err := stream.Recv()
				if err != nil || msg.GetCloseStdin() {
					if (stdinOnce || msg.GetCloseStdin() || errors.Is(err, io.EOF)) && !cfg.GetTty() {
						if client := s.waitShim(ctx, r.ID); client != nil {
							client.CloseIO(ctx, &shimv1.CloseIORequest{})
						}
					}
					return
				}
				data, done := det.feed(msg.GetStdin())
				if len(data) > 0 {
					if client := s.waitShim(ctx, r.ID); client != nil {
						client.WriteStdin(ctx, &shimv1.WriteStdinRequest{Data: data})
					}
				}
				if done {
					detached.Store(true)
					s.eventIf(nil, "detach", r.ID, nil)
					detach()
					return
				}
			}
		}()
	}
	if !opts.GetStdout() && !opts.GetStderr() {
		select {
		case <-s.nextExit(r):
		case <-ctx.Done():
		}
		return nil
	}
	tail := 0
	if opts.GetLogs() {
		tail = -1
	}
	hc, _ := r.hostConfig()
	if hc.GetLogConfig().GetType() == "none" {
		tail = 0 // nothing is kept to replay
	}
	maxSize, maxFiles, _ := logRotation(hc.GetLogConfig())
	ro := logs.ReadOptions{Stdout: opts.GetStdout(), Stderr: opts.GetStderr(), Tail: tail, Follow: opts.GetStream()}
	err = logs.Read(ctx, logs.Config{Path: s.logPath(r.ID), MaxSize: maxSize, MaxFiles: maxFiles}, ro, s.nextExit(r), func(e logs.Entry) error {
		return stream.Send(toLogEntry(e))
	})
	if detached.Load() {
		return nil // the stream ends as the client asked
	}
	return err
}

// waitShim returns the shim of the container's current run, waiting for
// the container to start if it has none; nil when ctx ends or the
// container is removed first.
func (s *Service) waitShim(ctx context.Context, id string) *shimclient.Client {
	for {
		changed := s.changes(id)
		if c := s.shim(id); c != nil {
			return c
		}
		if _, err := s.get(id); err != nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}

// nextExit is closed when the container, as r saw it, next stops running
// (or is removed): for a created container that is after it has started.
func (s *Service) nextExit(r *Record) <-chan struct{} {
	done := make(chan struct{})
	startedAt := r.StartedAt
	wasRunning := r.Status == "running" || r.Status == "paused"
	go func() {
		defer close(done)
		changed := s.changes(r.ID)
		for {
			cur, err := s.get(r.ID)
			if err != nil {
				return
			}
			running := cur.Status == "running" || cur.Status == "paused"
			if !running && (wasRunning || cur.StartedAt.After(startedAt)) {
				return
			}
			select {
			case <-changed:
				changed = s.changes(r.ID)
			case <-s.ctx.Done():
				return
			}
		}
	}()
	return done
}
