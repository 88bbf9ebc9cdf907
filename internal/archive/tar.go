package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Resolve finds p inside root as a process chrooted there would, except
// that the last component is not followed if it is a symlink (docker cp
// copies a link, not what it points to).
func Resolve(root, p string) (string, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		return root, nil
	}
	dir, base := path.Split(clean)
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, base), nil
}

// Tar writes src (a path from Resolve) and, for a directory, everything
// under it to w, named under name ("" names the entries relative to src
// itself, leaving src out). Symlinks are archived as links, never
// followed, so nothing outside the tree is read.
func Tar(ctx context.Context, w io.Writer, src, name string) error {
	tw := tar.NewWriter(w)
	seen := map[uint64]string{} // inode -> first name, for hard links
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		entry := path.Join(name, filepath.ToSlash(rel))
		if rel == "." {
			if name == "" {
				return nil
			}
			entry = name
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSocket != 0 {
			return nil // a socket cannot be archived; tar tools skip them too
		}
		var link string
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
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
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			hdr.Uname, hdr.Gname = "", ""
			if info.Mode().IsRegular() && st.Nlink > 1 {
				if first, ok := seen[st.Ino]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					seen[st.Ino] = entry
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
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
