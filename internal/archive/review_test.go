package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Tar records a file it has seen as a hard link by its inode. Two trees
// mounted under the walked directory (a bind source with mounts below it)
// number their inodes independently, so the same number on two devices
// is two files: the second must be archived with its own content, not as
// a link to the first.
func TestTarHardLinksAcrossDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount tmpfs")
	}
	root := t.TempDir()
	for _, m := range []string{"m1", "m2"} {
		d := filepath.Join(root, m)
		os.Mkdir(d, 0o755)
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
			t.Skipf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(d, unix.MNT_DETACH) })
		// Same creation order in two fresh tmpfs: same inode numbers.
		f := filepath.Join(d, "f")
		if err := os.WriteFile(f, []byte("content of "+m), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(f, filepath.Join(d, "g")); err != nil {
			t.Fatal(err)
		}
	}
	var s1, s2 syscall.Stat_t
	syscall.Stat(filepath.Join(root, "m1", "f"), &s1)
	syscall.Stat(filepath.Join(root, "m2", "f"), &s2)
	if s1.Ino != s2.Ino || s1.Dev == s2.Dev {
		t.Skipf("tmpfs inodes differ (%d, %d): cannot build the collision", s1.Ino, s2.Ino)
	}
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if err := r.Tar(context.Background(), &buf, "/", ""); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "m2/f" {
			if hdr.Typeflag == tar.TypeLink {
				t.Fatalf("m2/f (another device) archived as a hard link to %s", hdr.Linkname)
			}
			b, _ := io.ReadAll(tr)
			if string(b) != "content of m2" {
				t.Fatalf("m2/f archived with content %q", b)
			}
			return
		}
	}
	t.Fatal("m2/f not in the archive")
}

// An archive's "." entry says nothing about the directory it is
// extracted into: docker cp (and dockerd's Untar) leave the destination's
// owner, mode and xattrs alone. A tarball made with `tar -C dir -c .`
// must not turn a container's /tmp (or a bind-mounted host directory)
// into the archived directory's mode and owner.
func TestApplyDotLeavesDestination(t *testing.T) {
	root := t.TempDir()
	dest := filepath.Join(root, "tmp")
	os.Mkdir(dest, 0o755)
	unix.Chmod(dest, 0o1777)
	for _, name := range []string{".", "./", "/", "../"} {
		in := tarOf(t, entry{name: name, typ: tar.TypeDir})
		r, err := OpenRoot(root)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Apply(context.Background(), "/tmp", in, Options{Owner: &Owner{UID: 1234, GID: 1234}})
		r.Close()
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		var st syscall.Stat_t
		syscall.Stat(dest, &st)
		if st.Mode&0o7777 != 0o1777 || st.Uid != uint32(os.Geteuid()) {
			t.Fatalf("entry %q changed the destination: mode %o uid %d", name, st.Mode&0o7777, st.Uid)
		}
	}
}

// "" names the root itself, as "/" and "." do, for every lookup: docker
// cp into the top of a bind mount asks for the bind source's "".
func TestRootEmptyPathIsRoot(t *testing.T) {
	r, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"", "/", ".", "./"} {
		if fi, err := r.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("Stat(%q): %v, %v", p, fi, err)
		}
		if fi, err := r.Lstat(p); err != nil || !fi.IsDir() {
			t.Errorf("Lstat(%q): %v, %v", p, fi, err)
		}
	}
}
