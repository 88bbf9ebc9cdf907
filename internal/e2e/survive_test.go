package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"

	"github.com/engined/engined/internal/sdnotify"
)

// SIGKILL engined while containers run and write: when it comes back they
// are still running, no log line is lost, an exit that happened meanwhile
// has its real code, and stop works.
func TestSurvivesEnginedSIGKILL(t *testing.T) {
	e := runEngine(t)
	const lines = 600
	mustDocker(t, e.Host, "run", "-d", "--name", "writer", "busybox", "sh", "-c",
		fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo line $i; i=$((i+1)); sleep 0.005; done; sleep 3600", lines))
	exiter := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "exiter", "busybox", "sh", "-c", "sleep 1; exit 42"))
	// Killed while the writer writes and before the exiter exits.
	waitFor(t, "the writer's first lines", func() bool { return strings.Contains(mustDocker(t, e.Host, "logs", "writer"), "line 1\n") })
	e.cmd.Process.Kill()
	<-e.done
	// The writer goes on without engined; the exiter exits, and its shim
	// records that on disk.
	waitFor(t, "the exiter's exit record", func() bool {
		_, err := os.Stat(filepath.Join(e.ExecRoot, "containers", exiter, "exit.json"))
		return err == nil
	})
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	ps := mustDocker(t, e2.Host, "ps", "--format", "{{.Names}}")
	if strings.TrimSpace(ps) != "writer" {
		t.Errorf("docker ps after restart = %q", ps)
	}
	if st := mustDocker(t, e2.Host, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "exiter"); strings.TrimSpace(st) != "exited 42" {
		t.Errorf("exiter after restart: %q", st)
	}
	// The writer finishes its lines; every one must be there, in order.
	var got []string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got = strings.Split(strings.TrimSpace(mustDocker(t, e2.Host, "logs", "writer")), "\n")
		if len(got) >= lines {
			break
		}
	}
	if len(got) != lines {
		t.Errorf("writer logged %d lines, want %d", len(got), lines)
	}
	for i, l := range got {
		if l != fmt.Sprintf("line %d", i) {
			t.Errorf("line %d is %q", i, l)
			break
		}
	}
	mustDocker(t, e2.Host, "stop", "-t", "1", "writer")
	if st := mustDocker(t, e2.Host, "inspect", "-f", "{{.State.Status}}", "writer"); strings.TrimSpace(st) != "exited" {
		t.Errorf("writer after stop: %q", st)
	}
	// The idle shim the killed engined kept ready is gone; the new one
	// keeps one of its own, and no container's shim is left (the
	// writer's exits after stop has returned, so this is waited for).
	if !poll(30*time.Second, func() bool { return shimsOf(e.ExecRoot) == 1 }) {
		t.Errorf("%d shims run for this engined, want its one idle shim", shimsOf(e.ExecRoot))
	}
}

// A shim killed with SIGKILL: its container is reported exited and nothing
// of it is left (processes, mounts, cgroups, state).
func TestShimSIGKILL(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "3600"))
	b := struct{ Pid int }{shimPidOf(t, e, id)}
	initPid := strings.TrimSpace(mustDocker(t, e.Host, "inspect", "-f", "{{.State.Pid}}", id))
	syscall.Kill(b.Pid, syscall.SIGKILL)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := strings.TrimSpace(mustDocker(t, e.Host, "inspect", "-f", "{{.State.Status}}", id))
		if st == "exited" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %q after its shim was killed", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Dead means gone or a zombie waiting for the host's init to reap it.
	if stat, err := os.ReadFile("/proc/" + initPid + "/stat"); err == nil {
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] != "Z" {
			t.Errorf("container process %s still alive (state %s)", initPid, f[0])
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(id)) {
		t.Error("rootfs still mounted")
	}
	if len(cgroupLeft(id)) > 0 {
		t.Errorf("cgroups left: %v", cgroupLeft(id))
	}
	if _, err := os.Stat(filepath.Join(e.ExecRoot, "containers", id)); err == nil {
		t.Error("state directory left")
	}
	mustDocker(t, e.Host, "rm", id)
}

// shimsOf counts the shim processes serving the engined of execRoot.
func shimsOf(execRoot string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		cmd, _ := os.ReadFile(p)
		if bytes.Contains(cmd, []byte("serve\x00--runc-root\x00"+filepath.Join(execRoot, "runc"))) {
			n++
		}
	}
	return n
}

func cgroupLeft(id string) []string {
	m, _ := filepath.Glob("/sys/fs/cgroup/*/engined/" + id)
	m2, _ := filepath.Glob("/sys/fs/cgroup/engined/" + id)
	return append(m, m2...)
}

