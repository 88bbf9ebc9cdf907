package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/engined/engined/internal/testtls"
)

// childEnv makes the test binary act as a socket-activated daemon that
// opens the fd:// address in the variable's value.
const childEnv = "ENGINED_LISTENER_TEST_CHILD"

func TestMain(m *testing.M) {
	if addr, ok := os.LookupEnv(childEnv); ok {
		os.Exit(activationChild(addr))
	}
	os.Exit(m.Run())
}

// activationChild opens addr, checks what socket activation left behind
// and answers one connection with its pid.
func activationChild(addr string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	// The parent can't know this pid before starting us; systemd can.
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	ls, _, err := Open(context.Background(), []string{addr}, TLSOptions{}, -1)
	if err != nil {
		return fail("%v", err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			return fail("%s=%s still set after Open", k, v)
		}
	}
	if len(ls) != 1 || ls[0].Proto != "fd" || ls[0].Address != addr || ls[0].TLS {
		return fail("got %d listeners, first %+v", len(ls), ls[0])
	}
	c, err := ls[0].Accept()
	if err != nil {
		return fail("accept: %v", err)
	}
	fmt.Fprintf(c, "served by %d", os.Getpid())
	c.Close()
	ls[0].Close()
	return 0
}

func TestParseHost(t *testing.T) {
	cases := []struct {
		in          string
		tls         bool
		proto, addr string
		errSub      string
	}{
		{"unix:///run/engined/docker.sock", false, "unix", "/run/engined/docker.sock", ""},
		{"unix:///tmp/a%20b?c#d.sock", false, "unix", "/tmp/a%20b?c#d.sock", ""},
		{"tcp://127.0.0.1:2375", false, "tcp", "127.0.0.1:2375", ""},
		{"tcp://127.0.0.1", false, "tcp", "127.0.0.1:2375", ""},
		{"tcp://127.0.0.1", true, "tcp", "127.0.0.1:2376", ""},
		{"tcp://example.com", false, "tcp", "example.com:2375", ""},
		{"tcp://:2376", false, "tcp", ":2376", ""},
		{"tcp://127.0.0.1:2375/", false, "tcp", "127.0.0.1:2375", ""},
		{"127.0.0.1:1234", false, "tcp", "127.0.0.1:1234", ""},
		{"tcp://[::1]:2375", false, "tcp", "[::1]:2375", ""},
		{"tcp://[::1]", true, "tcp", "[::1]:2376", ""},
		{"fd://", false, "fd", "", ""},
		{"fd://3", false, "fd", "3", ""},
		{"fd://docker.socket", false, "fd", "docker.socket", ""},
		{"http://x", false, "", "", `invalid host "http://x": unsupported scheme`},
		{"", false, "", "", "empty"},
		{"unix://", false, "", "", `"unix://": unix socket needs a path`},
		{"tcp://127.0.0.1:", false, "", "", `"tcp://127.0.0.1:": empty port`},
		{"tcp://127.0.0.1:99999", false, "", "", "bad port"},
		{"tcp://127.0.0.1:x", false, "", "", `invalid host "tcp://127.0.0.1:x"`},
		{"tcp://127.0.0.1:2375/path", false, "", "", "want tcp://host:port"},
		{"/var/run/docker.sock", false, "", "", "want tcp://host:port"},
	}
	for _, c := range cases {
		p, a, err := ParseHost(c.in, c.tls)
		if c.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.errSub) {
				t.Errorf("ParseHost(%q) = %q %q %v, want error containing %q", c.in, p, a, err, c.errSub)
			}
			continue
		}
		if err != nil || p != c.proto || a != c.addr {
			t.Errorf("ParseHost(%q, %v) = %q %q %v, want %q %q", c.in, c.tls, p, a, err, c.proto, c.addr)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "d.sock")
	addr := "unix://" + sock

	// A stale socket: bound once, its server gone, the file left behind.
	if err := os.Mkdir(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	gid := -1
	if os.Geteuid() == 0 {
		gid = 4242 // any group will do for root; proves the chown happened
	}
	ls, warns, err := Open(ctx, []string{addr}, TLSOptions{}, gid)
	if err != nil {
		t.Fatalf("Open over a stale socket: %v", err)
	}
	defer ls[0].Close()
	if len(ls) != 1 || ls[0].Address != addr || ls[0].Proto != "unix" || ls[0].TLS || len(warns) != 0 {
		t.Errorf("got %+v, warnings %q", ls[0], warns)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	if gid >= 0 {
		if got := fi.Sys().(*syscall.Stat_t).Gid; got != uint32(gid) {
			t.Errorf("socket group %d, want %d", got, gid)
		}
	}
	// The listener works: dial it and accept.
	go func() {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
	}()
	c, err := ls[0].Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	c.Close()

	// Serve in the background so the liveness probe of the next Open connects.
	go func() {
		for {
			c, err := ls[0].Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, _, err = Open(ctx, []string{addr}, TLSOptions{}, -1)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
		t.Errorf("second Open on a live socket: %v, want address already in use naming %s", err, addr)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("live socket removed by the failed Open: %v", err)
	}

	// Anything but a socket is never removed.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(ctx, []string{"unix://" + plain}, TLSOptions{}, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Open over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Error("regular file was touched")
	}
}

func TestTCPWithoutTLS(t *testing.T) {
	ctx := context.Background()
	_, _, err := Open(ctx, []string{"tcp://0.0.0.0:0"}, TLSOptions{}, -1)
	if err == nil || !strings.Contains(err.Error(), "tcp://0.0.0.0:0") || !strings.Contains(err.Error(), "--tls=false") || !strings.Contains(err.Error(), "--tlsverify") {
		t.Errorf("non-loopback without TLS: %v", err)
	}
	for _, addr := range []string{"tcp://:0", "tcp://[::]:0"} {
		if _, _, err := Open(ctx, []string{addr}, TLSOptions{}, -1); err == nil {
			t.Errorf("%s without TLS accepted", addr)
		}
	}

	ls, warns, err := Open(ctx, []string{"tcp://0.0.0.0:0"}, TLSOptions{InsecureExplicit: true}, -1)
	if err != nil {
		t.Fatalf("with --tls=false: %v", err)
	}
	ls[0].Close()
	if len(warns) != 1 || !strings.Contains(warns[0], "without TLS") {
		t.Errorf("with --tls=false: warnings %q", warns)
	}

	for _, addr := range []string{"tcp://127.0.0.1:0", "tcp://localhost:0"} {
		ls, warns, err := Open(ctx, []string{addr}, TLSOptions{}, -1)
		if err != nil {
			t.Fatalf("loopback %s without TLS: %v", addr, err)
		}
		ls[0].Close()
		want := "binding to " + addr + " without TLS: anyone on this machine can control the engine"
		if len(warns) != 1 || !strings.HasPrefix(warns[0], want) {
			t.Errorf("loopback %s: warnings %q, want %q...", addr, warns, want)
		}
		if ls[0].Address != addr || ls[0].Proto != "tcp" || ls[0].TLS {
			t.Errorf("loopback %s: got %+v", addr, ls[0])
		}
	}
}

func TestOpenClosesOnError(t *testing.T) {
	ctx := context.Background()
	sock := filepath.Join(t.TempDir(), "d.sock")
	ls, warns, err := Open(ctx, []string{"tcp://127.0.0.1:0", "unix://" + sock, "bogus://x"}, TLSOptions{}, -1)
	if err == nil || !strings.Contains(err.Error(), "bogus://x") || ls != nil || warns != nil {
		t.Fatalf("Open with a bad address: %v %v %q", ls, warns, err)
	}
	// The unix listener opened before the failure was closed (and unlinked).
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket of the failed Open still there: %v", err)
	}
	ls, _, err = Open(ctx, []string{"unix://" + sock}, TLSOptions{}, -1)
	if err != nil {
		t.Fatalf("address not released after failed Open: %v", err)
	}
	ls[0].Close()
}

