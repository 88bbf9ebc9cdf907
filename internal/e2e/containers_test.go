package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// runEngine starts engined (with the extra flags) with busybox pullable
// as "busybox" through a mirror, as a user with Docker Hub would have it.
func runEngine(t *testing.T, extra ...string) *engined {
	t.Helper()
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t, append([]string{"--registry-mirror", "http://" + reg.Addr}, extra...)...)
	mustDocker(t, e.Host, "pull", "busybox")
	return e
}

func TestDockerRun(t *testing.T) {
	e := runEngine(t)
	out, err := docker(t, e.Host, "run", "--rm", "busybox", "echo", "hi")
	if err != nil {
		t.Fatalf("docker run --rm busybox echo hi: %v\n%s", err, out)
	}
	if !strings.HasSuffix(out, "hi\n") {
		t.Errorf("docker run printed %q", out)
	}
	// --rm removed it.
	if ps, _ := docker(t, e.Host, "ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("container left after --rm: %q", ps)
	}

	// A command that cannot run: dockerd's message and exit code, and
	// --rm still removes the container (the CLI waits for that).
	out, err = docker(t, e.Host, "run", "--rm", "busybox", "nosuchcmd")
	if code := exitCode(err); code != 127 || !strings.Contains(out, `exec: "nosuchcmd": executable file not found`) {
		t.Errorf("run of a missing command: code %d, %q", code, out)
	}
	if ps, _ := docker(t, e.Host, "ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("container left after a failed --rm run: %q", ps)
	}

	out, err = docker(t, e.Host, "run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
	if code := exitCode(err); code != 3 {
		t.Errorf("exit code %d (%v), want 3\n%s", code, err, out)
	}
	mustContain(t, "run output", out, "out\n", "err\n")

	// stdout and stderr stay apart in logs.
	id := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-aq", "-l"))
	if o, _ := dockerSplit(t, e.Host, "logs", id); o.stdout != "out\n" || o.stderr != "err\n" {
		t.Errorf("logs stdout %q stderr %q", o.stdout, o.stderr)
	}
	insp := mustDocker(t, e.Host, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id)
	if strings.TrimSpace(insp) != "exited 3" {
		t.Errorf("inspect state = %q", insp)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

func mustDocker(t *testing.T, host string, args ...string) string {
	t.Helper()
	out, err := docker(t, host, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

type split struct{ stdout, stderr string }

func dockerSplit(t *testing.T, host string, args ...string) (split, error) {
	t.Helper()
	cmd := exec.Command(dockerCLI, append([]string{"-H", host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return split{o.String(), e.String()}, err
}

func TestDetachedLifecycle(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "ticker", "busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"))
	if len(id) != 64 {
		t.Fatalf("docker run -d printed %q", id)
	}
	// logs -f streams new lines.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, "-H", e.Host, "logs", "-f", "ticker")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	pipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "tick 5") {
		n, err := pipe.Read(buf)
		if err != nil {
			t.Fatalf("logs -f ended early: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}
	cmd.Process.Kill()
	cmd.Wait()

	ps := mustDocker(t, e.Host, "ps", "--filter", "name=ticker", "--format", "{{.Names}} {{.Status}}")
	if !strings.HasPrefix(ps, "ticker Up") {
		t.Errorf("docker ps = %q", ps)
	}
	top := mustDocker(t, e.Host, "top", "ticker")
	mustContain(t, "docker top", top, "PID", "while true")

	mustDocker(t, e.Host, "pause", "ticker")
	if st := mustDocker(t, e.Host, "inspect", "-f", "{{.State.Status}}", "ticker"); strings.TrimSpace(st) != "paused" {
		t.Errorf("after pause: %q", st)
	}
	mustDocker(t, e.Host, "unpause", "ticker")
	mustDocker(t, e.Host, "rename", "ticker", "tocker")
	start := time.Now()
	mustDocker(t, e.Host, "stop", "-t", "1", "tocker")
	// sh ignores SIGTERM as pid 1, so stop waits out the timeout then kills.
	if st := mustDocker(t, e.Host, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "tocker"); strings.TrimSpace(st) != "exited 137" {
		t.Errorf("after stop: %q (took %v)", st, time.Since(start))
	}
	if out, err := docker(t, e.Host, "stop", "tocker"); err != nil {
		t.Errorf("stop of a stopped container: %v %s", err, out)
	}
	mustDocker(t, e.Host, "start", "tocker")
	mustDocker(t, e.Host, "kill", "-s", "KILL", "tocker")
	if code := strings.TrimSpace(mustDocker(t, e.Host, "wait", "tocker")); code != "137" {
		t.Errorf("docker wait = %q", code)
	}
	mustDocker(t, e.Host, "restart", "-t", "0", "tocker")
	if st := mustDocker(t, e.Host, "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", "tocker"); strings.TrimSpace(st) != "true 0" {
		t.Errorf("after restart: %q", st)
	}
	out, err := docker(t, e.Host, "rm", "tocker")
	if err == nil || !strings.Contains(out, "container is running") {
		t.Errorf("rm of a running container: %v %s", err, out)
	}
	mustDocker(t, e.Host, "rm", "-f", "tocker")
	if out, err := docker(t, e.Host, "inspect", "tocker"); err == nil {
		t.Errorf("inspect after rm -f succeeded: %s", out)
	}
	// Nothing left behind: no mount, no shim, no state.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), id) {
		t.Errorf("rootfs still mounted after rm -f")
	}
	if entries, _ := os.ReadDir(filepath.Join(e.ExecRoot, "containers")); len(entries) != 0 {
		t.Errorf("state dirs left: %d", len(entries))
	}
}

func TestMobyClientRun(t *testing.T) {
	e := runEngine(t)
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	created, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "exit 7"}}, Name: "seven"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	res := c.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{})
	select {
	case r := <-res.Result:
		if r.StatusCode != 7 {
			t.Errorf("wait status %d", r.StatusCode)
		}
	case err := <-res.Error:
		t.Fatal(err)
	}
	insp, err := c.ContainerInspect(ctx, "seven", client.ContainerInspectOptions{})
	if err != nil || insp.Container.State.ExitCode != 7 || insp.Container.Name != "/seven" {
		t.Errorf("inspect: %+v %v", insp, err)
	}
	if _, err := c.ContainerRemove(ctx, "seven", client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	// Generated names never collide, however many containers there are.
	names := map[string]bool{}
	for i := 0; i < 120; i++ {
		c, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"true"}}})
		if err != nil {
			t.Fatalf("create #%d: %v", i, err)
		}
		insp, _ := mobyInspect(ctx, t, e, c.ID)
		if names[insp] {
			t.Fatalf("generated name %s used twice", insp)
		}
		names[insp] = true
	}
	// A missing image is a 404 the CLI reacts to by pulling.
	_, err = c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "nosuchimage"}})
	if err == nil || !strings.Contains(err.Error(), "No such image: nosuchimage:latest") {
		t.Errorf("create with a missing image: %v", err)
	}
}

