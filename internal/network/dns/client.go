package dns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// reloadTimeout bounds a reload of records with n sandboxes: opening
// one takes about a millisecond (10 ms when a new resolver rewrites a
// container's DNAT), so a resolver that takes 10 s plus 100 ms for each
// is hung, and replaced. It grows with n: a fixed bound would have a
// resolver with enough containers replaced forever.
func reloadTimeout(n int) time.Duration {
	return 10*time.Second + time.Duration(n)*100*time.Millisecond
}

// Client is engined's side of the resolver: it starts the resolver
// when there is none (detached, in a session of its own, so it outlives
// engined as shims do), asks it to reload, and starts a new one when the
// one it knows dies while engined runs.
type Client struct {
	root string
	// command starts a resolver (engined-dns, or engined dns-resolver),
	// to which --root and --control-fd are added.
	command []string
	log     *slog.Logger

	mu      sync.Mutex // one reload or start at a time
	watch   net.Conn   // open while the resolver lives
	closed  bool
	wg      sync.WaitGroup // the watcher
	started bool           // a resolver was seen or started
	// child is the resolver engined started last, until its watcher
	// takes it over; lastStart is when.
	child     *exec.Cmd
	lastStart time.Time
	done      chan struct{} // closed by Close
	sandboxes int           // in the records last written
}

// NewClient is the client of the resolver rooted at root.
func NewClient(root string, command []string, log *slog.Logger) *Client {
	return &Client{root: root, command: command, log: log, done: make(chan struct{})}
}

// Reload makes the resolver apply the records file and waits for its
// ack; sandboxes is how many the records have. A resolver that is not
// running is started when there are some, or left alone otherwise.
func (c *Client) Reload(ctx context.Context, sandboxes int) (*Ack, error) {
	required := sandboxes > 0
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("dns resolver client closed")
	}
	c.sandboxes = sandboxes
	ack, err := c.reloadLocked(ctx)
	if err == nil && ack.Protocol == Protocol {
		c.watchLocked()
		return ack, nil
	}
	if err == nil {
		err = fmt.Errorf("it speaks protocol %d, engined %d", ack.Protocol, Protocol)
	}
	if !required && !c.started && errors.Is(err, errNotRunning) {
		return &Ack{}, nil
	}
	if !errors.Is(err, errNotRunning) {
		// Alive but not answering: replaced.
		c.log.Warn("dns resolver does not answer: replacing it", "err", err)
		c.killLocked()
	}
	if err := c.startLocked(); err != nil {
		return nil, err
	}
	ack, err = c.reloadLocked(ctx)
	if err != nil {
		return nil, fmt.Errorf("dns resolver: %w", err)
	}
	c.watchLocked()
	return ack, nil
}

var errNotRunning = errors.New("dns resolver not running")

func (c *Client) reloadLocked(ctx context.Context) (*Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout(c.sandboxes))
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(c.root, ControlSock))
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return nil, errNotRunning
		}
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("reload\n")); err != nil {
		return nil, fmt.Errorf("send reload: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("read the reload's ack: %w", err)
	}
	var ack struct {
		Ack
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &ack); err != nil {
		return nil, fmt.Errorf("reload ack %q: %w", line, err)
	}
	if ack.Error != "" {
		return nil, fmt.Errorf("reload: %s", ack.Error)
	}
	c.started = true
	return &ack.Ack, nil
}

// startLocked binds the control socket and starts a resolver with it as
// fd 3 (as shims are started), so a reload sent at once waits in the
// socket's backlog instead of racing the resolver's start.
func (c *Client) startLocked() error {
	if err := os.MkdirAll(c.root, 0o700); err != nil {
		return err
	}
	sock := filepath.Join(c.root, ControlSock)
	os.Remove(sock)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("dns resolver control socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	lf, err := l.File()
	l.Close()
	if err != nil {
		return err
	}
	defer lf.Close()
	logf, err := os.OpenFile(filepath.Join(c.root, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(c.command[0], append(c.command[1:len(c.command):len(c.command)], "--root", c.root, "--control-fd", "3")...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dns resolver: %w", err)
	}
	// Reaped by the watcher when it ends while engined runs; a resolver
	// outliving engined is the init's to reap.
	c.child = cmd
	c.lastStart = time.Now()
	c.started = true
	c.log.Info("dns resolver started", "pid", cmd.Process.Pid)
	return nil
}

// watchLocked keeps one idle connection to the resolver: it ends when
// the resolver does, and then a new resolver is started (it loads the
// records file itself).
func (c *Client) watchLocked() {
	if c.watch != nil || c.closed {
		return
	}
	conn, err := net.Dial("unix", filepath.Join(c.root, ControlSock))
	if err != nil {
		return
	}
	c.watch = conn
	// The watcher reaps the resolver it watches if engined started it.
	child := c.child
	c.child = nil
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				break
			}
		}
		conn.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return // engined stops; the resolver goes on
		}
		if child != nil {
			child.Wait()
		}
		if c.watch != conn {
			return // replaced on purpose (killLocked)
		}
		c.watch = nil
		// A resolver that dies at once is not restarted in a tight loop.
		if wait := time.Until(c.lastStart.Add(time.Second)); wait > 0 {
			c.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-c.done:
			}
			c.mu.Lock()
			if c.closed || c.watch != nil {
				return
			}
		}
		c.log.Warn("dns resolver exited: starting a new one")
		if err := c.startLocked(); err != nil {
			c.log.Error("restart dns resolver", "err", err)
			return
		}
		if _, err := c.reloadLocked(context.Background()); err != nil {
			c.log.Error("restart dns resolver", "err", err)
			return
		}
		c.watchLocked()
	}()
}

// killLocked ends the resolver named in the pid file.
func (c *Client) killLocked() {
	if c.watch != nil {
		c.watch.Close()
		c.watch = nil
	}
	if pid := c.pid(); pid > 0 {
		unix.Kill(pid, unix.SIGKILL)
	}
	if c.child != nil {
		// Engined's own child that no watcher took over: reaped here.
		c.child.Process.Kill()
		c.child.Wait()
		c.child = nil
	}
}

// pid is the pid of the resolver that holds the pid file's lock (0:
// none does: a file a killed resolver left may name a pid reused since).
func (c *Client) pid() int {
	f, err := os.Open(filepath.Join(c.root, PidFile))
	if err != nil {
		return 0
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0
	}
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

// Close stops watching; the resolver goes on serving.
func (c *Client) Close() {
	c.mu.Lock()
	if !c.closed {
		close(c.done)
	}
	c.closed = true
	if c.watch != nil {
		c.watch.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}
