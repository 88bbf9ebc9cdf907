package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
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

	// Intermediate images are listed only with -a; history names them.
	// (app, busybox and, as with dockerd, the build stage's untagged
	// result)
	if imgs := mustDocker(t, e.Host, "images", "-q"); len(strings.Fields(imgs)) != 3 {
		t.Errorf("docker images lists intermediate images:\n%s", imgs)
	}
	if all := mustDocker(t, e.Host, "images", "-aq"); len(strings.Fields(all)) < 8 {
		t.Errorf("docker images -a lists no intermediate images:\n%s", all)
	}
	if ids := mustDocker(t, e.Host, "history", "-q", "app"); strings.Contains(ids, "<missing>") || len(strings.Fields(ids)) != 7 {
		t.Errorf("history: want the 7 images of the final stage's steps (busybox's included):\n%s", ids)
	}

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

	// rmi of the built image deletes its untagged step images too, as
	// dockerd's; the base image stays.
	rmi := mustDocker(t, e.Host, "rmi", "app")
	if n := strings.Count(rmi, "Deleted:"); n < 5 {
		t.Errorf("docker rmi app deleted %d images, want the final stage's steps:\n%s", n, rmi)
	}
	mustDocker(t, e.Host, "image", "inspect", "busybox")
	// An image others were made from cannot be deleted by ID.
	bbID := strings.TrimSpace(mustDocker(t, e.Host, "image", "inspect", "-f", "{{.Id}}", "busybox"))
	// (The CLI without DOCKER_BUILDKIT=0 uses the classic builder too:
	// /_ping says Builder-Version 1.)
	mustContain(t, "build without DOCKER_BUILDKIT", mustDocker(t, e.Host, "build", "-t", "child", dir), "Step 1/10 : FROM busybox AS build", "Successfully tagged child:latest")
	if out, err := docker(t, e.Host, "rmi", "-f", bbID); err == nil || !strings.Contains(out, "image has dependent child images") {
		t.Errorf("rmi of a parent by ID: %v %s", err, out)
	}
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
	iid := filepath.Join(t.TempDir(), "iid")
	if out, err := buildCLI(t, e.Host, dir, "FROM busybox\n", "build", "-q", "--iidfile", iid, "-f", "-", "."); err != nil {
		t.Fatalf("docker build --iidfile: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(iid); !strings.HasPrefix(string(b), "sha256:") {
		t.Errorf("--iidfile wrote %q", b)
	}

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
	// A RUN whose program does not exist: the runtime's error, exit 1.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN [\"/nosuchbinary\"]\n"})
	out, err = buildCLI(t, e.Host, dir, "", "build", "--force-rm", ".")
	if code := exitCode(err); code != 1 || !strings.Contains(out, "nosuchbinary") {
		t.Errorf("RUN of a missing program: exit %d\n%s", code, out)
	}
	// --rm=false keeps every step's container.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN true\nRUN true\n"})
	if out, err := buildCLI(t, e.Host, dir, "", "build", "--rm=false", "."); err != nil {
		t.Fatalf("build --rm=false: %v\n%s", err, out)
	}
	if ps := strings.Fields(mustDocker(t, e.Host, "ps", "-aq")); len(ps) != 2 {
		t.Errorf("--rm=false: %d containers left, want 2", len(ps))
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
	waitFor(t, "the container commit event", func() bool {
		ev, err := docker(t, e.Host, "events", "--since", "1m", "--until", "0s", "--filter", "event=commit",
			"--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.comment}}")
		return err == nil && strings.Contains(ev, "container commit tocommit a message")
	})
	// A bad --change is dockerd's 400.
	out, err := docker(t, e.Host, "commit", "--change", "RUN echo no", "tocommit")
	if err == nil || !strings.Contains(out, "RUN is not a valid change command") {
		t.Errorf("commit --change RUN: %v %q", err, out)
	}
	// The committed image saves and loads like any other.
	saved := filepath.Join(t.TempDir(), "committed.tar")
	mustDocker(t, e.Host, "save", "-o", saved, "committed:v1")
	mustDocker(t, e.Host, "rmi", "committed:v1")
	mustDocker(t, e.Host, "load", "-i", saved)
	mustContain(t, "loaded committed image", mustDocker(t, e.Host, "run", "--rm", "committed:v1"), "changed")
	// A stopped container commits too, with --pause=false.
	mustDocker(t, e.Host, "stop", "-t", "0", "tocommit")
	mustDocker(t, e.Host, "commit", "--pause=false", "tocommit", "committed:stopped")
	mustContain(t, "image of a stopped container", mustDocker(t, e.Host, "run", "--rm", "committed:stopped", "cat", "/data.txt"), "changed")
	if out, err := docker(t, e.Host, "commit", "nosuchcontainer"); err == nil || !strings.Contains(out, "No such container: nosuchcontainer") {
		t.Errorf("commit of a missing container: %v %q", err, out)
	}
}

// TestBuildPlatform: --platform and FROM --platform pull the platform
// asked for, and refuse what cannot be built here.
func TestBuildPlatform(t *testing.T) {
	e := runEngine(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n", "Dockerfile.arm": "FROM --platform=linux/arm64 busybox\n"})
	out, err := buildCLI(t, e.Host, dir, "", "build", "--platform", "windows/amd64", ".")
	if err == nil || !strings.Contains(out, "only linux images can be built") {
		t.Errorf("--platform windows: %v\n%s", err, out)
	}
	// The registry has busybox for amd64 only: arm64 is not found, and
	// the local amd64 busybox is not taken for it.
	out, err = buildCLI(t, e.Host, dir, "", "build", "-f", "Dockerfile.arm", ".")
	if err == nil || !strings.Contains(out, "arm64") {
		t.Errorf("FROM --platform=linux/arm64: %v\n%s", err, out)
	}
	if out, err := buildCLI(t, e.Host, dir, "", "build", "--platform", "linux/"+runtime.GOARCH, "-t", "native", "."); err != nil {
		t.Errorf("--platform of the engine's own: %v\n%s", err, out)
	}
}

// ctxTar makes a context tar from entries, in order.
func ctxTar(t *testing.T, entries ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := h.Linkname
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return &buf
}

// file is a regular entry; its content rides in Linkname for ctxTar.
func file(name, content string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Linkname: content}
}

// buildRaw posts a context with the moby client and returns the
// stream's text and the error it reported (in-band or not).
func buildRaw(t *testing.T, e *engined, ctxTar io.Reader, opts client.ImageBuildOptions) (string, error) {
	t.Helper()
	c := mobyClient(t, e.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.ImageBuild(ctx, ctxTar, opts)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out strings.Builder
	dec := json.NewDecoder(res.Body)
	for {
		var m struct {
			Stream      string
			Error       string
			ErrorDetail *struct {
				Code    int
				Message string
			}
		}
		if err := dec.Decode(&m); err == io.EOF {
			return out.String(), nil
		} else if err != nil {
			return out.String(), err
		}
		out.WriteString(m.Stream)
		if m.Error != "" {
			return out.String(), errors.New(m.Error)
		}
	}
}

// TestBuildHostile: contexts and Dockerfiles that try to leave the
// context or a stage's root, options only BuildKit has, and malformed
// input get clear errors and never reach the host's files.
func TestBuildHostile(t *testing.T) {
	e := runEngine(t)
	hostPasswd, _ := os.ReadFile("/etc/passwd")
	df := func(s string) *tar.Header { return file("Dockerfile", s) }

	// Entries climbing out of the context land inside it.
	out, err := buildRaw(t, e, ctxTar(t, df("FROM busybox\nCOPY . /ctx/\n"), file("../../escape.txt", "x"), file("/abs.txt", "y")),
		client.ImageBuildOptions{Tags: []string{"climb"}, Remove: true})
	if err != nil {
		t.Fatalf("build with ../ entries: %v\n%s", err, out)
	}
	mustContain(t, "clamped entries", mustDocker(t, e.Host, "run", "--rm", "climb", "ls", "/ctx"), "escape.txt", "abs.txt")

	// A symlink out of the context names the context's own path: COPY
	// finds nothing there.
	for _, link := range []string{"/etc/passwd", "../../../../../../etc/passwd"} {
		out, err = buildRaw(t, e, ctxTar(t, df("FROM busybox\nCOPY leak /leak\n"), &tar.Header{Typeflag: tar.TypeSymlink, Name: "leak", Linkname: link}),
			client.ImageBuildOptions{Tags: []string{"leak"}, Remove: true})
		if err == nil || !strings.Contains(err.Error(), "file not found in build context") {
			t.Errorf("COPY of a symlink to %s: %v\n%s", link, err, out)
		}
	}
	// A directory holding such a link copies the link, not its target.
	out, err = buildRaw(t, e, ctxTar(t, df("FROM busybox\nCOPY d /d\n"), &tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755},
		&tar.Header{Typeflag: tar.TypeSymlink, Name: "d/l", Linkname: "/etc/passwd"}), client.ImageBuildOptions{Tags: []string{"dirlink"}, Remove: true})
	if err != nil {
		t.Fatalf("COPY of a directory with a symlink: %v\n%s", err, out)
	}
	if got := mustDocker(t, e.Host, "run", "--rm", "dirlink", "sh", "-c", "readlink /d/l"); strings.TrimSpace(got) != "/etc/passwd" {
		t.Errorf("the copied link: %q", got)
	}

	// COPY --from a stage's symlink out of its root: resolved in the stage.
	out, err = buildRaw(t, e, ctxTar(t, df("FROM busybox AS s\nRUN ln -s ../../../../../../../../etc/passwd /leak\nFROM busybox\nCOPY --from=s /leak /copied\n")),
		client.ImageBuildOptions{Tags: []string{"fromleak"}, Remove: true})
	if err != nil {
		t.Fatalf("COPY --from of a symlink: %v\n%s", err, out)
	}
	got := mustDocker(t, e.Host, "run", "--rm", "fromleak", "cat", "/copied")
	if string(hostPasswd) == got || !strings.Contains(got, "nobody:x:65534") {
		t.Errorf("COPY --from a stage's symlink copied %q", got)
	}

	// A destination that an earlier step made a symlink out of the root
	// is followed inside the image, never onto the host.
	hostDir := t.TempDir()
	out, err = buildRaw(t, e, ctxTar(t, df("FROM busybox\nRUN ln -s ../../../../../../.."+hostDir+" /dst\nCOPY payload /dst/\n"), file("payload", "p")),
		client.ImageBuildOptions{Tags: []string{"dstlink"}, Remove: true})
	if err != nil {
		t.Fatalf("COPY through a symlinked destination: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(hostDir); len(entries) != 0 {
		t.Errorf("COPY wrote onto the host: %v", entries)
	}
	mustContain(t, "payload inside the image", mustDocker(t, e.Host, "run", "--rm", "dstlink", "cat", hostDir+"/payload"), "p")

	// A Dockerfile that is a symlink out of the context is not read.
	_, err = buildRaw(t, e, ctxTar(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "Dockerfile", Linkname: "/etc/passwd"}), client.ImageBuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "Cannot locate specified Dockerfile: Dockerfile") {
		t.Errorf("Dockerfile symlinked out of the context: %v", err)
	}

	// What only BuildKit does: dockerd's words.
	for dockerfile, want := range map[string]string{
		"FROM busybox\nRUN --mount=type=cache,target=/c true\n": "the --mount option requires BuildKit",
		"FROM busybox\nCOPY --chmod=755 Dockerfile /\n":         "the --chmod option requires BuildKit",
		"FROM busybox\nADD https://example.com/x /x\n":          "remote sources are not supported",
		"FROM busybox\nBOGUS x\n":                               "unknown instruction: BOGUS",
		"":                                                      "the Dockerfile (Dockerfile) cannot be empty",
		"FROM busybox\nEXPOSE 80/xyz\n":                         "invalid proto: xyz",
		"FROM busybox\nCOPY missing /\n":                        "file not found in build context or excluded by .dockerignore: stat missing: file does not exist",
	} {
		_, err := buildRaw(t, e, ctxTar(t, df(dockerfile)), client.ImageBuildOptions{Remove: true})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Dockerfile %q: %v, want %q", dockerfile, err, want)
		}
	}
	// --target naming no stage.
	if _, err := buildRaw(t, e, ctxTar(t, df("FROM busybox\n")), client.ImageBuildOptions{Target: "nope"}); err == nil ||
		!strings.Contains(err.Error(), `target stage "nope" could not be found`) {
		t.Errorf("unknown target: %v", err)
	}
	// A Dockerfile of 17 MiB (comments, mostly) builds: there is no
	// bound on its size; and a context that is no tar is refused.
	huge := "FROM busybox\n" + strings.Repeat("# "+strings.Repeat("a", 1<<10)+"\n", 17<<10) + "LABEL huge=yes\n"
	if _, err := buildRaw(t, e, ctxTar(t, df(huge)), client.ImageBuildOptions{Tags: []string{"huge"}}); err != nil {
		t.Errorf("a 17 MiB Dockerfile: %v", err)
	} else if got := inspectField(t, e.Host, "huge", "{{.Config.Labels.huge}}"); got != "yes" {
		t.Errorf("the 17 MiB Dockerfile's label: %q", got)
	}
	if _, err := buildRaw(t, e, strings.NewReader(strings.Repeat("not a tar ", 100)), client.ImageBuildOptions{}); err == nil {
		t.Error("a context that is no tar was accepted")
	}
	// Options the classic builder does not have are a 400 naming them.
	if _, err := buildRaw(t, e, ctxTar(t, df("FROM busybox\n")), client.ImageBuildOptions{Squash: true}); err == nil || !strings.Contains(err.Error(), `"squash"`) {
		t.Errorf("squash: %v", err)
	}
	code, _, body := e.do(http.MethodPost, "/build?version=2")
	if code != http.StatusBadRequest || !strings.Contains(body, "BuildKit is not") {
		t.Errorf("version=2: %d %s", code, body)
	}
	if ps := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-aq")); ps != "" {
		t.Errorf("containers left: %q", ps)
	}
}

