// Package engines starts engined and dockerd side by side for the
// benchmarks, each on its own roots and socket under a work directory.
package engines

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Engine is one running daemon.
type Engine struct {
	Name     string
	Host     string
	ExecRoot string
	Cmd      *exec.Cmd
	Client   *client.Client
}

// Stop ends the daemon (SIGINT, then SIGKILL after 20 s).
func (e *Engine) Stop() {
	e.Cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { e.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		e.Cmd.Process.Kill()
		<-done
	}
}

// RSS is the daemon's resident set in KiB.
func (e *Engine) RSS() int64 { return RSS(e.Cmd.Process.Pid) }

// RSS reads VmRSS of pid in KiB.
func RSS(pid int) int64 { return procField(pid, "status", "VmRSS:") }

// Private is pid's anonymous resident memory (RssAnon) in KiB: what the
// process costs beyond the file pages (its binary, libc) it shares.
func Private(pid int) int64 { return procField(pid, "status", "RssAnon:") }

// PSS is pid's proportional set size in KiB: shared pages divided among
// the processes that map them.
func PSS(pid int) int64 { return procField(pid, "smaps_rollup", "Pss:") }

func procField(pid int, file, key string) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// StartEngined runs bin with its roots under work/engined.
func StartEngined(work, bin string, extra ...string) (*Engine, error) {
	root := filepath.Join(work, "engined")
	sock := filepath.Join(root, "run", "docker.sock")
	cfg := filepath.Join(work, "empty.json")
	if err := os.WriteFile(cfg, []byte("{}"), 0o644); err != nil {
		return nil, err
	}
	args := append([]string{"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "run"),
		"-H", "unix://" + sock, "--config-file", cfg, "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c, err := waitFor("unix://" + sock)
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	return &Engine{Name: "engined", Host: "unix://" + sock, ExecRoot: filepath.Join(root, "run"), Cmd: cmd, Client: c}, nil
}

// StartDockerd runs Debian's dockerd (nil, nil when it is not installed)
// without touching the host's iptables or bridge.
func StartDockerd(work string, extra ...string) (*Engine, error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, nil
	}
	root := filepath.Join(work, "dockerd")
	sock := filepath.Join(root, "docker.sock")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(work, "empty.json")
	os.WriteFile(cfg, []byte("{}"), 0o644)
	args := append([]string{"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"),
		"--pidfile", filepath.Join(root, "dockerd.pid"), "-H", "unix://" + sock, "--iptables=false", "--ip6tables=false",
		"--bridge=none", "--config-file", cfg, "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+root)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c, err := waitFor("unix://" + sock)
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	return &Engine{Name: "dockerd", Host: "unix://" + sock, ExecRoot: filepath.Join(root, "exec"), Cmd: cmd, Client: c}, nil
}

func waitFor(host string) (*client.Client, error) {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Ping(context.Background(), client.PingOptions{NegotiateAPIVersion: true}); err == nil {
			return c, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("%s did not answer", host)
}

// Median of durations.
func Median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// StartAll starts engined and, when installed, dockerd with the same
// extra flags; the caller stops them.
func StartAll(work, enginedBin string, extra ...string) ([]*Engine, error) {
	en, err := StartEngined(work, enginedBin, extra...)
	if err != nil {
		return nil, err
	}
	d, err := StartDockerd(work, extra...)
	if err != nil {
		en.Stop()
		return nil, err
	}
	if d == nil {
		fmt.Println("dockerd: not installed (apt-get install docker.io), engined only")
		return []*Engine{en}, nil
	}
	return []*Engine{en, d}, nil
}
