package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// docker events streams container and image events as they happen, and
// --since/--until replays them with filters.
func TestDockerEvents(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "pull", "busybox")
	live := exec.Command(dockerCLI, "-H", e.Host, "events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
	live.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out := &lockedBuffer{}
	live.Stdout, live.Stderr = out, out
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer live.Process.Kill()
	time.Sleep(500 * time.Millisecond)
	if _, err := docker(t, e.Host, "run", "--rm", "--name", "ev", "busybox", "sh", "-c", "exit 2"); exitCode(err) != 2 {
		t.Fatalf("run: %v", err)
	}
	mustDocker(t, e.Host, "tag", "busybox", "evtag:1")
	want := []string{"container create ev", "container start ev", "container die ev 2", "container destroy ev", "image tag"}
	deadline := time.Now().Add(20 * time.Second)
	for !containsInOrder(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("docker events printed:\n%s\nwant, in order: %q", out.String(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The CLI sends --until with whole seconds: let the next one begin.
	time.Sleep(1100 * time.Millisecond)
	replay := mustDocker(t, e.Host, "events", "--since", "1m", "--until", "0s", "--filter", "event=die", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	if strings.TrimSpace(replay) != "die ev" {
		t.Errorf("replayed die events: %q; all: %q", replay, mustDocker(t, e.Host, "events", "--since", "1m", "--until", "0s"))
	}
	if o, err := docker(t, e.Host, "events", "--filter", "bogus=1", "--until", "0s"); err == nil || !strings.Contains(o, "invalid filter 'bogus'") {
		t.Errorf("events with a bad filter: %v %q", err, o)
	}
}

func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
