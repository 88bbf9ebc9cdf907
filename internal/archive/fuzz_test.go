package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply feeds arbitrary tar streams to Apply, as layers and as docker
// cp archives: it may fail, but it never panics and never changes
// anything beside its root.
func FuzzApply(f *testing.F) {
	seed := func(hdrs ...tar.Header) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			body := []byte(nil)
			if h.Typeflag == tar.TypeReg {
				body = []byte("x")
				h.Size = 1
			}
			tw.WriteHeader(&h)
			tw.Write(body)
		}
		tw.Close()
		f.Add(buf.Bytes(), true)
		f.Add(buf.Bytes(), false)
	}
	seed(tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Mode: 0o644})
	seed(tar.Header{Name: "../../outside/victim", Typeflag: tar.TypeReg, Mode: 0o644})
	seed(tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../outside"}, tar.Header{Name: "l/victim", Typeflag: tar.TypeReg})
	seed(tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "/"}, tar.Header{Name: "up/outside/", Typeflag: tar.TypeDir})
	seed(tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../outside/victim"})
	seed(tar.Header{Name: ".wh..", Typeflag: tar.TypeReg}, tar.Header{Name: "d/.wh...", Typeflag: tar.TypeReg})
	seed(tar.Header{Name: "d/", Typeflag: tar.TypeDir}, tar.Header{Name: "d/.wh..wh..opq", Typeflag: tar.TypeReg}, tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: ".."})
	seed(tar.Header{Name: "f", Typeflag: tar.TypeFifo, Mode: 0o644}, tar.Header{Name: "f", Typeflag: tar.TypeReg})

	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		sandbox := t.TempDir()
		root, outside := filepath.Join(sandbox, "root"), filepath.Join(sandbox, "outside")
		os.MkdirAll(root, 0o755)
		os.MkdirAll(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "victim"), []byte("original"), 0o644)
		before := treeHash(t, outside)
		Apply(context.Background(), root, bytes.NewReader(data), Options{Overlay: overlay})
		if after := treeHash(t, outside); after != before {
			t.Fatalf("Apply changed the tree beside its root")
		}
		if names, _ := os.ReadDir(sandbox); len(names) != 2 {
			t.Fatalf("Apply created %v beside its root", names)
		}
	})
}
