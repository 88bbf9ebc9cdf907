package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type entry struct {
	name, body, link string
	typ              byte
}

func tarOf(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &buf
}

// snapshotTree lists every path under dir.
func snapshotTree(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		out = append(out, p)
		return nil
	})
	return out
}

func TestApplyNeverWritesOutside(t *testing.T) {
	sandbox := t.TempDir()
	root := filepath.Join(sandbox, "a", "b", "root")
	outside := filepath.Join(sandbox, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "victim"), []byte("original"), 0o644)
	before := snapshotTree(t, sandbox)

	layer := tarOf(t,
		entry{name: "../../../outside/victim", body: "pwned-dotdot", typ: tar.TypeReg},
		entry{name: "/abs", body: "abs", typ: tar.TypeReg},
		entry{name: "uproot", link: "/", typ: tar.TypeSymlink},
		entry{name: "uproot/etc/", typ: tar.TypeDir},
		entry{name: "uproot/etc/victim", body: "pwned-abs-symlink", typ: tar.TypeReg},
		entry{name: "rellink", link: "../../../", typ: tar.TypeSymlink},
		entry{name: "rellink/outside/", typ: tar.TypeDir},
		entry{name: "rellink/outside/victim", body: "pwned-rel-symlink", typ: tar.TypeReg},
		entry{name: "rellink/newdir/", typ: tar.TypeDir},
	)
	if _, err := Apply(context.Background(), root, layer, Options{Overlay: true}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// A symlink to a host path that does not exist in the root is not
	// created through: the entry under it is an error.
	dangling := tarOf(t,
		entry{name: "abslink", link: outside, typ: tar.TypeSymlink},
		entry{name: "abslink/victim", body: "pwned-abs-symlink", typ: tar.TypeReg},
	)
	if _, err := Apply(context.Background(), root, dangling, Options{Overlay: true}); err == nil || !strings.Contains(err.Error(), "abslink/victim") {
		t.Errorf("entry under a dangling symlink: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "original" {
		t.Fatalf("file outside the root was overwritten: %q", b)
	}
	rootPrefix := root + string(filepath.Separator)
	after := snapshotTree(t, sandbox)
	known := map[string]bool{}
	for _, p := range before {
		known[p] = true
	}
	for _, p := range after {
		if !known[p] && !strings.HasPrefix(p, rootPrefix) {
			t.Errorf("created outside the root: %s", p)
		}
	}
	// The escaping entries landed inside the root instead.
	for path, want := range map[string]string{"outside/victim": "pwned-rel-symlink", "abs": "abs", "etc/victim": "pwned-abs-symlink"} {
		if b, err := os.ReadFile(filepath.Join(root, path)); err != nil || string(b) != want {
			t.Errorf("%s inside root = %q, %v", path, b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "newdir")); err != nil || !fi.IsDir() {
		t.Errorf("rellink/newdir inside root: %v", err)
	}

	// A hard link climbing out resolves inside the root: to the copy there,
	// or to nothing.
	hard := tarOf(t, entry{name: "hl", link: "../../../outside/victim", typ: tar.TypeLink})
	if _, err := Apply(context.Background(), root, hard, Options{}); err != nil {
		t.Errorf("hard link to root/outside/victim: %v", err)
	}
	missing := tarOf(t, entry{name: "hl0", link: "../../../nonexistent", typ: tar.TypeLink})
	if _, err := Apply(context.Background(), root, missing, Options{}); err == nil {
		t.Error("hard link to a missing target was accepted")
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(outside, "victim"), &st)
	if st.Nlink != 1 {
		t.Errorf("outside file gained links: nlink %d", st.Nlink)
	}
	// A hard link through a symlinked parent resolves inside the root.
	via := tarOf(t, entry{name: "hl2", link: "uproot/etc/victim", typ: tar.TypeLink})
	if _, err := Apply(context.Background(), root, via, Options{}); err != nil {
		t.Fatalf("hard link inside root: %v", err)
	}
	unix.Stat(filepath.Join(outside, "victim"), &st)
	if st.Nlink != 1 {
		t.Errorf("hard link through a symlink reached outside: nlink %d", st.Nlink)
	}
}

func TestApplyWhiteouts(t *testing.T) {
	root := t.TempDir()
	layer := tarOf(t,
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/.wh..wh..opq", typ: tar.TypeReg},
		entry{name: "bin/.wh.sh", typ: tar.TypeReg},
		entry{name: "etc/hostname", body: "x", typ: tar.TypeReg},
	)
	if _, err := Apply(context.Background(), root, layer, Options{Overlay: true}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "bin", "sh"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout for bin/sh: mode %o rdev %d err %v", st.Mode, st.Rdev, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(root, "etc"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr on etc: %q %v", buf[:n], err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", ".wh..wh..opq")); !os.IsNotExist(err) {
		t.Error("opaque marker written as a file")
	}
	// Outside a layer, whiteouts are refused.
	if _, err := Apply(context.Background(), t.TempDir(), tarOf(t, entry{name: ".wh.x", typ: tar.TypeReg}), Options{}); err == nil {
		t.Error("whiteout accepted without Overlay")
	}
}

func TestApplyModesAndLinks(t *testing.T) {
	root := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 4, Uid: 1, Gid: 2})
	tw.Write([]byte("elf!"))
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	tw.WriteHeader(&tar.Header{Name: "bin/ls", Typeflag: tar.TypeLink, Linkname: "bin/busybox"})
	tw.Close()
	n, err := Apply(context.Background(), root, &buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("size %d, want 4", n)
	}
	fi, err := os.Stat(filepath.Join(root, "bin", "busybox"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("busybox mode %v %v", fi.Mode(), err)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(root, "bin", "busybox"), &st)
	if st.Uid != 1 || st.Gid != 2 || st.Nlink != 2 {
		t.Errorf("busybox uid %d gid %d nlink %d", st.Uid, st.Gid, st.Nlink)
	}
	if l, _ := os.Readlink(filepath.Join(root, "bin", "sh")); l != "busybox" {
		t.Errorf("symlink %q", l)
	}
}
