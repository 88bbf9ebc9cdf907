package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// termQuick exits at once on SIGTERM (sh runs its trap while it waits).
var termQuick = []string{"sh", "-c", `trap "exit 0" TERM; sleep 600 & wait`}

// Restarting a running container starts it again every time: the exit
// handling of the run that ends never touches the run that begins.
func TestRestartRunningContainer(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, append([]string{"run", "-d", "--name", "rs", "busybox"}, termQuick...)...)
	for i := 0; i < 100; i++ {
		if out, err := docker(t, e.Host, "restart", "-t", "1", "rs"); err != nil {
			t.Fatalf("docker restart #%d: %v\n%s\nstate: %s", i, err, out, inspectField(t, e.Host, "rs", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}"))
		}
		if st := inspectField(t, e.Host, "rs", "{{.State.Status}}"); st != "running" {
			t.Fatalf("after restart #%d: %s", i, st)
		}
	}
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	one := 1
	for i := 0; i < 100; i++ {
		if _, err := c.ContainerRestart(ctx, "rs", client.ContainerRestartOptions{Timeout: &one}); err != nil {
			t.Fatalf("ContainerRestart #%d: %v\nstate: %s", i, err, inspectField(t, e.Host, "rs", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}"))
		}
	}
	if got := inspectField(t, e.Host, "rs", "{{.State.Status}} {{.RestartCount}}"); got != "running 0" {
		t.Errorf("after 200 restarts: %q", got)
	}
	// A restart of a stopped container starts it.
	mustDocker(t, e.Host, "stop", "rs")
	mustDocker(t, e.Host, "restart", "rs")
	if st := inspectField(t, e.Host, "rs", "{{.State.Status}}"); st != "running" {
		t.Errorf("restart of a stopped container: %s", st)
	}
}

// dockerStdin runs the docker CLI with stdin from in, bounded in time.
func dockerStdin(t *testing.T, host string, in io.Reader, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, append([]string{"-H", host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("docker %v did not finish: stdout %d bytes, stderr %q", args, o.Len(), e.String())
	}
	return o.String(), e.String(), err
}

// Input written before the container starts, end of input included,
// reaches it: piped into docker run -i, start -ai, and the Go client's
// attach.
func TestPipedStdin(t *testing.T) {
	e := runEngine(t)
	out, errOut, err := dockerStdin(t, e.Host, strings.NewReader("piped\n"), "run", "--rm", "-i", "busybox", "cat")
	if err != nil || out != "piped\n" {
		t.Fatalf("echo piped | docker run -i: %v %q %q", err, out, errOut)
	}
	// 1 MiB of text (the attach stream reads the json log, whose strings
	// are UTF-8), lines of all lengths, some longer than a log entry.
	var big bytes.Buffer
	for big.Len() < 1<<20 {
		b := make([]byte, 1+big.Len()%40000)
		rand.Read(b)
		big.WriteString(base64.StdEncoding.EncodeToString(b)[:len(b)] + "\n")
	}
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, big.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(file)
	defer f.Close()
	out, errOut, err = dockerStdin(t, e.Host, f, "run", "--rm", "-i", "busybox", "cat")
	if err != nil || out != big.String() {
		t.Fatalf("docker run -i < 1 MiB file: %v, %d bytes back of %d, equal %v; stderr %q", err, len(out), big.Len(), out == big.String(), errOut)
	}

	mustDocker(t, e.Host, "create", "-i", "--name", "sai", "busybox", "cat")
	out, errOut, err = dockerStdin(t, e.Host, strings.NewReader("start -ai\n"), "start", "-ai", "sai")
	if err != nil || out != "start -ai\n" {
		t.Errorf("docker start -ai: %v %q %q", err, out, errOut)
	}

	c := mobyClient(t, e.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	created, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"cat"},
		OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true, AttachStderr: true}})
	if err != nil {
		t.Fatal(err)
	}
	att, err := c.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	if _, err := att.Conn.Write([]byte("from the client\n")); err != nil {
		t.Fatal(err)
	}
	if err := att.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	att.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatalf("attach output: %v (got %q)", err, stdout.String())
	}
	if stdout.String() != "from the client\n" {
		t.Errorf("attach stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

// sigIgnored is an engined started by a shell that ignores SIGINT and
// SIGHUP, as `engined &` in a script does: its containers must not.
func TestSignalsResetInContainers(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	dataRoot, execRoot := newRoots(t)
	e := startEnginedWrapped(t, []string{"sh", "-c", `trap "" INT HUP; exec "$0" "$@"`}, dataRoot, execRoot, "--registry-mirror", "http://"+reg.Addr)
	mustDocker(t, e.Host, "pull", "busybox")
	// engined catches SIGINT itself (to stop); SIGHUP stays ignored.
	if ign := sigIgn(t, e.cmd.Process.Pid); ign&1 == 0 {
		t.Fatalf("the harness did not start engined with SIGHUP ignored: SigIgn %x", ign)
	}
	for _, field := range []string{"SigIgn", "SigBlk"} {
		out := mustDocker(t, e.Host, "run", "--rm", "busybox", "grep", field, "/proc/1/status")
		if strings.TrimSpace(out) != field+":\t0000000000000000" {
			t.Errorf("container init: %q", out)
		}
	}
	mustDocker(t, e.Host, "run", "-d", "--name", "trapper", "busybox", "sh", "-c", `trap "exit 7" INT; sleep 600 & wait`)
	if out := mustDocker(t, e.Host, "exec", "trapper", "grep", "SigIgn", "/proc/self/status"); strings.TrimSpace(out) != "SigIgn:\t0000000000000000" {
		t.Errorf("exec'd process: %q", out)
	}
	// sh sets its trap once it runs; exec above ran after that.
	mustDocker(t, e.Host, "kill", "-s", "INT", "trapper")
	if got := waitInspect(t, e.Host, "trapper", "{{.State.Status}} {{.State.ExitCode}}", func(s string) bool { return s != "running 0" }); got != "exited 7" {
		t.Errorf("after kill -s INT: %q", got)
	}
	// Ctrl-C on docker run -it interrupts the foreground command.
	p := startInPTY(t, e, "run", "-it", "--rm", "--name", "ctl", "busybox", "sh")
	p.waitFor("# ")
	p.type_("sleep 600")
	waitExec(t, e.Host, "ctl", "pidof sleep")
	p.pty.Write([]byte{0x03})
	// The interactive shell abandons the line; $? says SIGINT ended it.
	p.type_("echo status=$?")
	p.waitFor("status=130")
	p.type_("exit 3")
	if code := exitCode(p.cmd.Wait()); code != 3 {
		t.Errorf("docker run -it exit code %d; output:\n%s", code, p.out.String())
	}
}

// sigIgn is a process's ignored signals, from /proc.
func sigIgn(t *testing.T, pid int) uint64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:\t"); ok {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no SigIgn in /proc/%d/status", pid)
	return 0
}