// TestBuildCancel: a client that goes away mid-build stops the running
// step and removes its container.
func TestBuildCancel(t *testing.T) {
	e := runEngine(t)
	c := mobyClient(t, e.Host)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := c.ImageBuild(ctx, ctxTar(t, file("Dockerfile", "FROM busybox\nRUN sh -c \"echo started; sleep 600\"\n")), client.ImageBuildOptions{Remove: true})
	if err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), `"stream":"started\n"`) {
		n, err := res.Body.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("build stream ended before the step ran: %v\n%s", err, seen.String())
		}
	}
	if ps := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-q")); ps == "" {
		t.Fatalf("no running step container: %s\n%s", mustDocker(t, e.Host, "ps", "-a"), seen.String())
	}
	cancel()
	res.Body.Close()
	waitFor(t, "the cancelled step's container to go", func() bool {
		ps, err := docker(t, e.Host, "ps", "-aq")
		return err == nil && strings.TrimSpace(ps) == ""
	})
}

// TestBuildCompose: docker-compose (Debian's 1.29, docker-py's build
// API) builds a service and runs it.
func TestBuildCompose(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose is not installed (make deps)")
	}
	e := runEngine(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"docker-compose.yml": "version: \"3.8\"\nservices:\n  app:\n    build:\n      context: .\n      args:\n        WHO: compose\n    image: composebuilt:latest\n",
		"Dockerfile":         "FROM busybox\nARG WHO\nRUN sh -c \"echo built-by-$WHO > /who\"\nCMD [\"cat\", \"/who\"]\n",
	})
	out, err := runCompose(t, dir, e.Host, t.TempDir(), "docker-compose", "build")
	if err != nil {
		t.Fatalf("docker-compose build: %v\n%s", err, out)
	}
	mustContain(t, "compose build", out, "Successfully built", "Successfully tagged composebuilt:latest")
	out, err = runCompose(t, dir, e.Host, t.TempDir(), "docker-compose", "up", "--abort-on-container-exit")
	if err != nil {
		t.Fatalf("docker-compose run: %v\n%s", err, out)
	}
	mustContain(t, "compose run", out, "built-by-compose")
	runCompose(t, dir, e.Host, t.TempDir(), "docker-compose", "down")
}

