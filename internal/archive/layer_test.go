package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTarLayer: an overlay upper directory becomes a layer with Docker's
// whiteouts, hard links kept, skipped names left out.
func TestTarLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mknod, trusted xattrs)")
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc", "new"), []byte("data"), 0o644))
	must(os.Link(filepath.Join(dir, "etc", "new"), filepath.Join(dir, "etc", "link")))
	must(unix.Mknod(filepath.Join(dir, "etc", "gone"), unix.S_IFCHR, 0))
	must(os.Mkdir(filepath.Join(dir, "opq"), 0o755))
	must(unix.Setxattr(filepath.Join(dir, "opq"), "trusted.overlay.opaque", []byte("y"), 0))
	must(os.MkdirAll(filepath.Join(dir, "proc", "x"), 0o755))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "sym")))
	r, err := OpenRoot(dir)
	must(err)
	defer r.Close()
	var buf bytes.Buffer
	n, err := r.TarLayer(context.Background(), &buf, func(name string, _ os.FileInfo) bool { return name == "/proc" })
	must(err)
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		names = append(names, h.Name)
		switch h.Name {
		case "etc/new":
			// The walk meets etc/link first: etc/new is its hard link.
			if h.Typeflag != tar.TypeLink || h.Linkname != "etc/link" {
				t.Errorf("hard link: %+v", h)
			}
		case "sym":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" {
				t.Errorf("symlink: %+v", h)
			}
		}
	}
	want := []string{"etc/", "etc/.wh.gone", "etc/link", "etc/new", "opq/", "opq/.wh..wh..opq", "sym"}
	if !slices.Equal(names, want) || n != len(want) {
		t.Errorf("layer entries %v (%d), want %v", names, n, want)
	}
}
