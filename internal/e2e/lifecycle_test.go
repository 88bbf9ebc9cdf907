package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSecondEnginedRefused(t *testing.T) {
	e := startEngined(t)
	code, out := runEnginedExpectFailure(t, "--data-root", e.DataRoot, "--exec-root", e.ExecRoot, "-H", "unix://"+filepath.Join(e.ExecRoot, "other.sock"))
	want := "another engined (pid " + strconv.Itoa(e.cmd.Process.Pid) + ")"
	if code == 0 || !strings.Contains(out, want) {
		t.Errorf("second engined: exit %d, want non-zero and %q in:\n%s", code, want, out)
	}
	// Same data root, different exec root: the store's lock says so.
	_, otherExec := newRoots(t)
	code, out = runEnginedExpectFailure(t, "--data-root", e.DataRoot, "--exec-root", otherExec, "-H", "unix://"+filepath.Join(otherExec, "d.sock"))
	if code == 0 || !strings.Contains(out, "locked by another process") || !strings.Contains(out, e.DataRoot) {
		t.Errorf("engined on a locked store: exit %d:\n%s", code, out)
	}
	// The same socket, served by the first engined, is not stolen.
	_, otherExec = newRoots(t)
	otherData, _ := newRoots(t)
	code, out = runEnginedExpectFailure(t, "--data-root", otherData, "--exec-root", otherExec, "-H", e.Host)
	if code == 0 || !strings.Contains(out, "already in use") {
		t.Errorf("engined on a live socket: exit %d:\n%s", code, out)
	}
	if c, _, _ := e.get("/_ping"); c != 200 {
		t.Errorf("first engined stopped answering: %d", c)
	}
}

func TestCorruptStore(t *testing.T) {
	dataRoot, execRoot := newRoots(t)
	if err := os.MkdirAll(dataRoot, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataRoot, "engined.db"), []byte(strings.Repeat("not a database ", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runEnginedExpectFailure(t, "--data-root", dataRoot, "--exec-root", execRoot, "-H", "unix://"+filepath.Join(execRoot, "d.sock"))
	if code == 0 || !strings.Contains(out, filepath.Join(dataRoot, "engined.db")) || !strings.Contains(out, "damaged") {
		t.Errorf("corrupt store: exit %d:\n%s", code, out)
	}
	// The damaged file is left for the user to inspect, not overwritten.
	data, _ := os.ReadFile(filepath.Join(dataRoot, "engined.db"))
	if !strings.HasPrefix(string(data), "not a database") {
		t.Error("the corrupt store file was modified")
	}
}

func TestSIGTERMCleanShutdown(t *testing.T) {
	e := startEngined(t)
	pidFile := filepath.Join(e.ExecRoot, "engined.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(e.cmd.Process.Pid) {
		t.Fatalf("pid file %q, %v", data, err)
	}
	e.stop()
	mustContain(t, "engined log", e.out.String(), "shutting down", "engined stopped")
	for _, p := range []string{pidFile, e.Sock} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind after shutdown (%v)", p, err)
		}
	}
	// A pid file left by a killed engined does not block the next one.
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	e2.cmd.Process.Kill()
	<-e2.done
	e3 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	if c, _, _ := e3.get("/_ping"); c != 200 {
		t.Errorf("engined after a killed one: ping %d", c)
	}
}

func TestConfigFile(t *testing.T) {
	dataRoot, execRoot := newRoots(t)
	cfg := filepath.Join(filepath.Dir(dataRoot), "bad.json")
	os.WriteFile(cfg, []byte(`{"data-root": "/x", "no-such-key": true}`), 0o644)
	code, out := runEnginedExpectFailure(t, "--config-file", cfg)
	if code == 0 || !strings.Contains(out, `unknown key "no-such-key"`) {
		t.Errorf("unknown config key: exit %d:\n%s", code, out)
	}
	os.WriteFile(cfg, []byte(`{"tls": false, "tlsverify": true}`), 0o644)
	code, out = runEnginedExpectFailure(t, "--config-file", cfg)
	if code == 0 || !strings.Contains(out, "conflicting TLS settings") {
		t.Errorf("conflicting config: exit %d:\n%s", code, out)
	}
	os.WriteFile(cfg, []byte(`{"log-level": 3}`), 0o644)
	code, out = runEnginedExpectFailure(t, "--config-file", cfg)
	if code == 0 || !strings.Contains(out, `"log-level"`) {
		t.Errorf("mistyped config value: exit %d:\n%s", code, out)
	}
	code, out = runEnginedExpectFailure(t, "--config-file", filepath.Join(execRoot, "missing.json"))
	if code == 0 || !strings.Contains(out, "missing.json") {
		t.Errorf("missing explicit config file: exit %d:\n%s", code, out)
	}

	// Settings come from the file; flags win over it.
	os.WriteFile(cfg, []byte(`{"data-root": "/nonexistent/should-be-overridden", "labels": ["from=file"], "hosts": ["unix://`+filepath.Join(execRoot, "file.sock")+`"]}`), 0o644)
	e := &engined{t: t, DataRoot: dataRoot, ExecRoot: execRoot, Sock: filepath.Join(execRoot, "file.sock")}
	e.Host = "unix://" + e.Sock
	e.start([]string{"--config-file", cfg, "--data-root", dataRoot, "--exec-root", execRoot})
	e.waitReady()
	_, _, body := e.get("/info")
	mustContain(t, "/info", body, `"DockerRootDir":"`+dataRoot+`"`, `"Labels":["from=file"]`)
}

// fd:// takes the socket systemd (here systemd-socket-activate) passes.
func TestSocketActivation(t *testing.T) {
	dataRoot, execRoot := newRoots(t)
	if err := os.MkdirAll(execRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(execRoot, "activated.sock")
	e := &engined{t: t, DataRoot: dataRoot, ExecRoot: execRoot, Sock: sock, Host: "unix://" + sock}
	e.out = &lockedBuffer{}
	e.cmd = exec.Command("systemd-socket-activate", withTestNet(t, filepath.Dir(dataRoot), []string{"-l", sock, filepath.Join(binDir, "engined"),
		"-H", "fd://", "--data-root", dataRoot, "--exec-root", execRoot, "--config-file", filepath.Join(execRoot, "none.json")})...)
	os.WriteFile(filepath.Join(execRoot, "none.json"), []byte("{}"), 0o644)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("systemd-socket-activate: %v", err)
	}
	e.done = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		e.cmd.Process.Kill()
		<-e.done
		if t.Failed() {
			t.Logf("output:\n%s", e.out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s never appeared", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := docker(t, e.Host, "version")
	if err != nil {
		t.Fatalf("docker version over an activated socket: %v\n%s\n%s", err, out, e.out.String())
	}
	mustContain(t, "docker version", out, "Server: engined")
	mustContain(t, "engined log", e.out.String(), "addr=fd://")
	e.stop()
}