func TestServerTLSConfigErrors(t *testing.T) {
	p := newPKI(t)
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o644)
	cases := []struct {
		name   string
		opts   TLSOptions
		errSub string
	}{
		{"no cert", TLSOptions{Enabled: true}, "--tlscert"},
		{"missing cert", TLSOptions{Enabled: true, CertFile: "/nonexistent.pem", KeyFile: "/nonexistent-key.pem"}, "/nonexistent.pem"},
		{"verify without CA", TLSOptions{Verify: true, CertFile: p.ServerCert, KeyFile: p.ServerKey}, "--tlscacert"},
		{"missing CA", TLSOptions{Verify: true, CAFile: "/nonexistent-ca.pem", CertFile: p.ServerCert, KeyFile: p.ServerKey}, "/nonexistent-ca.pem"},
		{"CA without certs", TLSOptions{Verify: true, CAFile: empty, CertFile: p.ServerCert, KeyFile: p.ServerKey}, "no PEM certificates"},
	}
	for _, c := range cases {
		if _, err := ServerTLSConfig(c.opts); err == nil || !strings.Contains(err.Error(), c.errSub) {
			t.Errorf("%s: %v, want error containing %q", c.name, err, c.errSub)
		}
	}
	cfg, err := ServerTLSConfig(TLSOptions{Verify: true, CAFile: p.CA, CertFile: p.ServerCert, KeyFile: p.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil ||
		len(cfg.Certificates) != 1 || strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" {
		t.Errorf("config: %+v", cfg)
	}
	// Without a CA Open fails before binding anything.
	if _, _, err := Open(context.Background(), []string{"tcp://127.0.0.1:0"}, TLSOptions{Verify: true, CertFile: p.ServerCert, KeyFile: p.ServerKey}, -1); err == nil {
		t.Error("Open with --tlsverify and no CA succeeded")
	}
}

