package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/engined/engined/internal/shimclient"
)

// dockerCLI is the real Docker CLI the tests drive engined with.
const dockerCLI = "/usr/local/bin/docker"

// binDir holds the engined, shim and docker binaries built for this run.
var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests start engined and must run as root (make test does, and CI runs as root)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "engined-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// As make build: the seccomp tag (with cgo, against libseccomp) is
	// what makes the shim apply seccomp profiles; engined and the CLI
	// are static.
	for _, b := range [][]string{
		{"-tags", "seccomp,netgo,osusergo", "../../cmd/engined", "../../cmd/docker"},
		{"-tags", "seccomp", "../../cmd/shim"},
	} {
		build := exec.Command("go", append([]string{"build", "-o", dir + "/"}, b...)...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build binaries:", err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// engined is one running daemon under test.
type engined struct {
	t        *testing.T
	cmd      *exec.Cmd
	out      *lockedBuffer
	done     chan struct{}
	DataRoot string
	ExecRoot string
	Sock     string // unix socket path
	Host     string // unix://Sock
	// wrap, if set, starts engined through this command (engined's path
	// and arguments follow it), e.g. a shell that ignores signals first.
	wrap []string
}

// newRoots makes short temporary roots: unix socket paths are limited to
// 108 bytes, and test names make t.TempDir() long.
func newRoots(t *testing.T) (dataRoot, execRoot string) {
	t.Helper()
	base, err := os.MkdirTemp("", "engined-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dataRoot, execRoot = filepath.Join(base, "data"), filepath.Join(base, "run")
	return dataRoot, execRoot
}

// startEngined starts engined on fresh roots with a unix socket plus any
// extra arguments, and waits until it answers /_ping.
func startEngined(t *testing.T, extra ...string) *engined {
	t.Helper()
	dataRoot, execRoot := newRoots(t)
	return startEnginedAt(t, dataRoot, execRoot, extra...)
}

func startEnginedAt(t *testing.T, dataRoot, execRoot string, extra ...string) *engined {
	t.Helper()
	return startEnginedWrapped(t, nil, dataRoot, execRoot, extra...)
}

// startEnginedWrapped is startEnginedAt with engined started through wrap.
func startEnginedWrapped(t *testing.T, wrap []string, dataRoot, execRoot string, extra ...string) *engined {
	t.Helper()
	e := startEnginedNoWait(t, wrap, dataRoot, execRoot, extra...)
	e.waitReady()
	return e
}

// startEnginedNoWait is startEnginedWrapped without waiting until engined
// answers.
func startEnginedNoWait(t *testing.T, wrap []string, dataRoot, execRoot string, extra ...string) *engined {
	t.Helper()
	e := &engined{t: t, DataRoot: dataRoot, ExecRoot: execRoot, Sock: filepath.Join(execRoot, "docker.sock"), wrap: wrap}
	e.Host = "unix://" + e.Sock
	// An empty config file of the test's own keeps /etc/engined out of it.
	cfgFile := filepath.Join(filepath.Dir(dataRoot), "daemon.json")
	if _, err := os.Stat(cfgFile); err != nil {
		if err := os.WriteFile(cfgFile, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--data-root", dataRoot, "--exec-root", execRoot, "-H", e.Host, "--log-level", "debug",
		"--config-file", cfgFile}, extra...)
	e.start(args)
	return e
}

func (e *engined) start(args []string) {
	e.t.Helper()
	e.out = &lockedBuffer{}
	args = withTestNet(e.t, filepath.Dir(e.DataRoot), args)
	e.cmd = exec.Command(filepath.Join(binDir, "engined"), args...)
	if len(e.wrap) > 0 {
		e.cmd = exec.Command(e.wrap[0], append(append(e.wrap[1:len(e.wrap):len(e.wrap)], e.cmd.Path), args...)...)
	}
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("start engined: %v", err)
	}
	e.done = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.done) }()
	e.t.Cleanup(func() {
		select {
		case <-e.done:
			// Killed by the test and not started again: its idle shims
			// are no next engined's to end.
			shimclient.EndIdle(filepath.Join(e.ExecRoot, "idle-shims"))
		default:
			// Containers and shims outlive engined by design: remove what
			// the test left, then stop engined, which ends its idle shim.
			e.removeAllContainers()
			e.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.done:
			case <-time.After(20 * time.Second):
				e.cmd.Process.Kill()
				<-e.done
			}
		}
		// The DNS resolver outlives engined by design, as shims do.
		stopResolver(e.t, e.ExecRoot)
		if e.t.Failed() {
			e.t.Logf("engined output:\n%s", e.out.String())
		}
	})
}

// stopResolver ends the engined's DNS resolver, if it has one, with
// SIGTERM (it must exit cleanly) and SIGKILL after a deadline.
func stopResolver(t *testing.T, execRoot string) {
	b, err := os.ReadFile(filepath.Join(execRoot, "dns", "resolver.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	if !poll(10*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Errorf("the DNS resolver (pid %d) did not exit after SIGTERM", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (e *engined) removeAllContainers() {
	c := unixClient(e.Sock)
	resp, err := c.Get("http://engined/containers/json?all=1")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var list []struct{ Id string }
	json.NewDecoder(resp.Body).Decode(&list)
	for _, ct := range list {
		req, _ := http.NewRequest(http.MethodDelete, "http://engined/containers/"+ct.Id+"?force=1", nil)
		if r, err := c.Do(req); err == nil {
			r.Body.Close()
		}
	}
}

func (e *engined) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			e.t.Fatalf("engined exited early (%v):\n%s", e.cmd.ProcessState, e.out.String())
		default:
		}
		if resp, err := unixClient(e.Sock).Get("http://engined/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("engined did not answer /_ping in time:\n%s", e.out.String())
}

// stop sends SIGTERM and requires a clean exit.
func (e *engined) stop() {
	e.t.Helper()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatalf("signal engined: %v", err)
	}
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		e.t.Fatalf("engined did not stop after SIGTERM:\n%s", e.out.String())
	}
	if !e.cmd.ProcessState.Success() {
		e.t.Fatalf("engined exited with %v after SIGTERM:\n%s", e.cmd.ProcessState, e.out.String())
	}
}

// runEnginedExpectFailure runs engined with args and returns its exit code
// and output; it fails the test if engined is still running after 30s.
func runEnginedExpectFailure(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "engined"), args...)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("engined %v did not exit:\n%s", args, out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func unixClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
}

// get does a GET on engined's socket and returns status, headers and body.
func (e *engined) get(path string) (int, http.Header, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path)
}

func (e *engined) do(method, path string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://engined"+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := unixClient(e.Sock).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// docker runs the real docker CLI against host with a private config dir.
func docker(t *testing.T, host string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(dockerCLI, append([]string{"-H", host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// poll checks cond until it holds or within passes, and says whether it
// held: the one place the tests wait for a condition.
func poll(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(30*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, got)
		}
	}
}