// TestBuildInstructions: the rest of the classic builder's instructions
// and options, each checked in the image it made.
func TestBuildInstructions(t *testing.T) {
	e := runEngine(t)
	dir := t.TempDir()
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	zw.Write(ctxTar(t, &tar.Header{Typeflag: tar.TypeDir, Name: "pkg/", Mode: 0o755}, file("pkg/inside.txt", "unpacked\n")).Bytes())
	zw.Close()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n", "c.md": "c\n", "pkg.tar.gz": tgz.String(),
		"Dockerfile.base": "FROM busybox\nONBUILD RUN sh -c \"echo triggered > /onbuild\"\n",
		"Dockerfile": `ARG BASE=busybox
FROM $BASE
SHELL ["/bin/sh", "-ec"]
COPY *.txt /globbed/
COPY --chown=nobody:nogroup a.txt /owned/a.txt
ADD pkg.tar.gz /unpacked/
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGUSR1
USER nobody
RUN id -u > /tmp/uid
USER root
RUN cat /etc/hosts > /hosts; ls /sys/class/net > /nets; df -k /dev/shm | tail -1 > /shm
`,
	})
	out, err := buildCLI(t, e.Host, dir, "", "build", "-f", "Dockerfile.base", "-t", "onbuildbase", ".")
	if err != nil {
		t.Fatalf("base build: %v\n%s", err, out)
	}
	out, err = buildCLI(t, e.Host, dir, "", "build", "--build-arg", "BASE=onbuildbase", "--network", "none", "--add-host", "db.example:10.9.8.7",
		"--shm-size", "96m", "-t", "instr", ".")
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	mustContain(t, "build output", out, "# Executing 1 build trigger")
	got := mustDocker(t, e.Host, "run", "--rm", "instr", "sh", "-c",
		"cat /onbuild; ls /globbed | tr '\\n' ' '; stat -c %u:%g /owned/a.txt; cat /unpacked/pkg/inside.txt /tmp/uid /hosts /nets /shm")
	mustContain(t, "image content", got, "triggered", "a.txt b.txt ", "65534:65534", "unpacked", "65534\n", "10.9.8.7\tdb.example", "lo\n", " 98304 ")
	if strings.Contains(got, "c.md") || strings.Contains(got, "eth0") {
		t.Errorf("the glob took c.md, or --network none had eth0:\n%s", got)
	}
	insp := mustDocker(t, e.Host, "image", "inspect", "-f", "{{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{.Config.StopSignal}} {{json .Config.Shell}} {{json .Config.OnBuild}}", "instr")
	mustContain(t, "image config", insp, `"53/udp":{}`, `"8080/tcp":{}`, `{"/data":{}}`, "SIGUSR1", `["/bin/sh","-ec"]`, "null")

	// FROM scratch with a binary copied from another image.
	writeFiles(t, dir, map[string]string{"Dockerfile.scratch": "FROM scratch\nCOPY --from=busybox /bin/busybox /bin/busybox\nCMD [\"/bin/busybox\", \"echo\", \"from-scratch\"]\n"})
	if out, err := buildCLI(t, e.Host, dir, "", "build", "-f", "Dockerfile.scratch", "-t", "scratchy", "."); err != nil {
		t.Fatalf("scratch build: %v\n%s", err, out)
	}
	mustContain(t, "scratch image", mustDocker(t, e.Host, "run", "--rm", "scratchy"), "from-scratch")
	if n := mustDocker(t, e.Host, "image", "inspect", "-f", "{{len .RootFS.Layers}}", "scratchy"); strings.TrimSpace(n) != "1" {
		t.Errorf("scratch image layers: %s", n)
	}

	// A gzip context through the Go client, and the events of a build.
	since := time.Now().Add(-time.Second).Unix()
	var gz bytes.Buffer
	zw = gzip.NewWriter(&gz)
	zw.Write(ctxTar(t, file("Dockerfile", "FROM busybox\nRUN sh -c \"echo gz > /gz\"\n")).Bytes())
	zw.Close()
	if out, err := buildRaw(t, e, &gz, client.ImageBuildOptions{Tags: []string{"gzipped"}, Remove: true}); err != nil {
		t.Fatalf("gzip context: %v\n%s", err, out)
	}
	// The CLI sends --until in whole seconds: what happened in the
	// current second shows once it is over.
	waitFor(t, "the build's events", func() bool {
		ev := mustDocker(t, e.Host, "events", "--since", strconv.FormatInt(since, 10), "--until", "0s", "--format", "{{.Type}} {{.Action}}")
		for _, want := range []string{"container create", "container start", "container die", "container destroy", "image tag"} {
			if !strings.Contains(ev, want) {
				return false
			}
		}
		return true
	})

	// build prune removes the step images, not the tagged ones.
	before := len(strings.Fields(mustDocker(t, e.Host, "images", "-aq")))
	out = mustDocker(t, e.Host, "builder", "prune", "-f")
	mustContain(t, "builder prune", out, "Total reclaimed space")
	after := len(strings.Fields(mustDocker(t, e.Host, "images", "-aq")))
	if after >= before {
		t.Errorf("builder prune removed nothing: %d images before, %d after", before, after)
	}
	mustContain(t, "a tagged image after the prune", mustDocker(t, e.Host, "run", "--rm", "gzipped", "cat", "/gz"), "gz")

	// --cache-from: with the step images pruned, the tagged image's
	// history is the cache.
	out, err = buildCLI(t, e.Host, dir, "", "build", "--cache-from", "instr", "--build-arg", "BASE=onbuildbase", "--network", "none",
		"--add-host", "db.example:10.9.8.7", "--shm-size", "96m", "-t", "instr2", ".")
	if err != nil {
		t.Fatalf("--cache-from build: %v\n%s", err, out)
	}
	if n := strings.Count(out, "Using cache"); n < 10 {
		t.Errorf("--cache-from: %d steps from the cache:\n%s", n, out)
	}
}

