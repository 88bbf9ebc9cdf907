package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tar then Apply copies a tree: files, a symlink left as a link, a hard
// link kept as one; Owner and NoOverwriteDirNonDir apply.
func TestTarApplyRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d", "e"), 0o750)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("data"), 0o600)
	os.Link(filepath.Join(src, "d", "f"), filepath.Join(src, "d", "hard"))
	os.Symlink("/etc/passwd", filepath.Join(src, "d", "abs"))
	os.Chown(filepath.Join(src, "d", "f"), 1000, 1000)

	var buf bytes.Buffer
	if err := tarOfRoot(t, &buf, src, "/d", "d"); err != nil {
		t.Fatal(err)
	}
	types := map[string]byte{}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types[hdr.Name] = hdr.Typeflag
	}
	if types["d/"] != tar.TypeDir || types["d/e/"] != tar.TypeDir || types["d/abs"] != tar.TypeSymlink ||
		(types["d/f"] == tar.TypeLink) == (types["d/hard"] == tar.TypeLink) {
		t.Errorf("entries: %v", types)
	}

	dst := t.TempDir()
	if _, err := Apply(context.Background(), dst, bytes.NewReader(buf.Bytes()), Options{Owner: &Owner{UID: 7, GID: 8}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "d", "hard")); string(b) != "data" {
		t.Errorf("hard link content %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "d", "abs")); l != "/etc/passwd" {
		t.Errorf("symlink %q", l)
	}
	var st = statOf(t, filepath.Join(dst, "d", "f"))
	if st.uid != 7 || st.gid != 8 || st.mode != 0o600 {
		t.Errorf("owner and mode: %+v", st)
	}

	// A directory where the archive has a file: refused when asked.
	os.MkdirAll(filepath.Join(dst, "x", "f"), 0o755)
	var fileTar bytes.Buffer
	tw := tar.NewWriter(&fileTar)
	tw.WriteHeader(&tar.Header{Name: "x/f", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("z"))
	tw.Close()
	_, err := Apply(context.Background(), dst, bytes.NewReader(fileTar.Bytes()), Options{NoOverwriteDirNonDir: true})
	if err == nil || !strings.Contains(err.Error(), "cannot overwrite a directory") {
		t.Errorf("overwrite a directory with a file: %v", err)
	}
}

// Resolve keeps paths inside the root through symlinks, and leaves the
// last component unfollowed.
func TestResolveStaysInside(t *testing.T) {
	root := t.TempDir()
	os.Symlink("/", filepath.Join(root, "up"))
	os.Symlink("../../../etc", filepath.Join(root, "rel"))
	for p, want := range map[string]string{
		"/up/etc/passwd": filepath.Join(root, "etc", "passwd"),
		"/rel/passwd":    filepath.Join(root, "etc", "passwd"),
		"/../../x":       filepath.Join(root, "x"),
		"/up":            filepath.Join(root, "up"),
		"/":              root,
	} {
		got, err := Resolve(root, p)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
}

func tarOfRoot(t *testing.T, w io.Writer, root, src, name string) error {
	t.Helper()
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Tar(context.Background(), w, src, name)
}

type fileStat struct {
	uid, gid int
	mode     os.FileMode
}

func statOf(t *testing.T, p string) fileStat {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileStat{int(st.Uid), int(st.Gid), fi.Mode().Perm()}
}