// docker kill (SIGKILL) returns once the container is dead.
func TestKillWaitsForExit(t *testing.T) {
	e := runEngine(t)
	for i := 0; i < 50; i++ {
		mustDocker(t, e.Host, "run", "-d", "--name", "kk", "busybox", "sleep", "600")
		mustDocker(t, e.Host, "kill", "kk")
		if st := inspectField(t, e.Host, "kk", "{{.State.Status}} {{.State.ExitCode}}"); st != "exited 137" {
			t.Fatalf("#%d: inspect right after kill: %q", i, st)
		}
		if out, err := docker(t, e.Host, "rm", "kk"); err != nil {
			t.Fatalf("#%d: rm right after kill: %v %s", i, err, out)
		}
	}
}

// An exec'd process has the container's --ulimit, as the container's
// own processes do.
func TestExecUlimits(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "ul", "--ulimit", "nofile=1024:2048", "busybox", "sleep", "600")
	for _, args := range [][]string{{"run", "--rm", "--ulimit", "nofile=1024:2048", "busybox"}, {"exec", "ul"}} {
		out := mustDocker(t, e.Host, append(args, "sh", "-c", "ulimit -n; ulimit -Hn")...)
		if strings.Fields(out)[0] != "1024" || strings.Fields(out)[1] != "2048" {
			t.Errorf("docker %s: ulimit -n, -Hn = %q", args[0], out)
		}
	}
}

