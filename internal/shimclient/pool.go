package shimclient

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// Pool keeps shims started ahead of need: starting a shim means running
// its binary twice (start, then the detached server), and a container
// start should not wait for that. A pooled shim has no container until
// Create; its record lives in the pool directory until it is handed out,
// so shims left idle by an engined that died are found and ended.
type Pool struct {
	opts Options
	dir  string
	log  *slog.Logger

	ready  chan *Client
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// NewPool ends the idle shims a previous engined left in dir and keeps
// size shims ready from now on, until Close.
func NewPool(opts Options, dir string, size int, log *slog.Logger) (*Pool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &Pool{opts: opts, dir: dir, log: log, ready: make(chan *Client, size),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	p.reapLeftovers()
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.fill(ctx)
	return p, nil
}

// Get returns a ready shim (or starts one) and records it in stateDir,
// the container's state directory.
func (p *Pool) Get(ctx context.Context, stateDir string) (*Client, error) {
	for {
		var c *Client
		select {
		case c = <-p.ready:
		default:
		}
		if c == nil {
			var err error
			if c, err = Start(ctx, p.opts, filepath.Join(stateDir, "shim.log")); err != nil {
				return nil, err
			}
			if err := c.WriteBootstrap(stateDir); err != nil {
				c.Delete(ctx, &shimv1.DeleteRequest{})
				c.Close()
				return nil, err
			}
			return c, nil
		}
		// A pooled shim may have been killed while it waited.
		if _, err := c.Connect(ctx, &shimv1.ConnectRequest{ProtocolVersion: ProtocolVersion}); err != nil {
			p.discard(c)
			continue
		}
		if err := c.WriteBootstrap(stateDir); err != nil {
			p.discard(c)
			return nil, err
		}
		p.forget(c)
		return c, nil
	}
}

// Refill starts replacing the shims handed out. Callers call it once
// the container they got a shim for has started: a shim starting beside
// a container's init slows both.
func (p *Pool) Refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close ends the idle shims.
func (p *Pool) Close() {
	p.cancel()
	<-p.done
	for {
		select {
		case c := <-p.ready:
			p.discard(c)
		default:
			return
		}
	}
}

func (p *Pool) fill(ctx context.Context) {
	defer close(p.done)
	backoff := 100 * time.Millisecond
	for {
		for len(p.ready) < cap(p.ready) {
			c, err := p.startIdle(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.log.Warn("start an idle shim", "err", err)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			select {
			case p.ready <- c:
			default:
				p.discard(c)
			}
		}
		select {
		case <-p.kick:
		case <-ctx.Done():
			return
		}
	}
}

func (p *Pool) startIdle(ctx context.Context) (*Client, error) {
	c, err := Start(ctx, p.opts, filepath.Join(p.dir, "idle.log"))
	if err != nil {
		return nil, err
	}
	if err := writeBootstrapAs(p.record(c), c.Bootstrap); err != nil {
		p.discard(c)
		return nil, err
	}
	return c, nil
}

func (p *Pool) record(c *Client) string {
	return filepath.Join(p.dir, fmt.Sprintf("%d.json", c.Bootstrap.Pid))
}

// forget drops the pool's record of a shim handed out.
func (p *Pool) forget(c *Client) { os.Remove(p.record(c)) }

// discard ends an idle shim: with no container, Delete makes it exit.
func (p *Pool) discard(c *Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Delete(ctx, &shimv1.DeleteRequest{}); err != nil {
		c.Bootstrap.Kill()
	}
	c.Close()
	os.Remove(c.Bootstrap.Address)
	p.forget(c)
}

func (p *Pool) reapLeftovers() { EndIdle(p.dir) }

// EndIdle ends the idle shims recorded in a pool directory (those of an
// engined that is gone) and forgets them.
func EndIdle(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if b, err := readBootstrapFile(path); err == nil {
			b.Kill()
		}
		os.Remove(path)
	}
}
