// Package listener turns dockerd-style -H addresses into listeners:
// unix sockets, tcp (with TLS, refused in the clear off loopback) and
// systemd-activated sockets.
package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// TLSOptions are the server's --tls* settings.
type TLSOptions struct {
	Enabled  bool // --tls (implied by Verify)
	Verify   bool // --tlsverify: require client certificates signed by CAFile
	CAFile   string
	CertFile string
	KeyFile  string
	// InsecureExplicit is --tls=false given on purpose: the only way to
	// serve plain tcp on a non-loopback address.
	InsecureExplicit bool
}

// Listener is one opened -H address. It is itself a net.Listener, so it
// can be handed straight to http.Server.Serve.
type Listener struct {
	net.Listener
	// Address is the normalised -H address, e.g. unix:///run/engined/docker.sock.
	// It is not called Addr because that would hide net.Listener's Addr
	// method and *Listener would no longer be a net.Listener.
	Address string
	Proto   string // unix, tcp or fd
	TLS     bool
}

// Default ports, as dockerd.
const (
	defaultPort    = "2375"
	defaultTLSPort = "2376"
)

// ParseHost normalises a -H value. The address returned is a path for
// unix, host:port for tcp (empty host: all interfaces) and "", an fd
// number or a LISTEN_FDNAMES name for fd.
func ParseHost(addr string, tlsEnabled bool) (proto, address string, err error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", "", errors.New("empty host address")
	}
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, rest = "tcp", addr
	}
	switch scheme {
	case "unix":
		// Not parsed as a URL: socket paths may hold '%', '?' or '#'.
		if rest == "" {
			return "", "", fmt.Errorf("invalid host %q: unix socket needs a path", addr)
		}
		return "unix", rest, nil
	case "fd":
		return "fd", rest, nil
	case "tcp":
		u, err := url.Parse("tcp://" + rest)
		if err != nil {
			return "", "", fmt.Errorf("invalid host %q: %w", addr, err)
		}
		if (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return "", "", fmt.Errorf("invalid host %q: want tcp://host:port", addr)
		}
		port := u.Port()
		if port == "" {
			if strings.HasSuffix(u.Host, ":") {
				return "", "", fmt.Errorf("invalid host %q: empty port", addr)
			}
			port = defaultPort
			if tlsEnabled {
				port = defaultTLSPort
			}
		}
		if n, err := strconv.Atoi(port); err != nil || n > 65535 {
			return "", "", fmt.Errorf("invalid host %q: bad port %q", addr, port)
		}
		return "tcp", net.JoinHostPort(u.Hostname(), port), nil
	}
	return "", "", fmt.Errorf("invalid host %q: unsupported scheme %q (use unix://, tcp:// or fd://)", addr, scheme)
}