// rm -f of a running container logs kill, die, destroy in that order,
// and its normal path warns about nothing.
func TestRmForceEvents(t *testing.T) {
	e := runEngine(t)
	live := exec.Command(dockerCLI, "-H", e.Host, "events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	live.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out := &lockedBuffer{}
	live.Stdout, live.Stderr = out, out
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	for i := 0; i < 10; i++ {
		name := "rmf" + strconv.Itoa(i)
		mustDocker(t, e.Host, "run", "-d", "--name", name, "busybox", "sleep", "600")
		mustDocker(t, e.Host, "rm", "-f", name)
	}
	want := func(i int) []string {
		n := "rmf" + strconv.Itoa(i)
		return []string{"start " + n, "kill " + n, "die " + n, "destroy " + n}
	}
	poll(20*time.Second, func() bool { return strings.Contains(out.String(), "destroy rmf9") })
	for i := 0; i < 10; i++ {
		var mine []string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasSuffix(l, " rmf"+strconv.Itoa(i)) && !strings.HasPrefix(l, "create") {
				mine = append(mine, l)
			}
		}
		if strings.Join(mine, ",") != strings.Join(want(i), ",") {
			t.Errorf("events of rmf%d: %q, want %q", i, mine, want(i))
		}
	}
	for _, w := range []string{"delete shim", "unmount container rootfs"} {
		if strings.Contains(e.out.String(), w) {
			t.Errorf("engined warned %q on rm -f", w)
		}
	}
}

// engined killed with a Created container's rootfs mounted (it dies
// between create and start, or mid-start) unmounts it when it starts; a
// shim killed while engined was down has its container's processes
// killed before the container is reported exited.
func TestRestoreAfterCrashes(t *testing.T) {
	e := runEngine(t)
	created := strings.TrimSpace(mustDocker(t, e.Host, "create", "busybox", "true"))
	running := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "3600"))
	// A paused one too: its frozen processes cannot die until thawed.
	paused := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "3600"))
	mustDocker(t, e.Host, "pause", paused)
	var shims, inits []int
	for _, id := range []string{running, paused} {
		pid, _ := strconv.Atoi(inspectField(t, e.Host, id, "{{.State.Pid}}"))
		shims, inits = append(shims, shimPidOf(t, e, id)), append(inits, pid)
	}
	e.cmd.Process.Kill()
	<-e.done
	// What a start cut short leaves: the rootfs mounted, no shim.
	rootfs := filepath.Join(e.DataRoot, "containers", created, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	if err := unix.Mount("tmpfs", rootfs, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(rootfs, unix.MNT_DETACH) })
	for _, shim := range shims {
		syscall.Kill(shim, syscall.SIGKILL)
		poll(10*time.Second, func() bool { return !processAlive(shim) })
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	for i, id := range []string{running, paused} {
		if st := inspectField(t, e2.Host, id, "{{.State.Status}}"); st != "exited" {
			t.Errorf("container of the killed shim: %q", st)
		}
		if processAlive(inits[i]) {
			t.Errorf("container process %d still runs while the container is reported exited", inits[i])
		}
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(rootfs)) {
		t.Errorf("rootfs of the created container still mounted after engined's start")
	}
	if st := inspectField(t, e2.Host, created, "{{.State.Status}}"); st != "created" {
		t.Errorf("created container: %q", st)
	}
	mustDocker(t, e2.Host, "start", created)
}

// processAlive: running, not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// --init runs docker-init (tini) as PID 1: it forwards docker stop's
// SIGTERM to the command, which dies of it (143), where a bare sleep as
// PID 1 ignores it and is killed at the timeout (137).
func TestInitFlag(t *testing.T) {
	e := runEngine(t)
	out := mustDocker(t, e.Host, "run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
	if strings.TrimSpace(out) != "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '" {
		t.Errorf("PID 1 with --init: %q", out)
	}
	mustDocker(t, e.Host, "run", "-d", "--init", "--name", "ini", "busybox", "sleep", "600")
	if got := inspectField(t, e.Host, "ini", "{{.HostConfig.Init}} {{.Path}}"); got != "true sleep" {
		t.Errorf("inspect: %q", got)
	}
	mustDocker(t, e.Host, "stop", "ini")
	if got := inspectField(t, e.Host, "ini", "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 143" {
		t.Errorf("after stop: %q", got)
	}
	// Zombies are reaped: an orphan's exit leaves no <defunct>.
	out = mustDocker(t, e.Host, "run", "--rm", "--init", "busybox", "sh", "-c", "sh -c 'sleep 0.1 &'; sleep 1; ps -o stat | grep -c Z || true")
	if strings.TrimSpace(out) != "0" {
		t.Errorf("zombies with --init: %q", out)
	}

	dataRoot, execRoot := newRoots(t)
	e2 := startEnginedAt(t, dataRoot, execRoot, "--init-path", "/nonexistent/docker-init")
	importTar(t, e2, "mini", minimalRootfs(t))
	o, err := docker(t, e2.Host, "create", "--init", "mini", "/bin/sh")
	if err == nil || !strings.Contains(o, "init") {
		t.Errorf("--init without an init binary: %v %s", err, o)
	}
}

// readUntil reads r until it has seen want, or fails at a deadline.
func readUntil(t *testing.T, conn interface{ SetReadDeadline(time.Time) error }, r io.Reader, want string) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, got)
		}
	}
	return string(got)
}

