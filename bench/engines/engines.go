// Package engines starts engined and dockerd side by side for the
// benchmarks, each on its own roots and socket under a work directory.
package engines

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/sdnotify"
	"github.com/engined/engined/internal/testimage"
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
	// hostNet is engined's own bridge in the host's namespace (nil: none).
	hostNet *hostNet
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
	e.hostNet.remove()
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
	args := []string{"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "run"),
		"-H", "unix://" + sock, "--config-file", cfg, "--log-level", cmpOr(o.LogLevel, "warn")}
	e := &Engine{Name: "engined", Host: "unix://" + sock, ExecRoot: filepath.Join(root, "run")}
	if !o.Netns {
		// In the host's namespace engined's default bridge would be the
		// host's engined0 with forwarding turned on: it gets a bridge, a
		// subnet and a table of its own instead, removed by Stop.
		n, err := newHostNet()
		if err != nil {
			return nil, err
		}
		e.hostNet = n
		args = append(args, n.args()...)
	}
	args = append(args, o.Extra...)
	if err := e.start(o, os.Stderr, bin, args...); err != nil {
		e.hostNet.remove()
		return nil, err
	}
	return e, nil
}

// hostNet is the default bridge of an engined in the host's namespace.
type hostNet struct{ bridge, gateway, table string }

func (n *hostNet) args() []string {
	return []string{"--bridge", n.bridge, "--bip", n.gateway + "/24", "--nft-table", n.table, "--ip-forward=false"}
}

// newHostNet picks a 10.x.y.0/24 no route on the host covers and names
// from the same random bytes.
func newHostNet() (*hostNet, error) {
	out, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("ip route: %w", err)
	}
	var routed []*net.IPNet
	for _, f := range strings.Fields(string(out)) {
		if _, p, err := net.ParseCIDR(f); err == nil {
			routed = append(routed, p)
		}
	}
	for {
		b := make([]byte, 4)
		rand.Read(b)
		_, p, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", 100+int(b[0])%150, b[1]))
		if slices.ContainsFunc(routed, func(r *net.IPNet) bool { return r.Contains(p.IP) || p.Contains(r.IP) }) {
			continue
		}
		id := hex.EncodeToString(b[2:])
		gw := p.IP.To4()
		return &hostNet{bridge: "bn" + id, gateway: fmt.Sprintf("%d.%d.%d.1", gw[0], gw[1], gw[2]), table: "engined_bn" + id}, nil
	}
}

// remove deletes the bridge, the table and the accepts engined put in
// the iptables FORWARD chain for this table, if any.
func (n *hostNet) remove() {
	if n == nil {
		return
	}
	exec.Command("ip", "link", "del", n.bridge).Run()
	exec.Command("nft", "delete", "table", "ip", n.table).Run()
	out, err := exec.Command("nft", "-a", "list", "chain", "ip", "filter", "FORWARD").Output()
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "# handle "); i >= 0 && strings.Contains(l, `comment "engined `+n.table+` `) {
			exec.Command("nft", "delete", "rule", "ip", "filter", "FORWARD", "handle", strings.TrimSpace(l[i+len("# handle "):])).Run()
		}
	}
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
		args = append(args, "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false")
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

// HostState is what a daemon in the host's namespace would change: the
// benchmarks check that none of it did.
type HostState struct {
	ipForward string
	links     map[string]bool
	chains    map[string]bool
	cgroups   map[string]bool
}

// SnapshotHost records the host's state before a benchmark.
func SnapshotHost() HostState {
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return HostState{ipForward: strings.TrimSpace(string(fwd)), links: hostLinks(), chains: dockerChains(), cgroups: parentCgroups()}
}

// parentCgroups are the cgroup directories the engines put their
// containers' under (dockerd's /docker, engined's /engined), that exist.
func parentCgroups() map[string]bool {
	m := map[string]bool{}
	for _, p := range []string{"docker", "engined"} {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + p)
		if d := "/sys/fs/cgroup/" + p; fileExists(d) {
			dirs = append(dirs, d) // cgroup v2
		}
		for _, d := range dirs {
			m[d] = true
		}
	}
	return m
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Check reports what changed on the host since h, and removes the parent
// cgroups the engines made (empty once their containers are gone: a
// cgroup that still has children is not removed and is reported).
func (h HostState) Check() {
	for d := range parentCgroups() {
		if !h.cgroups[d] {
			if err := os.Remove(d); err != nil {
				fmt.Fprintf(os.Stderr, "host: cgroup %s left: %v\n", d, err)
			}
		}
	}
	now := SnapshotHost()
	if now.ipForward != h.ipForward {
		fmt.Fprintf(os.Stderr, "host: net.ipv4.ip_forward is %s, was %s\n", now.ipForward, h.ipForward)
	}
	for _, l := range []string{"docker0", "engined0"} {
		if now.links[l] && !h.links[l] {
			fmt.Fprintf(os.Stderr, "host: %s appeared\n", l)
		}
	}
	for c := range now.chains {
		if !h.chains[c] {
			fmt.Fprintf(os.Stderr, "host: nftables chain %s appeared\n", c)
		}
	}
}

