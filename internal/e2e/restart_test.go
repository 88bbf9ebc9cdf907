package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// inspectField is docker inspect -f for one container.
func inspectField(t *testing.T, host, name, format string) string {
	t.Helper()
	return strings.TrimSpace(mustDocker(t, host, "inspect", "-f", format, name))
}

func waitInspect(t *testing.T, host, name, format string, ok func(string) bool) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = inspectField(t, host, name, format); ok(got) {
			return got
		}
	}
	t.Fatalf("%s: %s stayed %q", name, format, got)
	return got
}

func atLeast(n int) func(string) bool {
	return func(s string) bool { v, err := strconv.Atoi(s); return err == nil && v >= n }
}

// Restart policies as dockerd applies them, also across an engined that
// was killed.
func TestRestartPolicies(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	mustDocker(t, h, "run", "-d", "--name", "onfail", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3")
	mustDocker(t, h, "run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3")
	mustDocker(t, h, "run", "-d", "--name", "killed", "--restart", "always", "busybox", "sleep", "3600")
	mustDocker(t, h, "run", "-d", "--name", "never", "busybox", "sh", "-c", "exit 1")

	// on-failure:2 runs three times and stays exited with its code.
	waitInspect(t, h, "onfail", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", func(s string) bool { return s == "exited 2 3" })
	if logs := mustDocker(t, h, "logs", "onfail"); strings.Count(logs, "run") != 3 {
		t.Errorf("on-failure:2 ran %d times, want 3", strings.Count(logs, "run"))
	}
	// always restarts a clean exit; docker stop ends that.
	waitInspect(t, h, "always", "{{.RestartCount}}", atLeast(2))
	mustDocker(t, h, "stop", "always")
	n := inspectField(t, h, "always", "{{.RestartCount}}")
	time.Sleep(time.Second)
	if st := inspectField(t, h, "always", "{{.State.Status}} {{.RestartCount}}"); st != "exited "+n {
		t.Errorf("always after stop: %q, want exited %s", st, n)
	}
	// docker kill is fatal: the policy waits for the next start.
	mustDocker(t, h, "kill", "killed")
	time.Sleep(time.Second)
	if st := inspectField(t, h, "killed", "{{.State.Status}} {{.RestartCount}}"); st != "exited 0" {
		t.Errorf("killed: %q", st)
	}
	if st := inspectField(t, h, "never", "{{.State.Status}} {{.RestartCount}}"); st != "exited 0" {
		t.Errorf("no policy: %q", st)
	}

	// engined is killed; an unless-stopped container exits while it is
	// down. When engined is back, that one restarts (its exit was
	// replayed), and "always" containers start again even though they
	// were stopped, as with dockerd.
	mustDocker(t, h, "run", "-d", "--name", "meanwhile", "--restart", "unless-stopped", "busybox", "sh", "-c", "sleep 1; exit 1")
	mustDocker(t, h, "run", "-d", "--name", "stopped", "--restart", "unless-stopped", "busybox", "sleep", "3600")
	mustDocker(t, h, "stop", "-t", "0", "stopped")
	e.cmd.Process.Kill()
	<-e.done
	time.Sleep(2 * time.Second)
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	waitInspect(t, e2.Host, "meanwhile", "{{.RestartCount}}", atLeast(1))
	waitInspect(t, e2.Host, "always", "{{.State.Status}}", func(s string) bool { return s == "running" || s == "restarting" })
	if st := inspectField(t, e2.Host, "stopped", "{{.State.Status}}"); st != "exited" {
		t.Errorf("unless-stopped container that was stopped: %q after engined restarted", st)
	}
	for _, c := range []string{"always", "meanwhile"} {
		mustDocker(t, e2.Host, "update", "--restart", "no", c)
		mustDocker(t, e2.Host, "stop", "-t", "0", c)
	}
	out, err := docker(t, e2.Host, "run", "--restart", "sometimes", "busybox", "true")
	if err == nil || !strings.Contains(out, "invalid restart policy") {
		t.Errorf("unknown policy: %v %q", err, out)
	}
}