// TestBuildRegistryAuth: FROM an image in a registry that wants
// credentials pulls with X-Registry-Config (the CLI sends its logins),
// and --pull pulls again though the image is there.
func TestBuildRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := testimage.Htpasswd(htpasswd, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	reg, err := testimage.StartRegistry(context.Background(), dir, htpasswd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(context.Background(), bb, reg.Ref("private/base:latest"), &authn.Basic{Username: "alice", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	e := startEngined(t)
	cfg := t.TempDir()
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + reg.Ref("private/base") + "\nRUN sh -c \"echo from-private > /p\"\n"})
	build := func(args ...string) (string, error) {
		cmd := exec.Command(dockerCLI, append([]string{"--config", cfg, "-H", e.Host}, args...)...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := build("build", "-t", "priv", "."); err == nil || !strings.Contains(out, "denied") {
		t.Errorf("build without credentials: %v\n%s", err, out)
	}
	if out, err := dockerCfg(t, cfg, e.Host, "login", "-u", "alice", "-p", "s3cret", reg.Addr); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	out, err := build("build", "-t", "priv", ".")
	if err != nil {
		t.Fatalf("build with credentials: %v\n%s", err, out)
	}
	mustContain(t, "build output", out, "Pulling from private/base", "Successfully tagged priv:latest")
	mustContain(t, "built image", mustDocker(t, e.Host, "run", "--rm", "priv", "cat", "/p"), "from-private")
	out, err = build("build", "--pull", "-t", "priv", ".")
	if err != nil {
		t.Fatalf("build --pull: %v\n%s", err, out)
	}
	mustContain(t, "build --pull", out, "Pulling from private/base", "Using cache")
}

// TestBuildManySteps: a long Dockerfile builds, and builds again from the
// cache.
func TestBuildManySteps(t *testing.T) {
	e := runEngine(t)
	var df strings.Builder
	df.WriteString("FROM busybox\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&df, "ENV V%d=%d\n", i, i)
	}
	df.WriteString("RUN sh -c \"echo $V299 > /last\"\n")
	for _, want := range []int{0, 301} {
		start := time.Now()
		out, err := buildRaw(t, e, ctxTar(t, file("Dockerfile", df.String())), client.ImageBuildOptions{Tags: []string{"many"}, Remove: true})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		if n := strings.Count(out, "Using cache"); n != want {
			t.Errorf("%d steps from the cache, want %d", n, want)
		}
		t.Logf("302 steps, %d cached: %v", want, time.Since(start))
	}
	mustContain(t, "last step", mustDocker(t, e.Host, "run", "--rm", "many", "cat", "/last"), "299")
}

// TestBuildNetwork: RUN on a user-defined network resolves the names of
// its containers (docker-py's network_mode test); with none it has no
// network and a RUN that needs one fails with its code.
func TestBuildNetwork(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "network", "create", "bnet")
	mustDocker(t, e.Host, "run", "-d", "--name", "dbsrv", "--network", "bnet", "--network-alias", "dbalias", "busybox", "sh", "-c", "sleep 600")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN sh -c \"nslookup dbalias > /resolved\"\n"})
	out, err := buildCLI(t, e.Host, dir, "", "build", "--network", "bnet", "-t", "netbuilt", ".")
	if err != nil {
		t.Fatalf("build on a user network: %v\n%s", err, out)
	}
	mustContain(t, "resolved alias", mustDocker(t, e.Host, "run", "--rm", "netbuilt", "cat", "/resolved"), "Address")
	out, err = buildCLI(t, e.Host, dir, "", "build", "--no-cache", "--network", "none", ".")
	if code := exitCode(err); code != 1 || !strings.Contains(out, "returned a non-zero code: 1") {
		t.Errorf("build with --network none: exit %d\n%s", code, out)
	}
	out, err = buildCLI(t, e.Host, dir, "", "build", "--no-cache", "--network", "nosuchnet", ".")
	if err == nil || !strings.Contains(out, "nosuchnet") {
		t.Errorf("build on a missing network: %v\n%s", err, out)
	}
}

