package listener

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	cases := []struct {
		in           string
		tls          bool
		proto, addr  string
		errSubstring string
	}{
		{"unix:///run/engined/docker.sock", false, "unix", "/run/engined/docker.sock", ""},
		{"tcp://127.0.0.1:2375", false, "tcp", "127.0.0.1:2375", ""},
		{"tcp://127.0.0.1", false, "tcp", "127.0.0.1:2375", ""},
		{"tcp://127.0.0.1", true, "tcp", "127.0.0.1:2376", ""},
		{"tcp://:2376", false, "tcp", ":2376", ""},
		{"127.0.0.1:1234", false, "tcp", "127.0.0.1:1234", ""},
		{"tcp://[::1]:2375", false, "tcp", "[::1]:2375", ""},
		{"fd://", false, "fd", "", ""},
		{"fd://3", false, "fd", "3", ""},
		{"http://x", false, "", "", "unsupported scheme"},
		{"", false, "", "", "empty"},
		{"unix://", false, "", "", "needs a path"},
		{"tcp://127.0.0.1:99999", false, "", "", "bad port"},
		{"tcp://127.0.0.1:2375/path", false, "", "", "no path"},
	}
	for _, c := range cases {
		p, a, err := ParseHost(c.in, c.tls)
		if c.errSubstring != "" {
			if err == nil || !strings.Contains(err.Error(), c.errSubstring) {
				t.Errorf("ParseHost(%q) err = %v, want %q", c.in, err, c.errSubstring)
			}
			continue
		}
		if err != nil || p != c.proto || a != c.addr {
			t.Errorf("ParseHost(%q) = %q %q %v, want %q %q", c.in, p, a, err, c.proto, c.addr)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "lst-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sub", "d.sock")
	ctx := context.Background()
	ls, _, err := Open(ctx, []string{"unix://" + sock}, TLSOptions{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, %v", fi.Mode(), err)
	}
	// Accept in the background so the liveness probe of the next Open connects.
	go func() {
		for {
			c, err := ls[0].Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, _, err := Open(ctx, []string{"unix://" + sock}, TLSOptions{}, -1); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("second Open on a live socket: %v", err)
	}
	ls[0].Close()
	// The socket file remains (we keep it on close); it is now stale and is replaced.
	ls, _, err = Open(ctx, []string{"unix://" + sock}, TLSOptions{}, -1)
	if err != nil {
		t.Fatalf("Open over a stale socket: %v", err)
	}
	ls[0].Close()
	// A regular file is never removed.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("keep"), 0o644)
	if _, _, err := Open(ctx, []string{"unix://" + plain}, TLSOptions{}, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Open over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Error("regular file was touched")
	}
}

func TestTCPRules(t *testing.T) {
	ctx := context.Background()
	if _, _, err := Open(ctx, []string{"tcp://0.0.0.0:0"}, TLSOptions{}, -1); err == nil || !strings.Contains(err.Error(), "--tls=false") {
		t.Errorf("non-loopback without TLS: %v", err)
	}
	ls, warns, err := Open(ctx, []string{"tcp://0.0.0.0:0"}, TLSOptions{InsecureExplicit: true}, -1)
	if err != nil || len(warns) != 1 {
		t.Errorf("with --tls=false: %v %v", warns, err)
	}
	for _, l := range ls {
		l.Close()
	}
	ls, warns, err = Open(ctx, []string{"tcp://127.0.0.1:0"}, TLSOptions{}, -1)
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0], "without encryption") {
		t.Errorf("loopback without TLS: %v %v", warns, err)
	}
	for _, l := range ls {
		l.Close()
	}
	// A failure part-way closes what was opened: the first address is free again.
	ls, _, _ = Open(ctx, []string{"tcp://127.0.0.1:0"}, TLSOptions{}, -1)
	addr := ls[0].Address
	ls[0].Close()
	if _, _, err := Open(ctx, []string{addr, "bogus://x"}, TLSOptions{}, -1); err == nil {
		t.Fatal("bad second address accepted")
	}
	ls, _, err = Open(ctx, []string{addr}, TLSOptions{}, -1)
	if err != nil {
		t.Errorf("address not released after failed Open: %v", err)
	} else {
		ls[0].Close()
	}
}

func TestServerTLSConfigErrors(t *testing.T) {
	if _, err := ServerTLSConfig(TLSOptions{Enabled: true}); err == nil {
		t.Error("TLS without cert accepted")
	}
	if _, err := ServerTLSConfig(TLSOptions{Enabled: true, CertFile: "/nonexistent", KeyFile: "/nonexistent"}); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("missing cert file: %v", err)
	}
}

func TestFDWithoutActivation(t *testing.T) {
	os.Unsetenv("LISTEN_FDS")
	if _, _, err := Open(context.Background(), []string{"fd://"}, TLSOptions{}, -1); err == nil || !strings.Contains(err.Error(), "LISTEN_FDS") {
		t.Errorf("fd:// without activation: %v", err)
	}
}
