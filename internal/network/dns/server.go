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
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Files in the resolver's root (engined's exec root/dns).
const (
	PidFile     = "resolver.pid"
	ControlSock = "control.sock"
	LogFile     = "resolver.log"
)

// Protocol is the version of the records file and control socket: a
// resolver that speaks another (left by an older engined) is replaced.
const Protocol = 1

// Ack is the resolver's answer to a reload: its protocol, how many
// sandboxes it serves, and those it could not open, by container ID.
type Ack struct {
	Protocol  int               `json:"protocol"`
	Sandboxes int               `json:"sandboxes"`
	Failed    map[string]string `json:"failed,omitempty"`
}

// Resolver is the resolver process: it serves every sandbox in the
// records file from sockets in that sandbox's namespace.
type Resolver struct {
	root string
	log  *slog.Logger
	// ctx ends the in-flight forwards when the resolver stops.
	ctx context.Context

	table atomic.Pointer[table]

	mu        sync.Mutex // reloads, one at a time
	sandboxes map[string]*sandbox

	connMu sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup // control connections
}

// sandbox is one container's pair of servers.
type sandbox struct {
	rec Sandbox
	ns  netns.NsHandle // held for dials into it; closed with the sockets
	// ctx ends the sandbox's forwards in flight when it closes.
	ctx    context.Context
	cancel context.CancelFunc
	udp    *dns.Server
	tcp    *dns.Server
	wg     sync.WaitGroup // the two servers' serve loops
}

// Run is the resolver process's main: it takes the pid file, serves the
// records file's sandboxes, answers reloads on control (a listener
// engined made, or nil to bind ControlSock itself) and stops cleanly
// when ctx ends (SIGTERM).
func Run(ctx context.Context, root string, control net.Listener, log *slog.Logger) error {
	unlock, err := lockPid(filepath.Join(root, PidFile))
	if err != nil {
		return err
	}
	defer unlock()
	if control == nil {
		sock := filepath.Join(root, ControlSock)
		os.Remove(sock)
		if control, err = net.Listen("unix", sock); err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
	}
	r := &Resolver{root: root, log: log, ctx: ctx, sandboxes: map[string]*sandbox{}, conns: map[net.Conn]bool{}}
	r.table.Store(newTable(&Records{}))
	if ack, err := r.reload(); err != nil {
		log.Error("load records", "err", err)
	} else {
		log.Info("resolver started", "pid", os.Getpid(), "sandboxes", ack.Sandboxes, "failed", len(ack.Failed))
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.serveControl(control)
	}()
	<-ctx.Done()
	log.Info("resolver stopping")
	control.Close()
	r.connMu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.connMu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	for id, sb := range r.sandboxes {
		sb.close()
		delete(r.sandboxes, id)
	}
	r.mu.Unlock()
	log.Info("resolver stopped")
	return nil
}

// serveControl answers engined: each line "reload" is answered with an
// Ack after the records file is applied. A connection that sends
// nothing is engined watching the resolver: it ends when the resolver
// does.
func (r *Resolver) serveControl(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: engined's next reload may
			// find one free, as net/http's server does, after a pause.
			r.log.Error("control socket", "err", err)
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		r.connMu.Lock()
		if r.ctx.Err() != nil {
			r.connMu.Unlock()
			c.Close()
			return
		}
		r.conns[c] = true
		r.connMu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() {
				r.connMu.Lock()
				delete(r.conns, c)
				r.connMu.Unlock()
				c.Close()
			}()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if sc.Text() != "reload" {
					fmt.Fprintf(c, "{\"error\":%q}\n", "unknown command")
					continue
				}
				ack, err := r.reload()
				var out []byte
				if err != nil {
					out, _ = json.Marshal(map[string]string{"error": err.Error()})
				} else {
					out, _ = json.Marshal(ack)
				}
				if _, err := c.Write(append(out, '\n')); err != nil {
					return
				}
			}
		}()
	}
}