// TestBuildPruneRace: build prune and a second build running while a
// build goes on take nothing it needs.
func TestBuildPruneRace(t *testing.T) {
	e := runEngine(t)
	var df strings.Builder
	df.WriteString("FROM busybox\n")
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&df, "ENV STEP=%d\nRUN sh -c \"echo $STEP >> /steps\"\n", i)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": df.String()})
	done := make(chan struct{})
	pruned := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				pruned <- n
				return
			default:
			}
			if _, err := docker(t, e.Host, "builder", "prune", "-f"); err == nil {
				n++
			}
		}
	}()
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			out, err := buildCLI(t, e.Host, dir, "", "build", "-t", fmt.Sprintf("race%d", i), ".")
			if err != nil {
				err = fmt.Errorf("%w\n%s", err, out)
			}
			results <- err
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-results; err != nil {
			t.Errorf("build beside prunes: %v", err)
		}
	}
	close(done)
	t.Logf("%d prunes during the builds", <-pruned)
	for i := 0; i < 2; i++ {
		got := mustDocker(t, e.Host, "run", "--rm", fmt.Sprintf("race%d", i), "sh", "-c", "wc -l < /steps")
		if strings.TrimSpace(got) != "15" {
			t.Errorf("race%d has %q steps", i, got)
		}
	}
}