// docker run -it through a real pseudo-terminal: type, see output, resize,
// exit with a code.
func TestInteractiveTTY(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "pull", "busybox")
	p := startInPTY(t, e, "run", "-it", "--rm", "busybox", "sh")
	p.waitFor("# ")
	p.type_("echo $((6*7))")
	p.waitFor("42")
	p.resize(123, 45)
	p.type_("stty size")
	p.waitFor("45 123")
	p.type_("exit 5")
	if code := exitCode(p.cmd.Wait()); code != 5 {
		t.Errorf("docker run -it exit code %d, want 5; output:\n%s", code, p.out.String())
	}
}

// ptySession runs the docker CLI on a terminal, as a user would.
type ptySession struct {
	t   *testing.T
	pty console.Console
	cmd *exec.Cmd
	out *lockedBuffer
}

func startInPTY(t *testing.T, e *engined, args ...string) *ptySession {
	t.Helper()
	pty, slave, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pty.Close() })
	pty.Resize(console.WinSize{Width: 80, Height: 24})
	tty, err := os.OpenFile(slave, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerCLI, append([]string{"-H", e.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	p := &ptySession{t: t, pty: pty, cmd: cmd, out: &lockedBuffer{}}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pty.Read(buf)
			p.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *ptySession) waitFor(s string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.out.String(), s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("never saw %q in:\n%s", s, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *ptySession) type_(line string) { p.pty.Write([]byte(line + "\r")) }

// resize changes the terminal's size and tells the CLI, as a terminal
// emulator does.
func (p *ptySession) resize(width, height uint16) {
	p.pty.Resize(console.WinSize{Width: width, Height: height})
	p.cmd.Process.Signal(syscall.SIGWINCH)
	time.Sleep(500 * time.Millisecond)
}

// A shim that hangs does not hang engined's start: engined serves at
// once (the container is running meanwhile: its processes are), gives
// up on the shim after a bounded wait, ends it and its container, and
// reports the container exited.
func TestHungShimAtEnginedStart(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "3600"))
	mustDocker(t, e.Host, "run", "-d", "--name", "fine", "busybox", "sleep", "3600")
	b := struct{ Pid int }{shimPidOf(t, e, id)}
	initPid := strings.TrimSpace(mustDocker(t, e.Host, "inspect", "-f", "{{.State.Pid}}", id))
	syscall.Kill(b.Pid, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(b.Pid, syscall.SIGCONT) })
	e.cmd.Process.Kill()
	<-e.done
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	waitFor(t, "the container of the hung shim reported exited", func() bool {
		return inspectField(t, e2.Host, id, "{{.State.Status}}") == "exited"
	})
	if st := strings.TrimSpace(mustDocker(t, e2.Host, "inspect", "-f", "{{.State.Status}}", "fine")); st != "running" {
		t.Errorf("the other container is %q", st)
	}
	for _, pid := range []string{strconv.Itoa(b.Pid), initPid} {
		if stat, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil {
			if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] != "Z" {
				t.Errorf("process %s still alive (state %s)", pid, f[0])
			}
		}
	}
}

// shimPidOf is the pid of a container's shim, from its bootstrap record.
func shimPidOf(t *testing.T, e *engined, id string) int {
	t.Helper()
	var b struct{ Pid int }
	data, err := os.ReadFile(filepath.Join(e.ExecRoot, "containers", id, "bootstrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return b.Pid
}

// A SIGTERM while engined waits for a shim at its start: that shim did
// not fail to answer, engined stopped asking. It and its container are
// left alone, and the next engined reattaches them.
func TestSIGTERMWhileReattaching(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "3600"))
	shimPid := shimPidOf(t, e, id)
	e.cmd.Process.Kill()
	<-e.done
	syscall.Kill(shimPid, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(shimPid, syscall.SIGCONT) })
	e2 := startEnginedNoWait(t, nil, e.DataRoot, e.ExecRoot)
	waitFor(t, "engined reattaching its containers", func() bool {
		return strings.Contains(e2.out.String(), `phase="container records"`)
	})
	e2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e2.done:
	case <-time.After(30 * time.Second):
		t.Fatal("engined did not stop on SIGTERM while reattaching")
	}
	syscall.Kill(shimPid, syscall.SIGCONT)
	if err := syscall.Kill(shimPid, 0); err != nil {
		t.Fatalf("the shim was ended by a stopping engined: %v\n%s", err, e2.out.String())
	}
	e3 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	if st := inspectField(t, e3.Host, id, "{{.State.Status}}"); st != "running" {
		t.Fatalf("container after the interrupted start: %q", st)
	}
	mustDocker(t, e3.Host, "exec", id, "true")
}

