package container

import (
	"errors"
	"io"

	"github.com/engined/engined/internal/logs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// ContainerAttach streams the container's output from now on (and, with
// logs, what it wrote before), and forwards stdin. Output comes from the
// log file the shim writes, so a slow client never blocks the container.
func (s *Service) ContainerAttach(stream enginev1.Engine_ContainerAttachServer) error {
	ctx := stream.Context()
	_, opts, err := firstMessage(stream.Recv, (*enginev1.ContainerAttachRequest).GetOptions, "attach")
	if err != nil {
		return err
	}
	r, err := s.get(opts.GetId())
	if err != nil {
		return err
	}
	s.event("attach", r, nil)
	if opts.GetStdin() {
		cfg, _ := r.config()
		stdinOnce := cfg.GetStdinOnce()
		go func() {
			for {
				msg, err := stream.Recv()
				client := s.shim(r.ID)
				if err != nil || msg.GetCloseStdin() {
					if client != nil && (stdinOnce || msg.GetCloseStdin() || errors.Is(err, io.EOF)) && !cfg.GetTty() {
						client.CloseIO(ctx, &shimv1.CloseIORequest{})
					}
					return
				}
				if client != nil && len(msg.GetStdin()) > 0 {
					client.WriteStdin(ctx, &shimv1.WriteStdinRequest{Data: msg.GetStdin()})
				}
			}
		}()
	}
	if !opts.GetStdout() && !opts.GetStderr() {
		<-s.nextExit(r)
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
	return logs.Read(ctx, logs.Config{Path: s.logPath(r.ID), MaxSize: maxSize, MaxFiles: maxFiles}, ro, s.nextExit(r), func(e logs.Entry) error {
		return stream.Send(toLogEntry(e))
	})
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