func mobyInspect(ctx context.Context, t *testing.T, e *engined, id string) (string, error) {
	res, err := mobyClient(t, e.Host).ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return res.Container.Name, err
}

// An image a container uses is not removed without force (409).
func TestRmiImageInUse(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "create", "--name", "user", "busybox", "true")
	out, err := docker(t, e.Host, "rmi", "busybox")
	if err == nil || !strings.Contains(out, "must force") || !strings.Contains(out, "is using its referenced image") {
		t.Errorf("rmi of an image in use: %v\n%s", err, out)
	}
	id := strings.TrimSpace(mustDocker(t, e.Host, "images", "-q", "busybox"))
	out, err = docker(t, e.Host, "rmi", id)
	if err == nil || !strings.Contains(out, "being used by container") {
		t.Errorf("rmi by ID of an image in use: %v\n%s", err, out)
	}
	mustDocker(t, e.Host, "rm", "user")
	mustDocker(t, e.Host, "rmi", "busybox")
}

// docker stats reads the container's cgroup: a busy loop shows CPU use,
// and -m shows as the memory limit.
func TestDockerStats(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "busy", "-m", "64m", "busybox", "sh", "-c", "while true; do :; done")
	out := mustDocker(t, e.Host, "stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", "busy")
	f := strings.Fields(out)
	if len(f) < 6 || f[0] != "busy" || f[4] != "64MiB" || f[5] != "1" {
		t.Fatalf("docker stats = %q", out)
	}
	if cpu, _ := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64); cpu < 10 {
		t.Errorf("busy loop uses %s CPU", f[1])
	}
	mustDocker(t, e.Host, "rm", "-f", "busy")
}

// docker update changes a running container's limits in its cgroup.
func TestDockerUpdate(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "600")
	mustDocker(t, e.Host, "update", "-m", "128m", "--memory-swap", "256m", "--pids-limit", "50", "upd")
	out := mustDocker(t, e.Host, "stats", "--no-stream", "--format", "{{.MemUsage}}", "upd")
	if !strings.HasSuffix(strings.TrimSpace(out), "/ 128MiB") {
		t.Errorf("memory limit after update: %q", out)
	}
	if got := strings.TrimSpace(mustDocker(t, e.Host, "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "upd")); got != "134217728 50" {
		t.Errorf("inspect after update: %q", got)
	}
	if out, err := docker(t, e.Host, "update", "-m", "300m", "upd"); err == nil || !strings.Contains(out, "memoryswap") {
		t.Errorf("update with swap below memory: %v %s", err, out)
	}
	mustDocker(t, e.Host, "rm", "-f", "upd")
}