func TestTLSVerify(t *testing.T) {
	p := newPKI(t)
	ls, warns, err := Open(context.Background(), []string{"tcp://127.0.0.1:0"},
		TLSOptions{Verify: true, CAFile: p.CA, CertFile: p.ServerCert, KeyFile: p.ServerKey}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || !ls[0].TLS || ls[0].Address != "tcp://127.0.0.1:0" || len(warns) != 0 {
		t.Fatalf("got %+v, warnings %q", ls[0], warns)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}),
		ErrorLog: log.New(io.Discard, "", 0), // the rejected handshakes below are expected
	}
	go srv.Serve(ls[0])
	defer srv.Close()
	addr := ls[0].Addr().String()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}},
	}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("client with certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("client with certificate: %s %q", resp.Status, body)
	}

	// gRPC clients find h2 by ALPN.
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("h2 dial: %v", err)
	}
	if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("ALPN negotiated %q, want h2", got)
	}
	conn.Close()

	// Without a client certificate: in TLS 1.3 the client may finish its
	// side of the handshake before the server's rejection arrives, so
	// the failure can surface on the first read.
	conn, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: p.Pool})
	if err == nil {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("client without certificate: %v, want the handshake to fail with certificate required", err)
	}
	if _, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.Pool},
	}}).Get("https://" + addr + "/"); err == nil {
		t.Error("HTTP client without certificate succeeded")
	}
}

func TestFDWithoutActivation(t *testing.T) {
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	_, _, err := Open(context.Background(), []string{"fd://"}, TLSOptions{}, -1)
	if err == nil || !strings.Contains(err.Error(), "fd://") || !strings.Contains(err.Error(), "LISTEN_FDS") {
		t.Errorf("fd:// without activation: %v", err)
	}
}

// TestSocketActivation hands a listening socket to a child at fd 3, as
// systemd does, and checks the child serves on it.
func TestSocketActivation(t *testing.T) {
	cases := []struct{ addr, errSub string }{
		{"fd://", ""},
		{"fd://3", ""},
		{"fd://api", ""},
		{"fd://4", `no activated socket has fd number or name "4"`},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			f, err := l.(*net.TCPListener).File()
			l.Close() // f, a dup, keeps the socket listening
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"="+c.addr, "LISTEN_FDS=1", "LISTEN_FDNAMES=api")
			cmd.ExtraFiles = []*os.File{f}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			f.Close() // now only the child holds the socket

			if c.errSub != "" {
				err := cmd.Wait()
				if err == nil || !strings.Contains(stderr.String(), c.errSub) {
					t.Errorf("child: %v, stderr %q, want %q", err, stderr.String(), c.errSub)
				}
				return
			}
			conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("dial: %v (child stderr %q)", err, stderr.String())
			}
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			got, _ := io.ReadAll(conn)
			conn.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v, stderr %q", err, stderr.String())
			}
			if want := fmt.Sprintf("served by %d", cmd.Process.Pid); string(got) != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func newPKI(t *testing.T) *testtls.PKI {
	t.Helper()
	p, err := testtls.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
