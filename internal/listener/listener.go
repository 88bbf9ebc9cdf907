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
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// TLSOptions are the server's --tls* settings.
type TLSOptions struct {
	Enabled  bool
	Verify   bool
	CAFile   string
	CertFile string
	KeyFile  string
	// InsecureExplicit is --tls=false given on purpose: the only way to
	// serve plain tcp on a non-loopback address.
	InsecureExplicit bool
}

// Listener is one opened -H address.
type Listener struct {
	net.Listener
	Address string // normalised, e.g. unix:///run/engined/docker.sock
	Proto   string // unix, tcp or fd
	TLS     bool
}

// ParseHost normalises a -H value.
func ParseHost(addr string, tlsEnabled bool) (proto, address string, err error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", "", errors.New("empty host address")
	}
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", fmt.Errorf("invalid host %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if u.Host != "" {
			p = u.Host + p
		}
		if p == "" {
			return "", "", fmt.Errorf("invalid host %q: unix socket needs a path", addr)
		}
		return "unix", p, nil
	case "fd":
		return "fd", u.Host, nil
	case "tcp":
		if u.Path != "" && u.Path != "/" {
			return "", "", fmt.Errorf("invalid host %q: tcp address takes no path", addr)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			if strings.HasSuffix(u.Host, ":") {
				return "", "", fmt.Errorf("invalid host %q: empty port", addr)
			}
			port = "2375"
			if tlsEnabled {
				port = "2376"
			}
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return "", "", fmt.Errorf("invalid host %q: bad port %q", addr, port)
		}
		return "tcp", net.JoinHostPort(host, port), nil
	}
	return "", "", fmt.Errorf("invalid host %q: unsupported scheme %q (use unix://, tcp:// or fd://)", addr, u.Scheme)
}

// Open creates listeners for all addresses, closing what it opened on error.
// warnings are for the caller to log loudly.
func Open(ctx context.Context, addrs []string, opts TLSOptions, gid int) (ls []*Listener, warnings []string, err error) {
	defer func() {
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			ls = nil
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
		switch proto {
		case "unix":
			l, err := openUnix(ctx, address, gid)
			if err != nil {
				return ls, nil, fmt.Errorf("listen on unix://%s: %w", address, err)
			}
			ls = append(ls, &Listener{Listener: l, Address: "unix://" + address, Proto: "unix"})
		case "tcp":
			loopback := isLoopback(address)
			if tlsConfig == nil && !loopback && !opts.InsecureExplicit {
				return ls, nil, fmt.Errorf("refusing to listen on tcp://%s without TLS: anyone who can reach it controls the host; "+
					"set --tlsverify --tlscacert --tlscert --tlskey, or pass --tls=false to accept the risk", address)
			}
			var lc net.ListenConfig
			l, err := lc.Listen(ctx, "tcp", address)
			if err != nil {
				return ls, nil, fmt.Errorf("listen on tcp://%s: %w", address, err)
			}
			ln := &Listener{Listener: l, Address: "tcp://" + l.Addr().String(), Proto: "tcp"}
			if tlsConfig != nil {
				ln.Listener, ln.TLS = tls.NewListener(l, tlsConfig), true
			} else {
				what := "anyone on this machine"
				if !loopback {
					what = "anyone who can reach this address"
				}
				warnings = append(warnings, fmt.Sprintf("API is accessible on http://%s without encryption: %s can control the engine; use TLS (--tlsverify) instead", l.Addr(), what))
			}
			ls = append(ls, ln)
		case "fd":
			fls, err := activated(address)
			if err != nil {
				return ls, nil, err
			}
			for _, l := range fls {
				ln := &Listener{Listener: l, Address: "fd://" + address, Proto: "fd"}
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

// openUnix binds a unix socket, replacing a stale socket file but never one
// a live process still serves.
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
			return nil, errors.New("address already in use: another process serves this socket")
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
	// Removing the socket is the caller's choice at shutdown, not Close's.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

var (
	activationOnce sync.Once
	activatedFiles []*os.File
)

// activated returns the systemd-activated listeners named by the fd://
// address: all of them for "fd://", else the one with that fd number or
// LISTEN_FDNAMES name.
func activated(which string) ([]net.Listener, error) {
	activationOnce.Do(func() {
		// true: unset LISTEN_* so children (shims) don't inherit them.
		activatedFiles = activation.Files(true)
	})
	if len(activatedFiles) == 0 {
		return nil, errors.New("fd:// given but no sockets were passed by systemd (LISTEN_FDS is not set for this process)")
	}
	var out []net.Listener
	for _, f := range activatedFiles {
		if which != "" && which != strconv.Itoa(int(f.Fd())) && which != f.Name() {
			continue
		}
		l, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("fd://%s: fd %d is not a listening socket: %w", which, f.Fd(), err)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fd://%s: no activated socket has that fd number or name", which)
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
		return nil, fmt.Errorf("load TLS certificate %s: %w", opts.CertFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if opts.Verify {
		if opts.CAFile == "" {
			return nil, errors.New("--tlsverify needs --tlscacert")
		}
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates found in %s", opts.CAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
