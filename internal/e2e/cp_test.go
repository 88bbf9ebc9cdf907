package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// docker cp both ways, into running and stopped containers, and export;
// paths resolve inside the container, whatever its symlinks say.
func TestDockerCp(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	mustDocker(t, h, "run", "-d", "--name", "box", "busybox", "sh", "-c", "ln -s / /escape; sleep 3600")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello\n"), 0o640)
	os.WriteFile(filepath.Join(src, "sub", "b.txt"), []byte("deep\n"), 0o644)
	os.Symlink("a.txt", filepath.Join(src, "link"))
	os.Chown(filepath.Join(src, "a.txt"), 1234, 1234)

	mustDocker(t, h, "cp", src, "box:/tmp/")
	got := mustDocker(t, h, "exec", "box", "sh", "-c", "cat /tmp/src/a.txt /tmp/src/sub/b.txt; readlink /tmp/src/link; stat -c '%u:%g %a' /tmp/src/a.txt")
	if got != "hello\ndeep\na.txt\n0:0 640\n" {
		t.Errorf("copied in: %q", got)
	}
	mustDocker(t, h, "cp", "-a", filepath.Join(src, "a.txt"), "box:/kept.txt")
	if got := mustDocker(t, h, "exec", "box", "stat", "-c", "%u:%g", "/kept.txt"); got != "1234:1234\n" {
		t.Errorf("cp -a owner: %q", got)
	}

	out := t.TempDir()
	mustDocker(t, h, "cp", "box:/tmp/src", out)
	if b, _ := os.ReadFile(filepath.Join(out, "src", "sub", "b.txt")); string(b) != "deep\n" {
		t.Errorf("copied out: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(out, "src", "link")); l != "a.txt" {
		t.Errorf("symlink copied out as %q", l)
	}

	// /escape is a symlink to / inside the container: through it, cp
	// reaches the container's /tmp, never the host's.
	marker := "engined-cp-" + filepath.Base(t.TempDir())
	mustDocker(t, h, "cp", filepath.Join(src, "a.txt"), "box:/escape/tmp/"+marker)
	if _, err := os.Stat("/tmp/" + marker); err == nil {
		os.Remove("/tmp/" + marker)
		t.Fatal("docker cp through a container symlink wrote on the host")
	}
	if got := mustDocker(t, h, "exec", "box", "cat", "/tmp/"+marker); got != "hello\n" {
		t.Errorf("cp through the symlink: %q", got)
	}
	mustDocker(t, h, "cp", "box:/escape/etc/hostname", filepath.Join(out, "hostname"))
	if b, _ := os.ReadFile(filepath.Join(out, "hostname")); !strings.HasPrefix(string(b), inspectField(t, h, "box", "{{.Config.Hostname}}")) {
		t.Errorf("cp out through the symlink read %q, not the container's hostname", b)
	}
	if st := inspectField(t, h, "box", "{{.State.Status}}"); st != "running" {
		t.Errorf("container after cp: %q (it is paused only while copying)", st)
	}

	// Errors.
	if o, err := docker(t, h, "cp", "box:/nope", out); err == nil || !strings.Contains(o, "Could not find the file /nope in container box") {
		t.Errorf("cp of a missing path: %v %q", err, o)
	}

	// A stopped container: its files are there, and it stays stopped.
	mustDocker(t, h, "stop", "-t", "0", "box")
	mustDocker(t, h, "cp", filepath.Join(src, "sub", "b.txt"), "box:/stopped.txt")
	mustDocker(t, h, "cp", "box:/stopped.txt", filepath.Join(out, "stopped.txt"))
	if b, _ := os.ReadFile(filepath.Join(out, "stopped.txt")); string(b) != "deep\n" {
		t.Errorf("round trip through a stopped container: %q", b)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(inspectField(t, h, "box", "{{.Id}}"))) {
		t.Error("a stopped container's rootfs stays mounted after cp")
	}

	// export holds the image's files and what was copied in.
	names := tarNames(t, exportOf(t, h, "box"))
	for _, want := range []string{"bin/busybox", "stopped.txt", "tmp/src/sub/b.txt"} {
		if !names[want] {
			t.Errorf("export lacks %s", want)
		}
	}

	// The Go client's stat.
	st, err := mobyClient(t, h).ContainerStatPath(context.Background(), "box", client.ContainerStatPathOptions{Path: "/tmp/src/a.txt"})
	if err != nil || st.Stat.Name != "a.txt" || st.Stat.Size != 6 || st.Stat.Mode.Perm() != 0o640 {
		t.Errorf("stat path: %+v %v", st, err)
	}
}

func exportOf(t *testing.T, host, name string) []byte {
	t.Helper()
	s, err := dockerSplit(t, host, "export", name)
	if err != nil {
		t.Fatalf("docker export: %v %s", err, s.stderr)
	}
	return []byte(s.stdout)
}

func tarNames(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read export: %v", err)
		}
		names[strings.TrimSuffix(hdr.Name, "/")] = true
	}
}

// docker diff: added, changed and deleted names, and nothing for the
// mount points the runtime makes.
func TestDockerDiff(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "--name", "changer", "busybox", "sh", "-c", "echo x > /new.txt; echo y >> /etc/passwd; rm /bin/cat; mkdir -p /tmp/d")
	got := mustDocker(t, e.Host, "diff", "changer")
	want := "C /bin\nD /bin/cat\nC /etc\nC /etc/passwd\nA /new.txt\nC /tmp\nA /tmp/d\n"
	if got != want {
		t.Errorf("docker diff:\n%s\nwant:\n%s", got, want)
	}
	mustDocker(t, e.Host, "run", "--name", "quiet", "busybox", "true")
	res, err := mobyClient(t, e.Host).ContainerDiff(context.Background(), "quiet", client.ContainerDiffOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("diff of a container that changed nothing: %+v %v", res, err)
	}
}
