package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// docker cp and bind mounts: a read-only bind is read-only for docker cp
// too (dockerd: "mounted volume is marked read-only"), also when the
// container reaches it through a symlink of its own; a path under nested
// binds goes to the deepest one, the one the container sees; a bind of a
// single file can be copied out.
func TestHostileCpBinds(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	s := newSentinel(t)
	before := s.hash(t)
	inner := t.TempDir()
	file := filepath.Join(t.TempDir(), "conf")
	os.WriteFile(file, []byte("bound file\n"), 0o644)
	mustDocker(t, h, "run", "-d", "--name", "box",
		"-v", s.dir+":/data:ro", "-v", inner+":/data/sub", "-v", file+":/etc/conf.ro:ro",
		"busybox", "sh", "-c", "ln -s /data /tmp/d; sleep 3600")
	waitExec(t, h, "box", "test -L /tmp/d")

	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("payload\n"), 0o644)
	for _, d := range []string{"/data", "/data/", "/data/new", "/tmp/d", "/tmp/d/", "/etc/conf.ro"} {
		out, err := docker(t, h, "cp", f, "box:"+d)
		s.unchanged(t, before, "docker cp ./f box:"+d+" (read-only bind)")
		if err == nil {
			t.Errorf("docker cp ./f box:%s into a read-only bind: succeeded", d)
		} else if d != "/etc/conf.ro" && !strings.Contains(out, "read-only") {
			t.Errorf("docker cp ./f box:%s: %s, want a read-only error", d, out)
		}
	}
	if got := mustDocker(t, h, "exec", "box", "cat", "/etc/conf.ro"); got != "bound file\n" {
		t.Errorf("bound file changed: %q", got)
	}

	// /data/sub is the inner (rw) bind, mounted over the sentinel's sub.
	mustDocker(t, h, "cp", f, "box:/data/sub/new")
	s.unchanged(t, before, "docker cp ./f box:/data/sub/new (nested rw bind)")
	if b, err := os.ReadFile(filepath.Join(inner, "new")); err != nil || string(b) != "payload\n" {
		t.Errorf("docker cp into the nested bind: inner/new = %q, %v", b, err)
	}
	if got := mustDocker(t, h, "exec", "box", "cat", "/data/sub/new"); got != "payload\n" {
		t.Errorf("container's /data/sub/new = %q", got)
	}

	out := t.TempDir()
	mustDocker(t, h, "cp", "box:/etc/conf.ro", out)
	if b, err := os.ReadFile(filepath.Join(out, "conf.ro")); err != nil || string(b) != "bound file\n" {
		t.Errorf("docker cp box:/etc/conf.ro (a file bind): %q, %v", b, err)
	}
	mustDocker(t, h, "cp", "box:/data/sub/new", out)
	if b, _ := os.ReadFile(filepath.Join(out, "new")); string(b) != "payload\n" {
		t.Errorf("docker cp box:/data/sub/new: %q", b)
	}

	// An archive that replaces a mount point of the running container
	// (or a directory holding one) is refused: unlinking it from the
	// host's view of the rootfs unmounts it in the container (its /proc
	// with the masked paths, a read-only bind, /etc/hosts).
	c := mobyClient(t, h)
	ctx := context.Background()
	for _, tc := range []struct{ dest, name string }{
		{"/", "proc"}, {"/", "sys"}, {"/", "dev"}, {"/", "data"}, {"/", "etc"}, {"/etc", "hosts"}, {"/etc", "conf.ro"},
	} {
		data := tarBytes(t, tar.Header{Name: tc.name, Typeflag: tar.TypeSymlink, Linkname: "/nowhere"})
		_, err := c.CopyToContainer(ctx, "box", client.CopyToContainerOptions{DestinationPath: tc.dest, Content: bytes.NewReader(data), AllowOverwriteDirWithFile: true})
		if err == nil {
			t.Errorf("an archive replacing %s in %s: accepted", tc.name, tc.dest)
		}
	}
	mounts := mustDocker(t, h, "exec", "box", "cat", "/proc/self/mountinfo")
	for _, m := range []string{" /proc ", " /sys ", " /dev ", " /data ", " /etc/hosts ", " /etc/conf.ro "} {
		if !strings.Contains(mounts, m) {
			t.Errorf("docker cp removed the container's mount at%s:\n%s", m, mounts)
		}
	}
	s.unchanged(t, before, "archives replacing mount points")
}
