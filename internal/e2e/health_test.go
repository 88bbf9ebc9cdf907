package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

// health is a container's State.Health as the moby client decodes it.
func health(t *testing.T, e *engined, name string) *container.Health {
	t.Helper()
	res, err := mobyClient(t, e.Host).ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return res.Container.State.Health
}

// waitHealth waits until the container's health status is want.
func waitHealth(t *testing.T, e *engined, name string, want container.HealthStatus) *container.Health {
	t.Helper()
	var h *container.Health
	if !poll(60*time.Second, func() bool { h = health(t, e, name); return h != nil && h.Status == want }) {
		t.Fatalf("%s never became %s; health %+v", name, want, h)
	}
	return h
}

// events follows docker events with args from now on (--since: the
// events kept replay first, so nothing is missed while the stream opens).
func events(t *testing.T, e *engined, args ...string) *lockedBuffer {
	t.Helper()
	since := strconv.FormatInt(time.Now().Unix(), 10)
	cmd := exec.Command(dockerCLI, append([]string{"-H", e.Host, "events", "--since", since}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return out
}

// starting → unhealthy → healthy, as docker ps, events and inspect show
// it; the probes are execs with dockerd's events.
func TestHealthTransitions(t *testing.T) {
	e := runEngine(t)
	all := events(t, e, "--format", "{{.Action}}|{{.Actor.Attributes.name}}|{{.Actor.Attributes.exitCode}}")
	healthEvents := events(t, e, "--filter", "event=health_status", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	mustDocker(t, e.Host, "run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
		"--health-retries", "3", "busybox", "sleep", "600")
	// Nothing has failed three times yet.
	if ps := mustDocker(t, e.Host, "ps", "--format", "{{.Names}} {{.Status}}"); !strings.Contains(ps, "(health: starting)") {
		t.Errorf("docker ps right after the start: %q", ps)
	}
	h := waitHealth(t, e, "hc", container.Unhealthy)
	if h.FailingStreak < 3 || len(h.Log) < 3 {
		t.Errorf("unhealthy with %+v", h)
	}
	for _, l := range h.Log {
		if l.ExitCode != 1 || l.End.Before(l.Start) || l.Start.IsZero() {
			t.Errorf("failed probe %+v", l)
		}
	}
	if ps := mustDocker(t, e.Host, "ps", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(ps, "hc Up") || !strings.Contains(ps, "(unhealthy)") {
		t.Errorf("docker ps of an unhealthy container: %q", ps)
	}
	mustDocker(t, e.Host, "run", "-d", "--name", "plain", "busybox", "sleep", "600")
	filtered := func(f string) string {
		return strings.TrimSpace(mustDocker(t, e.Host, "ps", "--filter", "health="+f, "--format", "{{.Names}}"))
	}
	if got := filtered("unhealthy"); got != "hc" {
		t.Errorf("ps --filter health=unhealthy: %q", got)
	}
	if got := filtered("none"); got != "plain" {
		t.Errorf("ps --filter health=none: %q", got)
	}
	if got := filtered("healthy"); got != "" {
		t.Errorf("ps --filter health=healthy: %q", got)
	}

	mustDocker(t, e.Host, "exec", "hc", "sh", "-c", "touch /tmp/ok")
	h = waitHealth(t, e, "hc", container.Healthy)
	if h.FailingStreak != 0 || h.Log[len(h.Log)-1].ExitCode != 0 || len(h.Log) > 5 {
		t.Errorf("healthy with %+v", h)
	}
	if got := filtered("healthy"); got != "hc" {
		t.Errorf("ps --filter health=healthy: %q", got)
	}
	if ps := mustDocker(t, e.Host, "ps", "--filter", "name=hc", "--format", "{{.Status}}"); !strings.Contains(ps, "(healthy)") {
		t.Errorf("docker ps of a healthy container: %q", ps)
	}
	if out, err := docker(t, e.Host, "ps", "--filter", "health=bogus"); err == nil || !strings.Contains(out, "Unrecognised filter value for health: bogus") {
		t.Errorf("ps --filter health=bogus: %v %s", err, out)
	}

	// dockerd's JSON shape, exactly these members.
	var shape map[string]json.RawMessage
	if err := json.Unmarshal([]byte(mustDocker(t, e.Host, "inspect", "--format", "{{json .State.Health}}", "hc")), &shape); err != nil {
		t.Fatal(err)
	}
	if keys := sortedKeys(shape); !reflect.DeepEqual(keys, []string{"FailingStreak", "Log", "Status"}) {
		t.Errorf("State.Health members %v", keys)
	}
	var log []map[string]any
	json.Unmarshal(shape["Log"], &log)
	if len(log) == 0 || !reflect.DeepEqual(sortedKeys(log[0]), []string{"End", "ExitCode", "Output", "Start"}) {
		t.Errorf("State.Health.Log %s", shape["Log"])
	}
	if out := mustDocker(t, e.Host, "inspect", "--format", "{{json .State.Health}}", "plain"); strings.TrimSpace(out) != "null" {
		t.Errorf("health of a container without a check: %s", out)
	}

	want := []string{"health_status: unhealthy hc", "health_status: healthy hc"}
	waitFor(t, "health_status events", func() bool { return containsInOrder(healthEvents.String(), want) })
	if lines := strings.Split(strings.TrimSpace(healthEvents.String()), "\n"); len(lines) != 2 {
		t.Errorf("health_status events:\n%s", healthEvents.String())
	}
	// Each probe is an exec, logged as dockerd logs its probes; the
	// change of status comes after the probe that made it.
	probe := "/bin/sh -c test -f /tmp/ok"
	waitFor(t, "a probe's exec events", func() bool {
		return containsInOrder(all.String(), []string{"exec_create: " + probe + "|hc|", "exec_start: " + probe + "|hc|", "exec_die|hc|1",
			"health_status: unhealthy|hc|", "exec_die|hc|0", "health_status: healthy|hc|"})
	})

	// A stop ends the checks (unhealthy, as dockerd); a start begins
	// again at starting, the log kept.
	mustDocker(t, e.Host, "stop", "-t", "0", "hc")
	if h := health(t, e, "hc"); h == nil || h.Status != container.Unhealthy || len(h.Log) == 0 {
		t.Errorf("health of the stopped container: %+v", h)
	}
	stopped := len(health(t, e, "hc").Log)
	if got := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-a", "--filter", "health=unhealthy", "--format", "{{.Names}}")); got != "hc" {
		t.Errorf("ps -a --filter health=unhealthy after the stop: %q", got)
	}
	mustDocker(t, e.Host, "start", "hc")
	if h := health(t, e, "hc"); h.Status != container.Starting || h.FailingStreak != 0 || len(h.Log) != stopped {
		t.Errorf("health after a start: %+v", h)
	}
	// The file was in the container's layer: it is healthy again.
	waitHealth(t, e, "hc", container.Healthy)

	// Paused: not checked, unhealthy (dockerd); unpaused: checked again.
	mustDocker(t, e.Host, "pause", "hc")
	if h := health(t, e, "hc"); h.Status != container.Unhealthy {
		t.Errorf("health of the paused container: %+v", h)
	}
	mustDocker(t, e.Host, "unpause", "hc")
	waitHealth(t, e, "hc", container.Healthy)
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// An image's HEALTHCHECK runs without flags; flags override parts of it
// (dockerd's merge) and --no-healthcheck turns it off.
func TestHealthFromImage(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t, "--registry-mirror", "http://"+reg.Addr)
	mustDocker(t, e.Host, "pull", "busybox")
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bb.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Cmd = []string{"sleep", "600"}
	cfg.Config.Healthcheck = &v1.HealthConfig{Test: []string{"CMD-SHELL", "echo image-probe"}, Interval: 500 * time.Millisecond, Retries: 2}
	img, err := mutate.ConfigFile(bb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(context.Background(), img, reg.Ref("healthy:1")); err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("healthy:1")
	mustDocker(t, e.Host, "pull", ref)

	// No command: the image's (the CLI sends "Cmd": null).
	mustDocker(t, e.Host, "run", "-d", "--name", "fromimage", ref)
	h := waitHealth(t, e, "fromimage", container.Healthy)
	if out := h.Log[len(h.Log)-1].Output; out != "image-probe\n" {
		t.Errorf("the image's probe printed %q", out)
	}
	if got := mustDocker(t, e.Host, "inspect", "-f", "{{json .Config.Healthcheck}}", "fromimage"); strings.TrimSpace(got) != `{"Test":["CMD-SHELL","echo image-probe"],"Interval":500000000,"Retries":2}` {
		t.Errorf("Config.Healthcheck of the image's container: %s", got)
	}

	// A flag replaces its part of the image's check, the rest stays.
	mustDocker(t, e.Host, "run", "-d", "--name", "merged", "--health-cmd", "exit 1", "--health-retries", "1", ref)
	waitHealth(t, e, "merged", container.Unhealthy)
	if got := mustDocker(t, e.Host, "inspect", "-f", "{{json .Config.Healthcheck}}", "merged"); strings.TrimSpace(got) != `{"Test":["CMD-SHELL","exit 1"],"Interval":500000000,"Retries":1}` {
		t.Errorf("Config.Healthcheck merged with the image's: %s", got)
	}

	mustDocker(t, e.Host, "run", "-d", "--name", "unchecked", "--no-healthcheck", ref)
	if got := mustDocker(t, e.Host, "inspect", "-f", "{{json .State.Health}} {{json .Config.Healthcheck.Test}}", "unchecked"); strings.TrimSpace(got) != `null ["NONE"]` {
		t.Errorf("--no-healthcheck: %s", got)
	}
	// It stays unchecked: no probe runs while the others' do.
	waitFor(t, "more probes of the image's container", func() bool { return len(health(t, e, "fromimage").Log) == 5 })
	if h := health(t, e, "unchecked"); h != nil {
		t.Errorf("--no-healthcheck container has health %+v", h)
	}
	if got := strings.TrimSpace(mustDocker(t, e.Host, "ps", "--filter", "health=none", "--format", "{{.Names}}")); got != "unchecked" {
		t.Errorf("ps --filter health=none: %q", got)
	}
}

// A probe that hangs is killed at its timeout: exit code -1 and dockerd's
// message; its exec dies of SIGKILL.
func TestHealthTimeout(t *testing.T) {
	e := runEngine(t)
	dies := events(t, e, "--filter", "event=exec_die", "--format", "{{.Actor.Attributes.exitCode}}")
	mustDocker(t, e.Host, "run", "-d", "--name", "hang", "--health-cmd", "echo started; sleep 30", "--health-timeout", "1s",
		"--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "600")
	h := waitHealth(t, e, "hang", container.Unhealthy)
	l := h.Log[0]
	if l.ExitCode != -1 || l.Output != "Health check exceeded timeout (1s): started\n" {
		t.Errorf("timed out probe: %+v", l)
	}
	waitFor(t, "the killed probe's exec_die", func() bool { return strings.Contains(dies.String(), "137") })
	// The killed probe is gone from the container (its shell, and the
	// sleep it runs when the shell does not exec it, ended or orphaned
	// to the shim).
	top := mustDocker(t, e.Host, "top", "hang")
	if strings.Count(top, "sleep 30") > 1 {
		t.Errorf("probes pile up in the container:\n%s", top)
	}

	// Without output: the message alone.
	mustDocker(t, e.Host, "run", "-d", "--name", "quiet", "--health-cmd", "sleep 30", "--health-timeout", "1s",
		"--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "600")
	h = waitHealth(t, e, "quiet", container.Unhealthy)
	if l := h.Log[0]; l.ExitCode != -1 || l.Output != "Health check exceeded timeout (1s)" {
		t.Errorf("timed out quiet probe: %+v", l)
	}
	// A command that cannot run fails the probe with the exec's error.
	code, body := e.postJSON("/containers/create?name=missing", `{"Image":"busybox","Cmd":["sleep","600"],"Healthcheck":{"Test":["CMD","/no/such/probe"],"Interval":1000000000,"Retries":1}}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	mustDocker(t, e.Host, "start", "missing")
	h = waitHealth(t, e, "missing", container.Unhealthy)
	if l := h.Log[0]; l.ExitCode != -1 || !strings.Contains(l.Output, "/no/such/probe") {
		t.Errorf("probe of a missing command: %+v", l)
	}
	// engined stops cleanly with probes in flight, and the next one
	// checks on.
	e.stop()
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	n := len(health(t, e2, "quiet").Log)
	waitFor(t, "probes after a clean restart", func() bool { h := health(t, e2, "quiet"); return len(h.Log) == 5 || len(h.Log) > n })
}

// Restarts, kills and removals while probes run: the state a run leaves
// is its own, and nothing hangs.
func TestHealthLifecycleRaces(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "busy", "--health-cmd", "true", "--health-interval", "50ms", "busybox", "sleep", "600")
	for i := 0; i < 5; i++ {
		waitHealth(t, e, "busy", container.Healthy)
		mustDocker(t, e.Host, "restart", "-t", "0", "busy")
		if h := health(t, e, "busy"); h.Status == container.Unhealthy || h.FailingStreak != 0 {
			t.Errorf("after restart %d: %+v", i, h)
		}
	}
	waitHealth(t, e, "busy", container.Healthy)
	mustDocker(t, e.Host, "kill", "busy")
	if h := health(t, e, "busy"); h.Status != container.Unhealthy {
		t.Errorf("health of the killed container: %+v", h)
	}
	// A hanging probe does not hold up a forced removal.
	mustDocker(t, e.Host, "run", "-d", "--name", "stuck", "--health-cmd", "sleep 300", "--health-interval", "50ms", "busybox", "sleep", "600")
	waitFor(t, "the probe to start", func() bool { return strings.Contains(mustDocker(t, e.Host, "top", "stuck"), "sleep 300") })
	mustDocker(t, e.Host, "rm", "-f", "stuck", "busy")
	if out := mustDocker(t, e.Host, "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left: %q", out)
	}
}

// Output is cut at 4096 bytes (with "..."), and only the last 5 results
// are kept.
func TestHealthOutputAndLog(t *testing.T) {
	e := runEngine(t)
	// Each probe counts itself, then prints far more than is kept.
	probe := `n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; echo run-$n; seq 1 3000`
	mustDocker(t, e.Host, "run", "-d", "--name", "chatty", "--health-cmd", probe, "--health-interval", "100ms", "busybox", "sleep", "600")
	var h *container.Health
	waitFor(t, "8 probes", func() bool {
		h = health(t, e, "chatty")
		return h != nil && len(h.Log) > 0 && runOf(h.Log[len(h.Log)-1].Output) >= 8
	})
	if len(h.Log) != 5 {
		t.Fatalf("%d results kept, want 5", len(h.Log))
	}
	last := runOf(h.Log[4].Output)
	for i, l := range h.Log {
		if got := runOf(l.Output); got != last-4+i {
			t.Errorf("result %d is of run %d, want %d", i, got, last-4+i)
		}
		if len(l.Output) != 4096+3 || !strings.HasSuffix(l.Output, "...") || !strings.Contains(l.Output, "\n1\n2\n3\n") || l.ExitCode != 0 {
			t.Errorf("result %d: %d bytes, exit %d, ends %q", i, len(l.Output), l.ExitCode, l.Output[max(0, len(l.Output)-10):])
		}
	}
	if h.Status != container.Healthy {
		t.Errorf("status %s", h.Status)
	}

	// A probe that floods its output until its timeout: killed, capped.
	mustDocker(t, e.Host, "run", "-d", "--name", "flood", "--health-cmd", "yes", "--health-timeout", "1s", "--health-interval", "100ms",
		"--health-retries", "1", "busybox", "sleep", "600")
	h = waitHealth(t, e, "flood", container.Unhealthy)
	prefix := "Health check exceeded timeout (1s): "
	if l := h.Log[0]; l.ExitCode != -1 || len(l.Output) != len(prefix)+4096+3 || !strings.HasPrefix(l.Output, prefix+"y\ny\n") || !strings.HasSuffix(l.Output, "...") {
		t.Errorf("flooding probe: exit %d, %d bytes, %q", l.ExitCode, len(l.Output), l.Output[:min(len(l.Output), 60)])
	}

	// Bytes that are not UTF-8, and the cap cutting a character in two:
	// inspect still answers, with U+FFFD for each bad byte (as dockerd's
	// JSON has them).
	mustDocker(t, e.Host, "run", "-d", "--name", "binary", "--health-cmd", `printf '\377%4094s\303\251' x`, "--health-interval", "200ms",
		"busybox", "sleep", "600")
	h = waitHealth(t, e, "binary", container.Healthy)
	want := "\uFFFD" + strings.Repeat(" ", 4093) + "x\uFFFD..."
	if got := h.Log[0].Output; got != want {
		t.Errorf("output of bad bytes: %q...%q (%d bytes)", got[:min(8, len(got))], got[max(0, len(got)-8):], len(got))
	}
}

func runOf(out string) int {
	var n int
	fmt.Sscanf(out, "run-%d", &n)
	return n
}

// SIGKILL engined while a healthy container runs: when engined is back,
// the checks go on from the state it recorded, and a change shows.
func TestHealthSurvivesEngineRestart(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "keeper", "--health-cmd", "test -f /tmp/ok || exit 1", "--health-interval", "300ms",
		"--health-retries", "2", "busybox", "sh", "-c", "touch /tmp/ok; exec sleep 600")
	before := waitHealth(t, e, "keeper", container.Healthy)
	e.cmd.Process.Kill()
	<-e.done
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	// The state survived (no reset to starting) and probes go on.
	after := health(t, e2, "keeper")
	if after == nil || after.Status != container.Healthy || len(after.Log) < len(before.Log) {
		t.Errorf("health after the restart: %+v (before: %+v)", after, before)
	}
	lastBefore := after.Log[len(after.Log)-1].Start
	waitFor(t, "a probe after the restart", func() bool {
		h := health(t, e2, "keeper")
		return h.Log[len(h.Log)-1].Start.After(lastBefore)
	})
	mustDocker(t, e2.Host, "exec", "keeper", "sh", "-c", "rm /tmp/ok")
	h := waitHealth(t, e2, "keeper", container.Unhealthy)
	if h.FailingStreak < 2 {
		t.Errorf("unhealthy with %+v", h)
	}
	// The record keeps what the probes found: a clean restart shows it.
	e2.stop()
	e3 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	if h := health(t, e3, "keeper"); h.Status != container.Unhealthy {
		t.Errorf("health after a clean restart: %+v", h)
	}
	mustDocker(t, e3.Host, "exec", "keeper", "sh", "-c", "touch /tmp/ok")
	waitHealth(t, e3, "keeper", container.Healthy)
}

// A start period: failures within it do not count while starting, and
// the start interval paces the probes then (dockerd's: when the rest of
// the start period is at least an interval).
func TestHealthStartPeriod(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "slow", "--health-cmd", "exit 1", "--health-interval", "30m", "--health-start-period", "1h",
		"--health-start-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "600")
	waitFor(t, "probes in the start period", func() bool { h := health(t, e, "slow"); return h != nil && len(h.Log) >= 3 })
	if h := health(t, e, "slow"); h.Status != container.Starting || h.FailingStreak != 0 {
		t.Errorf("failures in the start period counted: %+v", h)
	}
}

// Bad health check values are 400s with dockerd's messages.
func TestHealthInvalid(t *testing.T) {
	e := runEngine(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--health-cmd", "true", "--health-interval", "500us"}, "Interval in Healthcheck cannot be less than 1ms"},
		{[]string{"--health-cmd", "true", "--health-timeout", "1us"}, "Timeout in Healthcheck cannot be less than 1ms"},
		{[]string{"--health-cmd", "true", "--health-start-period", "1ns"}, "StartPeriod in Healthcheck cannot be less than 1ms"},
		{[]string{"--health-cmd", "true", "--health-start-interval", "1ns"}, "StartInterval in Healthcheck cannot be less than 1ms"},
	} {
		out, err := docker(t, e.Host, append(append([]string{"run", "-d"}, c.args...), "busybox", "true")...)
		if exitCode(err) != 125 || !strings.Contains(out, c.want) {
			t.Errorf("run %v: %v %s, want %q", c.args, err, out, c.want)
		}
	}
	for body, want := range map[string]string{
		`"Healthcheck":{"Test":["CMD","true"],"Interval":-1}`: "Interval in Healthcheck cannot be less than 1ms",
		`"Healthcheck":{"Test":["CMD","true"],"Retries":-3}`:  "Retries in Healthcheck cannot be negative",
		`"Healthcheck":{"Test":["CMD-SHELL"]}`:                "Healthcheck CMD-SHELL needs a command",
		`"Healthcheck":{"Test":["WHATEVER"]}`:                 "unknown Healthcheck type 'WHATEVER'",
		`"Healthcheck":{"Interval":"soon"}`:                   "invalid JSON",
	} {
		code, resp := e.postJSON("/containers/create", `{"Image":"busybox","Cmd":["true"],`+body+`}`)
		if code != 400 || !strings.Contains(resp, want) {
			t.Errorf("%s: %d %s, want 400 %q", body, code, resp, want)
		}
	}
	if out, err := docker(t, e.Host, "ps", "-a", "-q"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("containers left by refused creates: %q", out)
	}
}

// docker-compose's depends_on condition service_healthy waits for the
// health check: the app starts only once db is healthy.
func TestHealthComposeDependsOnHealthy(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: make deps installs Debian's docker-compose")
	}
	e := runEngine(t)
	dir := t.TempDir()
	yml := `version: "2.4"
services:
  db:
    image: busybox
    command: sh -c "sleep 1; touch /tmp/ready; exec sleep 600"
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 200ms
      retries: 100
  app:
    image: busybox
    command: sleep 600
    depends_on:
      db:
        condition: service_healthy
`
	if err := os.WriteFile(dir+"/docker-compose.yml", []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := t.TempDir()
	if out, err := runCompose(t, dir, e.Host, cfg, "docker-compose", "-p", "hc", "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	// up returned with app started, so db was healthy before.
	if h := health(t, e, "hc_db_1"); h == nil || h.Status != container.Healthy {
		t.Errorf("db after up: %+v", h)
	}
	if st := mustDocker(t, e.Host, "inspect", "-f", "{{.State.Status}}", "hc_app_1"); strings.TrimSpace(st) != "running" {
		t.Errorf("app after up: %s", st)
	}
	if out, err := runCompose(t, dir, e.Host, cfg, "docker-compose", "-p", "hc", "down"); err != nil {
		t.Fatalf("compose down: %v\n%s", err, out)
	}
}

// StartInterval is API 1.44's: older clients neither set nor see it.
func TestHealthAPIVersions(t *testing.T) {
	e := runEngine(t)
	body := `{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"StartInterval":5000000000}}`
	healthcheck := func(version, name string) string {
		code, _, resp := e.get(version + "/containers/" + name + "/json")
		if code != 200 {
			t.Fatalf("inspect %s: %d %s", name, code, resp)
		}
		var c struct {
			Config struct{ Healthcheck json.RawMessage }
		}
		json.Unmarshal([]byte(resp), &c)
		return string(c.Config.Healthcheck)
	}
	for _, c := range []struct{ version, name, want string }{
		{"/v1.43", "old", `{"Test":["CMD","true"]}`},
		{"/v1.44", "new", `{"Test":["CMD","true"],"StartInterval":5000000000}`},
	} {
		if code, resp := e.postJSON(c.version+"/containers/create?name="+c.name, body); code != 201 {
			t.Fatalf("create at %s: %d %s", c.version, code, resp)
		}
		if got := healthcheck("/v1.51", c.name); got != c.want {
			t.Errorf("created at %s: %s, want %s", c.version, got, c.want)
		}
	}
	if got := healthcheck("/v1.43", "new"); got != `{"Test":["CMD","true"]}` {
		t.Errorf("inspected at 1.43: %s", got)
	}
}