// The idle shim a killed engined kept ready ends by itself (the next
// engined may never come, or may not know of it: one started just before
// the kill was never recorded), while the shims of containers go on.
func TestIdleShimEndsWithItsEngined(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "3600"))
	if !poll(30*time.Second, func() bool { return shimsOf(e.ExecRoot) == 2 }) {
		t.Fatalf("%d shims run for this engined, want the container's and the idle one", shimsOf(e.ExecRoot))
	}
	e.cmd.Process.Kill()
	<-e.done
	if !poll(30*time.Second, func() bool { return shimsOf(e.ExecRoot) == 1 }) {
		t.Fatalf("%d shims run after engined was killed, want only the container's", shimsOf(e.ExecRoot))
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	if st := mustDocker(t, e2.Host, "inspect", "-f", "{{.State.Status}}", id); strings.TrimSpace(st) != "running" {
		t.Errorf("container after engined's restart: %q", st)
	}
}

// engined serves before it has dialled its containers' shims again: a
// kill, exec or stop sent the moment it answers (raw requests, no CLI
// start-up in between) waits for that container's shim and does what it
// says, for every container at once.
func TestOperationsRightAfterRestart(t *testing.T) {
	e := runEngine(t)
	const n = 24
	for i := range n {
		mustDocker(t, e.Host, "run", "-d", "--name", fmt.Sprintf("op%d", i), "busybox", "sleep", "3600")
	}
	e.cmd.Process.Kill()
	<-e.done
	e2 := startEnginedNoWait(t, nil, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	hc := unixClient(e2.Sock)
	if !poll(30*time.Second, func() bool {
		resp, err := hc.Get("http://engined/_ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("engined did not answer:\n%s", e2.out.String())
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			name := fmt.Sprintf("op%d", i)
			path, body, want := "/containers/"+name+"/kill", "", http.StatusNoContent
			switch i % 3 {
			case 1:
				path, body, want = "/containers/"+name+"/exec", `{"Cmd":["true"]}`, http.StatusCreated
			case 2:
				path = "/containers/" + name + "/stop?t=0"
			}
			resp, err := hc.Post("http://engined/v1.51"+path, "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				err = fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, msg)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for i := range n {
		want := map[int]string{0: "exited 137", 1: "running 0", 2: "exited 137"}[i%3]
		if st := inspectField(t, e2.Host, fmt.Sprintf("op%d", i), "{{.State.Status}} {{.State.ExitCode}}"); st != want {
			t.Errorf("op%d: %q, want %q", i, st, want)
		}
	}
}

// Hung shims hold up engined's background reattach (each is given up on
// after a bound, a few at a time), not an operation on another
// container: a kill right after the start dials that container's shim
// and watches it at once, so it returns once the container is dead,
// well before the hung ones are given up on.
func TestKillWhileHungShimsHoldReattach(t *testing.T) {
	e := runEngine(t)
	hung := 3 * runtime.NumCPU()
	var pids []int
	for i := range hung {
		id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", fmt.Sprintf("hung%d", i), "busybox", "sleep", "3600"))
		pids = append(pids, shimPidOf(t, e, id))
	}
	mustDocker(t, e.Host, "run", "-d", "--name", "fine", "busybox", "sleep", "3600")
	e.cmd.Process.Kill()
	<-e.done
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	if out, err := docker(t, e2.Host, "kill", "fine"); err != nil {
		t.Fatalf("docker kill while hung shims are reattached: %v %s", err, out)
	}
	if st := inspectField(t, e2.Host, "fine", "{{.State.Status}} {{.State.ExitCode}}"); st != "exited 137" {
		t.Errorf("fine after kill: %q", st)
	}
	// Each round of hung shims (one per background dialler) takes the
	// dial's 5 s bound: the background has not got through them yet, or
	// this tested nothing.
	if strings.Contains(e2.out.String(), "shims reattached") {
		t.Error("the background reattach ended before the kill returned: the hung shims did not hold it up")
	}
}

// engined tells systemd when it serves (READY=1 on NOTIFY_SOCKET, for a
// Type=notify unit), from its own pid, and not before what it restored
// is served: after a restart, the first request sent after READY lists
// the container that ran before it running.
func TestNotifiesReadyWhenServing(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "kept", "busybox", "sleep", "3600"))
	e.stop()

	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	notify, err := sdnotify.Listen(filepath.Join(dir, "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", notify.Path())
	e2 := startEnginedNoWait(t, nil, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")

	vars, pid, err := notify.Next(time.Now().Add(30 * time.Second))
	if err != nil {
		t.Fatalf("no notification from engined: %v\n%s", err, e2.out.String())
	}
	if !slices.Contains(vars, "READY=1") {
		t.Fatalf("engined's first notification is %q, not READY=1", vars)
	}
	if pid != e2.cmd.Process.Pid {
		t.Errorf("READY=1 came from pid %d, engined is %d", pid, e2.cmd.Process.Pid)
	}
	code, _, body := e2.get("/containers/json")
	var list []struct{ Id, State string }
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
		t.Fatalf("list right after READY=1: %d %v %s", code, err, body)
	}
	if len(list) != 1 || list[0].Id != id || list[0].State != "running" {
		t.Errorf("list right after READY=1: %+v, want %s running", list, id[:12])
	}
}
