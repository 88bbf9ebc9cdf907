package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// docker exec as users run it: output, exit codes, stdin, user, working
// directory, environment, detached, and the errors.
func TestDockerExec(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "box", "-e", "FROM_RUN=1", "busybox", "sleep", "3600")

	if out := mustDocker(t, e.Host, "exec", "box", "echo", "hello-exec"); out != "hello-exec\n" {
		t.Errorf("exec echo = %q", out)
	}
	sp, err := dockerSplit(t, e.Host, "exec", "box", "sh", "-c", "echo out; echo err >&2; exit 4")
	if code := exitCode(err); code != 4 || sp.stdout != "out\n" || sp.stderr != "err\n" {
		t.Errorf("exec exit 4: code %d stdout %q stderr %q", code, sp.stdout, sp.stderr)
	}
	cmd := exec.Command(dockerCLI, "-H", e.Host, "exec", "-i", "box", "sh", "-c", "read x; echo got $x; cat")
	cmd.Stdin = strings.NewReader("line1\nline2\n")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "got line1\nline2\n" {
		t.Errorf("exec -i: %q %v", out, err)
	}
	if out := mustDocker(t, e.Host, "exec", "-u", "nobody", "-w", "/tmp", "-e", "FOO=bar", "box", "sh", "-c", "id -u; pwd; echo $FOO $FROM_RUN"); out != "65534\n/tmp\nbar 1\n" {
		t.Errorf("exec -u -w -e = %q", out)
	}
	mustDocker(t, e.Host, "exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d; sleep 1")
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && got != "detached\n"; time.Sleep(100 * time.Millisecond) {
		got, _ = docker(t, e.Host, "exec", "box", "cat", "/tmp/d")
	}
	if got != "detached\n" {
		t.Errorf("exec -d wrote %q", got)
	}
	// An exec'd process shows in top while it runs.
	mustDocker(t, e.Host, "exec", "-d", "box", "sleep", "77")
	time.Sleep(300 * time.Millisecond)
	mustContain(t, "top", mustDocker(t, e.Host, "top", "box"), "sleep 77")

	out, err := docker(t, e.Host, "exec", "box", "nosuchcmd")
	if code := exitCode(err); code != 127 || !strings.Contains(out, "executable file not found") {
		t.Errorf("exec of a missing command: code %d, %q", code, out)
	}
	out, err = docker(t, e.Host, "exec", "-u", "nosuchuser", "box", "true")
	if err == nil || !strings.Contains(out, "nosuchuser") {
		t.Errorf("exec as a missing user: %v %q", err, out)
	}
	out, err = docker(t, e.Host, "exec", "nosuchbox", "true")
	if err == nil || !strings.Contains(out, "No such container: nosuchbox") {
		t.Errorf("exec in a missing container: %v %q", err, out)
	}
	mustDocker(t, e.Host, "stop", "-t", "0", "box")
	out, err = docker(t, e.Host, "exec", "box", "true")
	if err == nil || !strings.Contains(out, "is not running") {
		t.Errorf("exec in a stopped container: %v %q", err, out)
	}
}

func TestDockerExecTTY(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "box", "busybox", "sleep", "3600")
	p := startInPTY(t, e, "exec", "-it", "box", "sh")
	p.waitFor("# ")
	p.type_("tty; echo $((6*9))")
	p.waitFor("54")
	mustContain(t, "exec -it", p.out.String(), "/dev/pts/")
	p.resize(111, 33)
	p.type_("stty size")
	p.waitFor("33 111")
	p.type_("exit 6")
	if code := exitCode(p.cmd.Wait()); code != 6 {
		t.Errorf("docker exec -it exit code %d, want 6; output:\n%s", code, p.out.String())
	}
}

