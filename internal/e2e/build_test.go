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

// TestBuildOptions: .dockerignore (checked inside the image),
// --build-arg with ARG and the proxy args, --target, -f - and -f outside
// the context, --label, -q and several -t.
func TestBuildOptions(t *testing.T) {
	e := runEngine(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".dockerignore": "secret.txt\nlogs/\n*.tmp\n!keep.tmp\n",
		"secret.txt":    "s3cret\n", "logs/a.log": "log\n", "x.tmp": "tmp\n", "keep.tmp": "kept\n", "app.txt": "app\n",
		"Dockerfile": `FROM busybox AS first
ARG GREETING=hello
ARG UNSET
RUN sh -c "echo $GREETING-${UNSET:-none}-$HTTP_PROXY > /greeting"
COPY . /ctx/
FROM busybox AS second
RUN sh -c "echo second > /which"
`,
	})
	out, err := buildCLI(t, e.Host, dir, "", "build", "--build-arg", "GREETING=hi", "--build-arg", "HTTP_PROXY=http://proxy:3128",
		"--build-arg", "NOTUSED=1", "--target", "first", "--label", "team=core", "-t", "opts:one", "-t", "opts:two", ".")
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	mustContain(t, "build output", out, "Step 6/6 : LABEL team=core", "Successfully tagged opts:one", "Successfully tagged opts:two",
		"[Warning] One or more build-args [NOTUSED] were not consumed")
	if strings.Contains(out, "second") {
		t.Errorf("--target first ran the second stage:\n%s", out)
	}
	got := mustDocker(t, e.Host, "run", "--rm", "opts:two", "sh", "-c", "cat /greeting; ls -a /ctx | tr '\\n' ' '")
	mustContain(t, "image content", got, "hi-none-http://proxy:3128", "app.txt", "keep.tmp", "Dockerfile")
	for _, gone := range []string{"secret.txt", "logs", "x.tmp"} {
		if strings.Contains(got, gone) {
			t.Errorf(".dockerignore'd %s is in the image: %q", gone, got)
		}
	}
	if l := mustDocker(t, e.Host, "image", "inspect", "-f", "{{index .Config.Labels \"team\"}}", "opts:one"); strings.TrimSpace(l) != "core" {
		t.Errorf("--label: %q", l)
	}
	// The proxy arg is not kept in the image's history (dockerd drops
	// unreferenced builtin args from the command it records).
	if h := mustDocker(t, e.Host, "history", "--no-trunc", "opts:one"); strings.Contains(h, "proxy:3128") {
		t.Errorf("history shows the proxy build arg:\n%s", h)
	}

	// -f - (the Dockerfile from stdin, the context from the directory)
	// and -q (only the ID).
	out, err = buildCLI(t, e.Host, dir, "FROM busybox\nRUN sh -c \"echo stdin > /from\"\n", "build", "-q", "-f", "-", "-t", "fromstdin", ".")
	if err != nil {
		t.Fatalf("docker build -f -: %v\n%s", err, out)
	}
	if id := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]); !strings.HasPrefix(id, "sha256:") || strings.Contains(out, "Step") {
		t.Errorf("-q printed %q", out)
	}
	mustContain(t, "stdin build", mustDocker(t, e.Host, "run", "--rm", "fromstdin", "cat", "/from"), "stdin")

	// -f naming a file outside the context.
	other := filepath.Join(t.TempDir(), "Other.dockerfile")
	writeFiles(t, filepath.Dir(other), map[string]string{"Other.dockerfile": "FROM busybox\nCOPY app.txt /\n"})
	out, err = buildCLI(t, e.Host, dir, "", "build", "-f", other, "-t", "outside", ".")
	if err != nil {
		t.Fatalf("docker build -f outside: %v\n%s", err, out)
	}
	mustContain(t, "outside build", mustDocker(t, e.Host, "run", "--rm", "outside", "cat", "/app.txt"), "app")
}

// TestBuildFailingRun: a failing RUN ends the build with dockerd's
// message and its exit code, leaving the step's container (none with
// --force-rm).
func TestBuildFailingRun(t *testing.T) {
	e := runEngine(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN sh -c \"echo about to fail; exit 3\"\nRUN echo never\n"})
	out, err := buildCLI(t, e.Host, dir, "", "build", "-t", "fails", ".")
	if code := exitCode(err); code != 3 {
		t.Errorf("docker build of a failing RUN: exit %d, want 3\n%s", code, out)
	}
	mustContain(t, "failed build", out, "about to fail", `The command '/bin/sh -c sh -c "echo about to fail; exit 3"' returned a non-zero code: 3`)
	if strings.Contains(out, "never") {
		t.Errorf("the build went on after the failure:\n%s", out)
	}
	ps := mustDocker(t, e.Host, "ps", "-a", "--format", "{{.Status}}")
	if !strings.Contains(ps, "Exited (3)") {
		t.Errorf("the failed step's container is not left: %q", ps)
	}
	mustDocker(t, e.Host, "rm", "-f", strings.Fields(mustDocker(t, e.Host, "ps", "-aq"))[0])

	out, err = buildCLI(t, e.Host, dir, "", "build", "--force-rm", "-t", "fails", ".")
	if code := exitCode(err); code != 3 {
		t.Errorf("docker build --force-rm: exit %d, want 3\n%s", code, out)
	}
	if ps := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-aq")); ps != "" {
		t.Errorf("--force-rm left containers: %q", ps)
	}
	if _, err := docker(t, e.Host, "image", "inspect", "fails"); err == nil {
		t.Error("a failed build tagged its image")
	}
}

// TestCommitChanges: docker commit of a changed container gives an image
// with the change and the --change settings; the container is paused
// while committed and runs on.
func TestCommitChanges(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "tocommit", "busybox", "sh", "-c", "echo changed > /data.txt; rm /etc/group; exec sleep 600"))
	waitFor(t, "the container's change", func() bool {
		out, err := docker(t, e.Host, "exec", id, "cat", "/data.txt")
		return err == nil && strings.Contains(out, "changed")
	})
	out := mustDocker(t, e.Host, "commit", "--change", "ENV MODE=committed", "--change", `CMD ["cat", "/data.txt"]`,
		"--change", "WORKDIR /srv", "--change", "LABEL origin=commit", "-a", "tester", "-m", "a message", "tocommit", "committed:v1")
	if !strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
		t.Fatalf("docker commit printed %q", out)
	}
	if st := mustDocker(t, e.Host, "inspect", "-f", "{{.State.Status}}", "tocommit"); strings.TrimSpace(st) != "running" {
		t.Errorf("container after commit: %s", st)
	}
	mustContain(t, "committed image", mustDocker(t, e.Host, "run", "--rm", "committed:v1"), "changed")
	got := mustDocker(t, e.Host, "run", "--rm", "committed:v1", "sh", "-c", "echo $MODE $(pwd); test -e /etc/group && echo group-present || echo group-gone")
	mustContain(t, "committed env and workdir", got, "committed /srv", "group-gone")
	insp := mustDocker(t, e.Host, "image", "inspect", "-f", "{{.Author}}|{{.Comment}}|{{index .Config.Labels \"origin\"}}|{{len .RootFS.Layers}}", "committed:v1")
	if strings.TrimSpace(insp) != "tester|a message|commit|2" {
		t.Errorf("committed image: %q", insp)
	}
	// A bad --change is dockerd's 400.
	out, err := docker(t, e.Host, "commit", "--change", "RUN echo no", "tocommit")
	if err == nil || !strings.Contains(out, "RUN is not a valid change command") {
		t.Errorf("commit --change RUN: %v %q", err, out)
	}
}