// dockerPyBuild is docker-py's build API (APIClient.build), as compose
// and Python tools drive it: a stream of decoded messages, the error of
// a failed build in it.
const dockerPyBuild = `
import docker, io, json, os, sys
c = docker.APIClient(base_url=os.environ["DOCKER_HOST"])
def build(**kw):
    msgs = list(c.build(decode=True, **kw))
    text = "".join(m.get("stream", "") for m in msgs)
    err = [m for m in msgs if "error" in m]
    return text, err
df = b"FROM busybox\nARG WHO\nRUN sh -c 'echo $WHO > /who'\nRUN sh -c 'cat /etc/hosts > /hosts'\nLABEL from=docker-py\n"
text, err = build(fileobj=io.BytesIO(df), tag="pybuilt:1", buildargs={"WHO": "py"}, extra_hosts={"extra.example": "10.1.2.3"},
                  labels={"x": "y"}, shmsize=64*1024*1024, rm=True)
assert not err, err
assert "Successfully tagged pybuilt:1" in text, text
text, err = build(fileobj=io.BytesIO(df), tag="pybuilt:2", buildargs={"WHO": "py"}, extra_hosts={"extra.example": "10.1.2.3"},
                  labels={"x": "y"}, cache_from=["pybuilt:1"])
assert text.count("Using cache") == 5, text
text, err = build(fileobj=io.BytesIO(b"FROM busybox\nRUN sh -c 'exit 7'\n"), rm=True, forcerm=True)
assert err and err[0]["errorDetail"]["code"] == 7, err
print("docker-py ok")
`