// readToEnd requires the stream to end (as a detach ends it) in time.
func readToEnd(t *testing.T, conn interface{ SetReadDeadline(time.Time) error }, r io.Reader, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("%s: the stream did not end after the detach keys: %v", what, err)
	}
}

// The detach keys in an attach's or exec's stdin end the stream on the
// engine's side (an SDK that sends them and reads to the end must not
// hang); the container and the exec'd process run on. Invalid keys are a
// 400.
func TestServerSideDetachKeys(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "-it", "--name", "tt", "busybox", "sh")
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	for _, tc := range []struct{ keys, seq string }{{"ctrl-a,x", "\x01x"}, {"", "\x10\x11"}} {
		att, err := c.ContainerAttach(ctx, "tt", client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true, DetachKeys: tc.keys})
		if err != nil {
			t.Fatal(err)
		}
		att.Conn.Write([]byte("echo $((6*7))\n"))
		readUntil(t, att.Conn, att.Reader, "42")
		att.Conn.Write([]byte(tc.seq))
		readToEnd(t, att.Conn, att.Reader, "attach with keys "+tc.keys)
		att.Close()
		if st := inspectField(t, e.Host, "tt", "{{.State.Status}}"); st != "running" {
			t.Fatalf("after detach (%q): %s", tc.keys, st)
		}
	}
	if code, _, body := e.do("POST", "/containers/tt/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-1"); code != 400 || !strings.Contains(body, "Invalid detach keys") {
		t.Errorf("attach with invalid detach keys: %d %s", code, body)
	}

	ex, err := c.ExecCreate(ctx, "tt", client.ExecCreateOptions{Cmd: []string{"sh"}, TTY: true, AttachStdin: true, AttachStdout: true, AttachStderr: true, DetachKeys: "ctrl-a,x"})
	if err != nil {
		t.Fatal(err)
	}
	ea, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ea.Close()
	ea.Conn.Write([]byte("echo $((7*8))\n"))
	readUntil(t, ea.Conn, ea.Reader, "56")
	ea.Conn.Write([]byte("\x01x"))
	readToEnd(t, ea.Conn, ea.Reader, "exec")
	if res, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{}); err != nil || !res.Running {
		t.Errorf("exec after detach: %+v %v", res, err)
	}
	if _, err := c.ExecCreate(ctx, "tt", client.ExecCreateOptions{Cmd: []string{"sh"}, DetachKeys: "ctrl-1"}); err == nil || !strings.Contains(err.Error(), "Invalid escape keys") {
		t.Errorf("exec create with invalid detach keys: %v", err)
	}
	// The CLI still detaches a terminal session (it watches the keys too).
	p := startInPTY(t, e, "attach", "--detach-keys", "ctrl-a,x", "tt")
	p.type_("echo $((8*9))")
	p.waitFor("72")
	p.pty.Write([]byte("\x01x"))
	// As with dockerd, the CLI exits 1 (saying "read escape sequence" when
	// it saw the keys before the engine ended the stream).
	if code := exitCode(p.cmd.Wait()); code != 1 {
		t.Errorf("docker attach after its detach keys exited %d:\n%s", code, p.out.String())
	}
	if st := inspectField(t, e.Host, "tt", "{{.State.Status}}"); st != "running" {
		t.Errorf("after the CLI detached: %s", st)
	}
}