// reload applies the records file: sandboxes that are new (or whose
// namespace changed) get sockets, those gone have theirs closed (a
// socket holds its namespace, which must not outlive the container),
// and the answers switch to the new records at once.
func (r *Resolver) reload() (*Ack, error) {
	recs, err := ReadRecords(r.root)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string]Sandbox{}
	for _, sb := range recs.Sandboxes {
		want[sb.ContainerID] = sb
	}
	for id, sb := range r.sandboxes {
		if w, ok := want[id]; !ok || w.NetNS != sb.rec.NetNS || w.NetNSInode != sb.rec.NetNSInode {
			sb.close()
			delete(r.sandboxes, id)
			r.log.Debug("sandbox closed", "container", short(id))
		}
	}
	// The new answers are in place before new sandboxes serve: a
	// container's first query already finds its peers.
	r.table.Store(newTable(recs))
	ack := &Ack{Protocol: Protocol}
	for id, rec := range want {
		if sb, ok := r.sandboxes[id]; ok {
			sb.rec = rec
			continue
		}
		start := time.Now()
		sb, err := r.open(rec)
		if err != nil {
			r.log.Warn("cannot serve sandbox", "container", short(id), "netns", rec.NetNS, "err", err)
			if ack.Failed == nil {
				ack.Failed = map[string]string{}
			}
			ack.Failed[id] = err.Error()
			continue
		}
		r.sandboxes[id] = sb
		r.log.Debug("sandbox opened", "container", short(id), "netns", rec.NetNS, "took", time.Since(start))
	}
	ack.Sandboxes = len(r.sandboxes)
	return ack, nil
}

// open starts serving one sandbox.
func (r *Resolver) open(rec Sandbox) (*sandbox, error) {
	ns, err := openNetns(rec.NetNS, rec.NetNSInode)
	if err != nil {
		return nil, err
	}
	pc, l, err := listenIn(ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	sb := &sandbox{rec: rec, ns: ns}
	sb.ctx, sb.cancel = context.WithCancel(r.ctx)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { r.serve(sb.ctx, rec.ContainerID, ns, w, q) })
	sb.udp = &dns.Server{PacketConn: pc, Handler: h}
	sb.tcp = &dns.Server{Listener: l, Handler: h,
		// A client that opens a connection and sends nothing holds one
		// goroutine for this long, no more.
		ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	for _, srv := range []*dns.Server{sb.udp, sb.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		failed := make(chan error, 1)
		sb.wg.Add(1)
		go func() {
			defer sb.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
		select {
		case <-started:
		case err := <-failed:
			sb.close()
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	return sb, nil
}

// close stops both servers, closing their sockets, waits for their
// loops and in-flight queries, and lets go of the namespace.
func (sb *sandbox) close() {
	sb.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), upstreamTimeout+time.Second)
	defer cancel()
	for _, srv := range []*dns.Server{sb.udp, sb.tcp} {
		if srv == nil {
			continue
		}
		if err := srv.ShutdownContext(ctx); err != nil {
			// Not started: close what it was given.
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
	sb.wg.Wait()
	sb.ns.Close()
}

// serve answers one query from the container id.
func (r *Resolver) serve(ctx context.Context, id string, ns netns.NsHandle, w dns.ResponseWriter, q *dns.Msg) {
	s := r.table.Load().sandboxes[id]
	if s == nil {
		// Closed under this query: answer nothing useful, but answer.
		m := reply(q)
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m)
		return
	}
	proto := w.LocalAddr().Network()
	m := s.answer(q)
	if m == nil {
		var err error
		m, err = forward(ctx, s, ns, proto, q)
		if err != nil {
			if len(q.Question) > 0 {
				r.log.Debug("forward failed", "container", short(id), "name", q.Question[0].Name, "err", err)
			}
			m = reply(q)
			m.Rcode = dns.RcodeServerFailure
		}
		m.Id = q.Id
	}
	if proto == "udp" {
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
		// Sets TC when it must cut: the client asks again over TCP.
		m.Truncate(size)
	}
	if err := w.WriteMsg(m); err != nil {
		r.log.Debug("write answer", "container", short(id), "err", err)
	}
}

// lockPid takes the resolver's pid file: one resolver per root. The
// lock, not the file, is the truth, so a file a killed resolver left is
// taken over.
func lockPid(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("resolver pid file: %w", err)
	}
	// A resolver engined has just killed as hung may still hold it for
	// a moment: its lock goes with its process.
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("resolver pid file %s: held by another resolver: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return func() { os.Remove(path); f.Close() }, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
