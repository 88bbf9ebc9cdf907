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
	"syscall"
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
	// Netns is the daemon's own network namespace (nil: the host's).
	Netns *Netns
	// cpuacct is the daemon's cpuacct cgroup ("": none).
	cpuacct string
}

// CPU is the CPU time the daemon and the processes it started have
// spent (-1 without Options.CPU): its shims and, for dockerd, containerd
// and runc; not the containers' own processes, which the runtime moves
// into the containers' cgroups (a container's init once it joined them).
func (e *Engine) CPU() time.Duration {
	if e.cpuacct == "" {
		return -1
	}
	data, err := os.ReadFile(filepath.Join(e.cpuacct, "cpuacct.usage"))
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return time.Duration(n)
}

// Stop ends the daemon (SIGINT, then SIGKILL after 20 s) and removes
// its network namespace, if it has one.
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
	e.Netns.Remove()
	e.removeCgroup()
}

// OwnCPU is the CPU time of the daemon process itself (all its
// threads), without its children; 10 ms resolution.
func (e *Engine) OwnCPU() time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(e.Cmd.Process.Pid) + "/stat")
	if err != nil {
		return -1
	}
	// The fields after the command's closing parenthesis: utime and
	// stime are the 12th and 13th.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ is 100
}

// removeCgroup deletes the daemon's cpuacct cgroup once it is empty.
func (e *Engine) removeCgroup() {
	if e.cpuacct == "" {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(e.cpuacct)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "remove cgroup %s: %v\n", e.cpuacct, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
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

// Options say how an engine is started.
type Options struct {
	// Netns runs the daemon in a network namespace of its own (made here,
	// removed by Stop) with its default networking: its default bridge,
	// its firewall rules and its forwarding setting all live and die in
	// that namespace, so nothing on the host changes and two engines'
	// bridges never collide. Without it, dockerd runs with
	// --bridge=none --iptables=false in the host's namespace.
	Netns bool
	// LogLevel is the daemon's --log-level ("": warn); LogFile, if set,
	// receives its log (else engined's goes to stderr, dockerd's nowhere).
	LogLevel string
	LogFile  string
	// CPU puts the daemon in a cpuacct cgroup of its own (cgroup v1),
	// so Engine.CPU can tell the CPU time it and its children spent.
	CPU bool
	// Extra flags for the daemon.
	Extra []string
}

// StartEngined runs bin with its roots under work/engined, in the host's
// network namespace.
func StartEngined(work, bin string, extra ...string) (*Engine, error) {
	return Engined(work, bin, Options{Extra: extra})
}

// Engined runs bin with its roots under work/engined.
func Engined(work, bin string, o Options) (*Engine, error) {
	root := filepath.Join(work, "engined")
	sock := filepath.Join(root, "run", "docker.sock")
	cfg := filepath.Join(work, "empty.json")
	if err := os.WriteFile(cfg, []byte("{}"), 0o644); err != nil {
		return nil, err
	}
	args := append([]string{"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "run"),
		"-H", "unix://" + sock, "--config-file", cfg, "--log-level", cmpOr(o.LogLevel, "warn")}, o.Extra...)
	e := &Engine{Name: "engined", Host: "unix://" + sock, ExecRoot: filepath.Join(root, "run")}
	if err := e.start(o, os.Stderr, bin, args...); err != nil {
		return nil, err
	}
	return e, nil
}

// StartDockerd runs Debian's dockerd (nil, nil when it is not installed)
// in the host's network namespace, without touching the host's iptables
// or bridge.
func StartDockerd(work string, extra ...string) (*Engine, error) {
	return Dockerd(work, Options{Extra: extra})
}

// Dockerd runs Debian's dockerd (nil, nil when it is not installed) with
// its roots under work/dockerd.
func Dockerd(work string, o Options) (*Engine, error) {
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
	args := []string{"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"),
		"--pidfile", filepath.Join(root, "dockerd.pid"), "-H", "unix://" + sock,
		"--config-file", cfg, "--log-level", cmpOr(o.LogLevel, "warn")}
	if !o.Netns {
		args = append(args, "--iptables=false", "--ip6tables=false", "--bridge=none")
	}
	args = append(args, o.Extra...)
	e := &Engine{Name: "dockerd", Host: "unix://" + sock, ExecRoot: filepath.Join(root, "exec")}
	if err := e.start(o, io.Discard, bin, args...); err != nil {
		return nil, err
	}
	return e, nil
}

// start runs the daemon, in a network namespace of its own if asked, and
// waits until it answers.
func (e *Engine) start(o Options, stderr io.Writer, bin string, args ...string) error {
	if o.Netns {
		ns, err := NewNetns(e.Name)
		if err != nil {
			return err
		}
		e.Netns = ns
		// nsenter joins the namespace and execs the daemon: the same pid.
		args = append([]string{"--net=" + ns.Path(), "--", bin}, args...)
		bin = "nsenter"
	}
	if o.CPU {
		cg := fmt.Sprintf("/sys/fs/cgroup/cpuacct/bench-%s-%d", e.Name, os.Getpid())
		if err := os.Mkdir(cg, 0o755); err != nil && !os.IsExist(err) {
			e.Netns.Remove()
			return fmt.Errorf("cpuacct cgroup: %w", err)
		}
		e.cpuacct = cg
		// The daemon joins it before it runs: all it starts is counted.
		args = append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg, bin}, args...)
		bin = "/bin/sh"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Dir(e.ExecRoot))
	cmd.Stderr = stderr
	if o.LogFile != "" {
		f, err := os.Create(o.LogFile)
		if err != nil {
			e.Netns.Remove()
			e.removeCgroup()
			return err
		}
		defer f.Close()
		cmd.Stderr = f
	}
	if err := cmd.Start(); err != nil {
		e.Netns.Remove()
		e.removeCgroup()
		return err
	}
	e.Cmd = cmd
	c, err := waitFor(e.Host)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		e.Netns.Remove()
		e.removeCgroup()
		return err
	}
	e.Client = c
	return nil
}

// Netns is a named network namespace (/run/netns/NAME) the benchmark
// made, with its loopback up.
type Netns struct{ Name string }

// NewNetns makes a network namespace named bench-<what>-<pid>.
func NewNetns(what string) (*Netns, error) {
	n := &Netns{Name: fmt.Sprintf("bench-%s-%d", what, os.Getpid())}
	exec.Command("ip", "netns", "del", n.Name).Run() // a previous run's with this pid
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	if out, err := exec.Command("ip", "-n", n.Name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		n.Remove()
		return nil, fmt.Errorf("loopback in %s: %v: %s", n.Name, err, out)
	}
	return n, nil
}

// Path is the namespace's file.
func (n *Netns) Path() string { return "/run/netns/" + n.Name }

// Pids are the processes still in the namespace.
func (n *Netns) Pids() []int {
	if n == nil {
		return nil
	}
	out, _ := exec.Command("ip", "netns", "pids", n.Name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// Remove kills what the daemon left in the namespace (its processes are
// the benchmark's: the namespace was made for it) and deletes it; its
// bridge, veths and firewall rules go with it.
func (n *Netns) Remove() {
	if n == nil {
		return
	}
	pids := n.Pids()
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(n.Pids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "%s: killed %d processes left in the namespace: %v\n", n.Name, len(pids), pids)
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "ip netns del %s: %v: %s\n", n.Name, err, out)
	}
}

// Links are the network interfaces in the engine's namespace.
func (e *Engine) Links() string {
	if e.Netns == nil {
		return ""
	}
	out, _ := exec.Command("ip", "-n", e.Netns.Name, "-br", "link").Output()
	return string(out)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
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