func hostLinks() map[string]bool {
	out, _ := exec.Command("ip", "-o", "link").Output()
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			m[strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")] = true
		}
	}
	return m
}

// dockerChains are the host's nftables chains whose names dockerd uses
// (DOCKER, DOCKER-USER, DOCKER-ISOLATION-STAGE-*), by table.
func dockerChains() map[string]bool {
	out, _ := exec.Command("nft", "-j", "list", "chains").Output()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	json.Unmarshal(out, &doc)
	m := map[string]bool{}
	for _, o := range doc.Nftables {
		var c struct{ Family, Table, Name string }
		if raw, ok := o["chain"]; ok && json.Unmarshal(raw, &c) == nil && strings.HasPrefix(c.Name, "DOCKER") {
			m[c.Family+" "+c.Table+" "+c.Name] = true
		}
	}
	return m
}

// Restart stops the daemon with SIGTERM (its containers keep running:
// engined always, dockerd with --live-restore), starts it again with the
// same command line, and returns how long it took from the new
// process's start until ready(e) held, polled without pause. ready gets
// the new client.
func (e *Engine) Restart(ready func(*Engine) bool) (time.Duration, error) {
	e.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return 0, fmt.Errorf("%s did not stop within 60 s of SIGTERM", e.Name)
	}
	cmd := exec.Command(e.Cmd.Path, e.Cmd.Args[1:]...)
	cmd.Env, cmd.Stderr = e.Cmd.Env, e.Cmd.Stderr
	if f, ok := e.Cmd.Stderr.(*os.File); ok && f != os.Stderr {
		cmd.Stderr = os.Stderr // the log file given at the first start was closed
	}
	c, err := client.New(client.WithHost(e.Host))
	if err != nil {
		return 0, err
	}
	// Both daemons tell a Type=notify unit's manager when they serve
	// (sd_notify READY=1): the first /_ping is sent then, not by a
	// client spinning on a refused connection meanwhile, which took one
	// of two CPUs from the starting daemon.
	notify, err := sdnotify.Listen(filepath.Join(filepath.Dir(e.ExecRoot), "notify.sock"))
	if err != nil {
		return 0, err
	}
	defer notify.Close()
	cmd.Env = append(slices.Clone(e.Cmd.Env), "NOTIFY_SOCKET="+notify.Path())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	e.Cmd, e.Client = cmd, c
	deadline := start.Add(60 * time.Second)
	if err := notify.WaitReady(cmd.Process.Pid, deadline); err != nil {
		return 0, fmt.Errorf("%s: %w", e.Name, err)
	}
	for !ready(e) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not ready 60 s after its restart", e.Name)
		}
	}
	return time.Since(start), nil
}

// Settle waits until the daemon and what it started are idle (under 1 %
// of a CPU over 200 ms, at most 10 s): what one engine does after it
// answers (dockerd's reconciling of restored containers, engined's
// background reattach) is not to be measured as the other's time.
func (e *Engine) Settle() {
	prev := e.CPU()
	if prev < 0 {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		cur := e.CPU()
		if cur-prev < 2*time.Millisecond {
			return
		}
		prev = cur
	}
}

// SettledRSS is the daemon's RSS in KiB once it stops changing (two
// reads 250 ms apart within 1 %, at most 5 s).
func (e *Engine) SettledRSS() int64 {
	prev := e.RSS()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		cur := e.RSS()
		if cur-prev < prev/100 && prev-cur < prev/100 {
			return cur
		}
		prev = cur
	}
	return prev
}

// UnmountUnder detaches what a daemon left mounted under dir (nothing,
// when they stop cleanly), deepest first, so dir can be removed.
func UnmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	slices.Sort(mps)
	for i := len(mps) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mps[i], syscall.MNT_DETACH); err == nil {
			fmt.Fprintf(os.Stderr, "unmounted %s (left by a daemon)\n", mps[i])
		}
	}
}

// LoadAvg is the machine's load average (1, 5, 15 minutes).
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// BusyboxTar writes the test busybox image, tagged busybox:latest, as a
// docker load archive in dir and returns its path: the daemons load it
// rather than pull it (one in a namespace of its own does not reach a
// registry on the host's loopback).
func BusyboxTar(dir string) (string, error) {
	img, err := testimage.Busybox()
	if err != nil {
		return "", err
	}
	tag, err := name.NewTag("busybox:latest")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "busybox.tar")
	return path, tarball.WriteToFile(path, tag, img)
}
