package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// composeProject writes a two-service project: web serves a page and
// publishes it on hostPort (all addresses); client reaches web by its
// service name over the project's network and prints what it got. web
// counts its starts in a named volume and serves the count (/boots).
func composeProject(t *testing.T, hostPort int) string {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: "3.8"
services:
  web:
    image: busybox
    command: sh -c "echo boot >> /data/boots && cp /data/boots /tmp/boots && echo hello-from-web > /tmp/index.html && exec httpd -f -p 80 -h /tmp"
    ports:
      - "%d:80"
    volumes:
      - data:/data
  client:
    image: busybox
    command: sh -c "until wget -qO- http://web/ >/tmp/got 2>/dev/null; do sleep 0.2; done; echo client-got-$$(cat /tmp/got); exec sleep 600"
    depends_on: [web]
volumes:
  data:
`, hostPort)
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runCompose runs a compose command (argv[0] "docker-compose" or
// "docker" for the plugin) in dir against the engine at host.
func runCompose(t *testing.T, dir, host, configDir string, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name := argv[0]
	if name == "docker" {
		name = dockerCLI
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CONFIG="+configDir, "COMPOSE_INTERACTIVE_NO_CLI=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkComposeProject brings the project up with compose (the command
// prefix), checks that the client reached web by its service name and
// that the host reaches web's published port, then brings it down and
// checks that no container, network, bridge, veth or rule is left.
func checkComposeProject(t *testing.T, e *engined, compose []string, configDir string) {
	n := netFor(t, filepath.Dir(e.DataRoot))
	rulesBefore := nftTable(t, n)
	linksBefore := engineLinks(t, n.Bridge)
	port := freePort(t)
	dir := composeProject(t, port)
	cmd := func(args ...string) string {
		t.Helper()
		out, err := runCompose(t, dir, e.Host, configDir, append(append([]string{}, compose...), args...)...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", strings.Join(compose, " "), strings.Join(args, " "), err, out)
		}
		return out
	}
	cmd("-p", "proj", "up", "-d")
	var logs string
	waitFor(t, "the client to reach web by its service name", func() bool {
		logs, _ = runCompose(t, dir, e.Host, configDir, append(append([]string{}, compose...), "-p", "proj", "logs", "client")...)
		return strings.Contains(logs, "client-got-hello-from-web")
	})
	if got, err := hostGetWhenUp(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil || got != "hello-from-web\n" {
		t.Errorf("host to web's published port: %q, %v", got, err)
	}
	ps := cmd("-p", "proj", "ps")
	mustContain(t, "compose ps", ps, "web", "client", fmt.Sprintf("%d->80/tcp", port))
	var nets []map[string]any
	json.Unmarshal([]byte(mustDocker(t, e.Host, "network", "inspect", "proj_default")), &nets)
	if len(nets) != 1 || len(nets[0]["Containers"].(map[string]any)) != 2 {
		t.Errorf("proj_default: %v", nets)
	}
	projBridge := "br-" + nets[0]["Id"].(string)[:12]
	cmd("-p", "proj", "down")
	// The named volume outlives down; up again finds its data.
	if out := mustDocker(t, e.Host, "volume", "ls", "-q"); out != "proj_data\n" {
		t.Errorf("volumes after down: %q", out)
	}
	cmd("-p", "proj", "up", "-d")
	if got, err := hostGetWhenUp(t, fmt.Sprintf("http://127.0.0.1:%d/boots", port)); err != nil || got != "boot\nboot\n" {
		t.Errorf("the volume's data over down and up: %q, %v", got, err)
	}
	cmd("-p", "proj", "down", "-v")
	if out := mustDocker(t, e.Host, "volume", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("volumes after down -v: %q", out)
	}

	if out := mustDocker(t, e.Host, "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left after down: %s", out)
	}
	if out := mustDocker(t, e.Host, "network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "proj") {
		t.Errorf("network left after down:\n%s", out)
	}
	if after := nftTable(t, n); after != rulesBefore {
		t.Errorf("rules changed over up and down:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}
	// The engine's links only: other engines on the host (parallel
	// tests) come and go meanwhile.
	if after := engineLinks(t, n.Bridge, projBridge); after != linksBefore {
		t.Errorf("engine's links changed over up and down:\nbefore: %s\nafter:  %s", linksBefore, after)
	}
}

// engineLinks names the bridges given that exist and the links enslaved
// to them, one line.
func engineLinks(t *testing.T, bridges ...string) string {
	t.Helper()
	var names []string
	for _, b := range bridges {
		if exec.Command("ip", "link", "show", b).Run() != nil {
			continue
		}
		names = append(names, b+":")
		out, _ := exec.Command("ip", "-o", "link", "show", "master", b).Output()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
			}
		}
	}
	return strings.Join(names, " ")
}

// docker-compose 1.29 (Debian's package, Python, docker-py): a
// two-service project where one service reaches the other by its name
// and the host reaches a published port; down leaves nothing behind.
func TestDockerComposeV1(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: make deps installs Debian's docker-compose")
	}
	e := runEngine(t)
	checkComposeProject(t, e, []string{"docker-compose"}, t.TempDir())
}

// The Compose plugin (docker compose, v5.6.0, built from the Go module
// proxy) with the same project. It lists volumes and networks before
// anything else, so those APIs' shapes matter from its first call.
func TestDockerComposePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Compose plugin")
	}
	plugin := composePlugin(t)
	e := runEngine(t)
	config := t.TempDir()
	if err := os.MkdirAll(filepath.Join(config, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plugin, filepath.Join(config, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	checkComposeProject(t, e, []string{"docker", "compose"}, config)
}

const composeVersion = "v5.6.0"

var composeOnce struct {
	sync.Once
	path string
	err  error
}

// composePlugin builds the Compose plugin once per machine, into the
// user's cache directory: go mod download of the module, go build of
// its ./cmd from a writable copy.
func composePlugin(t *testing.T) string {
	t.Helper()
	composeOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			composeOnce.err = err
			return
		}
		bin := filepath.Join(cache, "engined-e2e", "docker-compose-"+composeVersion)
		if _, err := os.Stat(bin); err == nil {
			composeOnce.path = bin
			return
		}
		env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
		dl := exec.Command("go", "mod", "download", "-json", "github.com/docker/compose/v5@"+composeVersion)
		dl.Env = env
		out, err := dl.Output()
		if err != nil {
			composeOnce.err = fmt.Errorf("go mod download compose: %v\n%s", err, out)
			return
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			composeOnce.err = fmt.Errorf("go mod download compose: %v\n%s", err, out)
			return
		}
		src, err := os.MkdirTemp("", "compose-src-")
		if err != nil {
			composeOnce.err = err
			return
		}
		defer os.RemoveAll(src)
		if out, err := exec.Command("cp", "-r", mod.Dir+"/.", src).CombinedOutput(); err != nil {
			composeOnce.err = fmt.Errorf("copy compose source: %v\n%s", err, out)
			return
		}
		exec.Command("chmod", "-R", "u+w", src).Run()
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			composeOnce.err = err
			return
		}
		build := exec.Command("go", "build", "-o", bin+".tmp", "./cmd")
		build.Dir, build.Env = src, env
		if out, err := build.CombinedOutput(); err != nil {
			composeOnce.err = fmt.Errorf("build compose: %v\n%s", err, out)
			return
		}
		composeOnce.err = os.Rename(bin+".tmp", bin)
		composeOnce.path = bin
	})
	if composeOnce.err != nil {
		t.Fatal(composeOnce.err)
	}
	return composeOnce.path
}
