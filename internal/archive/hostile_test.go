package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// treeHash is a digest of every name, mode, owner, link and content under
// dir: any change below it changes the digest.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size())
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			line += " -> " + l
		} else if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	io.WriteString(h, strings.Join(lines, "\n"))
	return fmt.Sprintf("%x", h.Sum(nil))
}

// Whiteouts that name the directory itself or its parent are refused,
// naming the entry, and delete nothing.
func TestApplyRefusesBadWhiteouts(t *testing.T) {
	for _, name := range []string{".wh..", ".wh...", "d/.wh..", "d/.wh...", ".wh."} {
		sandbox := t.TempDir()
		root := filepath.Join(sandbox, "root")
		os.MkdirAll(filepath.Join(root, "d"), 0o755)
		os.WriteFile(filepath.Join(sandbox, "sentinel"), []byte("x"), 0o644)
		before := treeHash(t, sandbox)
		_, err := Apply(context.Background(), root, tarOf(t, entry{name: name, typ: tar.TypeReg}), Options{Overlay: true})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("whiteout %q: err %v, want an error naming it", name, err)
		}
		if after := treeHash(t, sandbox); after != before {
			t.Errorf("whiteout %q changed the tree", name)
		}
	}
	// aufs metadata is skipped, not turned into a whiteout.
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, tarOf(t, entry{name: ".wh..wh.plnk/", typ: tar.TypeDir}), Options{Overlay: true}); err != nil {
		t.Errorf("aufs metadata: %v", err)
	}
	if names, _ := os.ReadDir(root); len(names) != 0 {
		t.Errorf("aufs metadata left %v", names)
	}
}

// Hard links out of the root in every spelling link a file inside it or
// fail; the host file gains no link.
func TestApplyHardLinksStayInside(t *testing.T) {
	sandbox := t.TempDir()
	root, host := filepath.Join(sandbox, "root"), filepath.Join(sandbox, "host")
	os.MkdirAll(root, 0o755)
	os.MkdirAll(host, 0o755)
	victim := filepath.Join(host, "victim")
	os.WriteFile(victim, []byte("secret"), 0o600)
	before := treeHash(t, host)
	for i, link := range []string{victim, "../host/victim", "../../../../" + victim, "/proc/self/root" + victim, "up/host/victim"} {
		layer := tarOf(t, entry{name: "up", link: "..", typ: tar.TypeSymlink}, entry{name: fmt.Sprintf("hl%d", i), link: link, typ: tar.TypeLink})
		if _, err := Apply(context.Background(), root, layer, Options{}); err == nil {
			t.Errorf("hard link to %q: accepted, with nothing of that name in the root", link)
		}
	}
	if after := treeHash(t, host); after != before {
		t.Error("hard links changed the host tree")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(victim, &st); err != nil || st.Nlink != 1 {
		t.Errorf("host file: nlink %d, %v", st.Nlink, err)
	}
}

// A process that swaps a directory of the tree for a symlink to a host
// directory, as fast as it can, never makes Tar read the host directory
// nor Apply write into it.
func TestSwappedSymlinkRace(t *testing.T) {
	sandbox := t.TempDir()
	root := filepath.Join(sandbox, "root")
	host := filepath.Join(sandbox, "host")
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "secret"), []byte("host secret"), 0o600)
	os.WriteFile(filepath.Join(root, "d", "secret"), []byte("container file"), 0o600)
	before := treeHash(t, host)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, link := filepath.Join(root, "d"), filepath.Join(root, "d.link")
		os.Symlink(host, link)
		for ctx.Err() == nil {
			unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
		}
	}()
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 2000; i++ {
		var buf bytes.Buffer
		if err := r.Tar(ctx, &buf, "/", ""); err == nil && bytes.Contains(buf.Bytes(), []byte("host secret")) {
			t.Fatal("Tar read a host file through a swapped symlink")
		}
		var in bytes.Buffer
		tw := tar.NewWriter(&in)
		tw.WriteHeader(&tar.Header{Name: "d/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		r.Apply(ctx, "/", &in, Options{})
	}
	cancel()
	wg.Wait()
	if after := treeHash(t, host); after != before {
		t.Fatal("Apply wrote into the host directory through a swapped symlink")
	}
}