// The same through the official Go client: create, attach, inspect.
func TestMobyClientExec(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "box", "busybox", "sleep", "3600")
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	created, err := c.ExecCreate(ctx, "box", client.ExecCreateOptions{Cmd: []string{"sh", "-c", "cat; echo to-err >&2; exit 9"},
		AttachStdin: true, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil || before.Running || before.ContainerID == "" {
		t.Errorf("inspect before start: %+v %v", before, err)
	}
	att, err := c.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	att.Conn.Write([]byte("from-stdin\n"))
	att.CloseWrite()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatal(err)
	}
	att.Close()
	if stdout.String() != "from-stdin\n" || stderr.String() != "to-err\n" {
		t.Errorf("exec output: stdout %q stderr %q", stdout.String(), stderr.String())
	}
	res, err := c.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil || res.Running || res.ExitCode != 9 || res.PID == 0 {
		t.Errorf("inspect after exit: %+v %v", res, err)
	}
	if _, err := c.ExecInspect(ctx, "nosuchexec", client.ExecInspectOptions{}); err == nil || !strings.Contains(err.Error(), "No such exec instance") {
		t.Errorf("inspect of a missing exec: %v", err)
	}
	// Detached: ExecStart returns at once and the process runs on.
	d, err := c.ExecCreate(ctx, "box", client.ExecCreateOptions{Cmd: []string{"sh", "-c", "sleep 0.3; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecStart(ctx, d.ID, client.ExecStartOptions{Detach: true}); err != nil {
		t.Fatal(err)
	}
	var di client.ExecInspectResult
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if di, err = c.ExecInspect(ctx, d.ID, client.ExecInspectOptions{}); err == nil && !di.Running && di.PID != 0 {
			break
		}
	}
	if di.Running || di.ExitCode != 3 {
		t.Errorf("detached exec: %+v", di)
	}
	if _, err := c.ExecStart(ctx, d.ID, client.ExecStartOptions{Detach: true}); err == nil {
		t.Error("starting an exec twice succeeded")
	}
}

// docker ps -s and inspect -s: what the container wrote, and that plus
// its image; inspect without size leaves them out.
func TestContainerSize(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "--name", "writer", "busybox", "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=3000")
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	res, err := c.ContainerInspect(ctx, "writer", client.ContainerInspectOptions{Size: true})
	if err != nil {
		t.Fatal(err)
	}
	if rw := res.Container.SizeRw; rw == nil || *rw != 3072000 || res.Container.SizeRootFs == nil || *res.Container.SizeRootFs <= *rw {
		t.Errorf("inspect size: rw %v rootfs %v", res.Container.SizeRw, res.Container.SizeRootFs)
	}
	if res, _ := c.ContainerInspect(ctx, "writer", client.ContainerInspectOptions{}); res.Container.SizeRw != nil {
		t.Errorf("inspect without size has SizeRw %d", *res.Container.SizeRw)
	}
	mustContain(t, "ps -s", mustDocker(t, e.Host, "ps", "-a", "-s", "--format", "{{.Size}}"), "3.07MB (virtual")
}

// ctrl-p ctrl-q detaches from `docker run -it`: the CLI exits 0 and the
// container runs on; `docker attach` finds it again.
func TestDetachKeys(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "pull", "busybox")
	p := startInPTY(t, e, "run", "-it", "--name", "shell", "busybox", "sh")
	p.waitFor("# ")
	p.pty.Write([]byte{0x10, 0x11})
	if code := exitCode(p.cmd.Wait()); code != 0 {
		t.Errorf("docker run -it after ctrl-p ctrl-q exited %d; output:\n%s", code, p.out.String())
	}
	if st := inspectField(t, e.Host, "shell", "{{.State.Status}}"); st != "running" {
		t.Fatalf("container after detach: %q", st)
	}
	a := startInPTY(t, e, "attach", "shell")
	time.Sleep(300 * time.Millisecond)
	a.type_("echo $((7*8))")
	a.waitFor("56")
	a.type_("exit 4")
	if code := exitCode(a.cmd.Wait()); code != 4 {
		t.Errorf("docker attach exit code %d, want 4; output:\n%s", code, a.out.String())
	}
}