// Open creates listeners for all addresses, closing what it opened on
// error. warnings are for the caller to log loudly.
func Open(ctx context.Context, addrs []string, opts TLSOptions, gid int) (ls []*Listener, warnings []string, err error) {
	defer func() {
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			ls, warnings = nil, nil
		}
	}()
	var tlsConfig *tls.Config
	if opts.Enabled || opts.Verify {
		if tlsConfig, err = ServerTLSConfig(opts); err != nil {
			return nil, nil, err
		}
	}
	for _, addr := range addrs {
		proto, address, err := ParseHost(addr, tlsConfig != nil)
		if err != nil {
			return ls, nil, err
		}
		full := proto + "://" + address
		switch proto {
		case "unix":
			l, err := openUnix(ctx, address, gid)
			if err != nil {
				return ls, nil, fmt.Errorf("listen on %s: %w", full, err)
			}
			ls = append(ls, &Listener{Listener: l, Address: full, Proto: proto})
		case "tcp":
			loopback := isLoopback(address)
			if tlsConfig == nil && !loopback && !opts.InsecureExplicit {
				return ls, nil, fmt.Errorf("refusing to listen on %s without TLS: anyone who can reach it would control the engine and this host; "+
					"enable TLS with --tlsverify --tlscacert=CA --tlscert=CERT --tlskey=KEY, or pass --tls=false explicitly to accept the risk", full)
			}
			var lc net.ListenConfig
			l, err := lc.Listen(ctx, "tcp", address)
			if err != nil {
				return ls, nil, fmt.Errorf("listen on %s: %w", full, err)
			}
			ln := &Listener{Listener: l, Address: full, Proto: proto}
			ls = append(ls, ln)
			switch {
			case tlsConfig != nil:
				ln.Listener, ln.TLS = tls.NewListener(l, tlsConfig), true
				if !opts.Verify {
					warnings = append(warnings, fmt.Sprintf("binding to %s with TLS but without --tlsverify: any client that can connect can control the engine; set --tlsverify and --tlscacert", full))
				}
			case loopback:
				warnings = append(warnings, fmt.Sprintf("binding to %s without TLS: anyone on this machine can control the engine (and so gain root); use a unix socket or --tlsverify", full))
			default:
				warnings = append(warnings, fmt.Sprintf("binding to %s without TLS (--tls=false): anyone who can reach this address can control the engine (and so gain root on this host)", full))
			}
		case "fd":
			fls, err := activated(address)
			if err != nil {
				return ls, nil, fmt.Errorf("listen on %s: %w", full, err)
			}
			for _, l := range fls {
				ln := &Listener{Listener: l, Address: full, Proto: proto}
				// Only tcp gets TLS: local clients of an activated unix
				// socket speak plain HTTP, as on -H unix://.
				if tlsConfig != nil && l.Addr().Network() == "tcp" {
					ln.Listener, ln.TLS = tls.NewListener(l, tlsConfig), true
				}
				ls = append(ls, ln)
			}
		}
	}
	return ls, warnings, nil
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openUnix binds a unix socket, replacing a stale socket file but never
// one a live process still serves, nor anything that is not a socket.
func openUnix(ctx context.Context, path string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: another process is serving this socket", syscall.EADDRINUSE)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// The activated sockets are read once: activation unsets LISTEN_* (so
// shims and other children don't take them for theirs), so a second
// read would find nothing.
var act struct {
	once  sync.Once
	files []*os.File
	env   string // LISTEN_* as found, to explain an empty result
}

// activated returns the systemd-activated listeners named by an fd://
// address: all of them for "", else the one with that fd number or
// LISTEN_FDNAMES name.
func activated(which string) ([]net.Listener, error) {
	act.once.Do(func() {
		act.env = fmt.Sprintf("LISTEN_PID=%q LISTEN_FDS=%q LISTEN_FDNAMES=%q, pid %d",
			os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"), os.Getpid())
		act.files = activation.Files(true)
	})
	if len(act.files) == 0 {
		return nil, fmt.Errorf("no sockets were passed by systemd socket activation (%s)", act.env)
	}
	var out []net.Listener
	for i, f := range act.files {
		// Files numbers them from SD_LISTEN_FDS_START (3). f.Fd() is
		// avoided: it can switch the shared socket to blocking mode.
		fd := strconv.Itoa(3 + i)
		if which != "" && which != fd && which != f.Name() {
			continue
		}
		l, err := net.FileListener(f)
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, fmt.Errorf("fd %s (%s) is not a listening socket: %w", fd, f.Name(), err)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no activated socket has fd number or name %q", which)
	}
	return out, nil
}

// ServerTLSConfig is the TLS setup of tcp listeners. HTTP/1.1 stays on
// offer for Docker clients (hijacked streams need it); h2 is for gRPC.
func ServerTLSConfig(opts TLSOptions) (*tls.Config, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("TLS needs a certificate and key (--tlscert, --tlskey)")
	}
	cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if opts.Verify {
		if opts.CAFile == "" {
			return nil, errors.New("--tlsverify needs a CA certificate (--tlscacert)")
		}
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s holds no PEM certificates", opts.CAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
