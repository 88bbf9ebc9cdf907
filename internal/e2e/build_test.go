package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildCLI runs the real docker CLI in dir with the classic builder
// (DOCKER_BUILDKIT=0: there is no buildx plugin here), stdin from stdin.
func buildCLI(t *testing.T, host, dir, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, append([]string{"-H", host}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir(), "DOCKER_BUILDKIT=0")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const multiStageDockerfile = `FROM busybox AS build
RUN sh -c "mkdir -p /out && echo built-in-stage > /out/artifact"
COPY greeting.txt /out/greeting.txt

FROM busybox
COPY --from=build /out/ /app/
ENV APP_MODE=production
WORKDIR /app
USER nobody
HEALTHCHECK --interval=5s --timeout=3s CMD ["sh", "-c", "test -f /app/artifact"]
ENTRYPOINT ["sh", "-c", "echo mode=$APP_MODE user=$(id -u) cwd=$(pwd); cat artifact greeting.txt"]
`

// TestBuildMultiStage is the acceptance path: a multi-stage build with
// the real CLI, the image runs as built, a second build is all cache,
// and changing one file rebuilds from the step that copies it.
func TestBuildMultiStage(t *testing.T) {
	e := runEngine(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": multiStageDockerfile, "greeting.txt": "hello\n"})

	out, err := buildCLI(t, e.Host, dir, "", "build", "-t", "app", ".")
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	mustContain(t, "build output", out, "Step 1/10 : FROM busybox AS build", " ---> Running in ",
		"Step 10/10 : ENTRYPOINT", "Successfully built ", "Successfully tagged app:latest")
	if strings.Contains(out, "Using cache") {
		t.Errorf("first build used the cache:\n%s", out)
	}
	run := mustDocker(t, e.Host, "run", "--rm", "app")
	mustContain(t, "run output", run, "mode=production user=65534 cwd=/app", "built-in-stage", "hello")

	insp := mustDocker(t, e.Host, "image", "inspect", "-f", "{{json .Config.Healthcheck}} {{.Config.User}} {{.Config.WorkingDir}} {{json .Config.Entrypoint}}", "app")
	mustContain(t, "image config", insp, `"Test":["CMD","sh","-c","test -f /app/artifact"]`, `"Interval":5000000000`, "nobody /app")

	// docker history shows each step.
	hist := mustDocker(t, e.Host, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "app")
	mustContain(t, "history", hist, "ENTRYPOINT", "HEALTHCHECK", "USER nobody", "WORKDIR /app", "ENV APP_MODE=production", "COPY dir:")

	// No intermediate container is left (--rm is the default).
	if ps := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-aq")); ps != "" {
		t.Errorf("containers left after the build: %q", ps)
	}

	// The same build again: every step from the cache.
	out, err = buildCLI(t, e.Host, dir, "", "build", "-t", "app", ".")
	if err != nil {
		t.Fatalf("second docker build: %v\n%s", err, out)
	}
	if n := strings.Count(out, " ---> Using cache"); n != 8 {
		t.Errorf("second build: %d steps from the cache, want 8:\n%s", n, out)
	}
	if strings.Contains(out, "Running in") {
		t.Errorf("second build ran a step:\n%s", out)
	}

	// A changed file: the build stage is cached up to its COPY, which
	// runs again, and so does everything after it.
	writeFiles(t, dir, map[string]string{"greeting.txt": "changed\n"})
	out, err = buildCLI(t, e.Host, dir, "", "build", "-t", "app", ".")
	if err != nil {
		t.Fatalf("third docker build: %v\n%s", err, out)
	}
	if n := strings.Count(out, " ---> Using cache"); n != 1 {
		t.Errorf("after a change: %d steps from the cache, want 1 (the RUN):\n%s", n, out)
	}
	run = mustDocker(t, e.Host, "run", "--rm", "app")
	mustContain(t, "run output after the change", run, "changed")
}
