package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Resolve names the host path where p is inside root, following symlinks
// as a process chrooted there would, except the last component. It is a
// string, so it says where a path points now, not what may be opened
// there later: use it to decide which tree a path belongs to (a bind
// mount or the rootfs), and a Root to touch files.
func Resolve(root, p string) (string, error) {
	dir, base := split(p)
	if base == "" {
		return root, nil
	}
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, base), nil
}

// Tar writes src (inside the root, its last component not followed) and,
// for a directory, everything under it to w, named under name ("" names
// the entries relative to src itself, leaving src out). Symlinks are
// archived as links, never followed, and every file is read through a
// descriptor opened beneath src, so nothing outside the tree is read
// even if it changes meanwhile.
func (r *Root) Tar(ctx context.Context, w io.Writer, src, name string) error {
	tw := tar.NewWriter(w)
	// Inode -> first name, for hard links. Keyed by device too: a tree
	// with mounts below it numbers inodes per file system.
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	err := r.Walk(ctx, src, func(e *Entry) error {
		entry := path.Join(name, e.Path)
		if e.Path == "." {
			if name == "" {
				return nil
			}
			entry = name
		}
		info := e.Info
		if info.Mode()&os.ModeSocket != 0 {
			return nil // a socket cannot be archived; tar tools skip them too
		}
		var link string
		if info.Mode()&os.ModeSymlink != 0 {
			var err error
			if link, err = e.Readlink(); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = entry
		if info.IsDir() {
			hdr.Name += "/"
		}
		st := info.Sys().(*syscall.Stat_t)
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.Uname, hdr.Gname = "", ""
		if info.Mode().IsRegular() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				seen[key] = entry
			}
		}
		if hdr.Typeflag != tar.TypeReg {
			return tw.WriteHeader(hdr)
		}
		f, err := e.Open()
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("archive %s: %w", entry, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