// TestBuildDockerPy: docker-py's APIClient.build (fileobj contexts,
// buildargs, extra_hosts, labels, shmsize, cache_from, a failed build's
// error code).
func TestBuildDockerPy(t *testing.T) {
	if err := exec.Command("python3", "-c", "import docker").Run(); err != nil {
		t.Skip("docker-py (python3-docker) is not installed")
	}
	e := runEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-c", dockerPyBuild)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "docker-py ok") {
		t.Fatalf("docker-py build: %v\n%s", err, out)
	}
	got := mustDocker(t, e.Host, "run", "--rm", "pybuilt:2", "sh", "-c", "cat /who /hosts")
	mustContain(t, "docker-py image", got, "py", "10.1.2.3\textra.example")
}

// TestBuildResources: a RUN gets the build's resource limits, as a
// container run with the same flags does.
func TestBuildResources(t *testing.T) {
	e := runEngine(t)
	probe := "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; ulimit -n"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN sh -c '(" + probe + ") > /limits'\n"})
	out, err := buildCLI(t, e.Host, dir, "", "build", "--memory", "64m", "--memory-swap", "128m", "--ulimit", "nofile=1024:2048", "-t", "limited", ".")
	if err != nil {
		t.Fatalf("build with limits: %v\n%s", err, out)
	}
	got := mustDocker(t, e.Host, "run", "--rm", "limited", "cat", "/limits")
	want := mustDocker(t, e.Host, "run", "--rm", "--memory", "64m", "--memory-swap", "128m", "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", probe)
	if got != want || !strings.Contains(got, "1024") {
		t.Errorf("limits in RUN %q, in docker run %q", got, want)
	}
	if out, err := buildCLI(t, e.Host, dir, "", "build", "--no-cache", "--memory", "1k", "."); err == nil || !strings.Contains(out, "Minimum memory limit allowed is 6MB") {
		t.Errorf("build with a memory limit below the minimum: %v\n%s", err, out)
	}
}
