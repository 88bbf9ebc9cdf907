package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// TarLayer writes the root, an overlayfs upper directory, to w as an image
// layer: overlayfs's whiteouts (0/0 character devices) become ".wh."
// entries and opaque directories get a ".wh..wh..opq" entry, as dockerd's
// overlay2 driver writes a container's diff. skip, if set, leaves out an
// entry (and, for a directory, all under it). It returns the number of
// entries written, so an empty diff can be told apart.
func (r *Root) TarLayer(ctx context.Context, w io.Writer, skip func(name string, fi fs.FileInfo) bool) (int, error) {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	n := 0
	err := r.Walk(ctx, "/", func(e *Entry) error {
		if e.Path == "." {
			return nil
		}
		info := e.Info
		if skip != nil && skip("/"+e.Path, info) {
			if info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		if info.Mode()&os.ModeCharDevice != 0 && st.Rdev == 0 {
			n++
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(path.Dir(e.Path), whiteoutPrefix+path.Base(e.Path)),
				Mode: 0o600, ModTime: info.ModTime(), Format: tar.FormatPAX})
		}
		if info.Mode()&os.ModeSocket != 0 {
			return nil
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
		hdr.Name = e.Path
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time0, time0
		if info.Mode().IsRegular() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				seen[key] = e.Path
			}
		}
		n++
		if info.IsDir() {
			opaque, err := isOpaque(e)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if opaque {
				n++
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(e.Path, whiteoutOpaque), Mode: 0o600,
					ModTime: info.ModTime(), Format: tar.FormatPAX})
			}
			return nil
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
			return fmt.Errorf("archive %s: %w", e.Path, err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, tw.Close()
}

var time0 = (&tar.Header{}).AccessTime

// isOpaque reads overlayfs's opaque mark of a directory entry.
func isOpaque(e *Entry) (bool, error) {
	d, err := openBeneath(e.dir, e.name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return false, err
	}
	defer d.Close()
	buf := make([]byte, 4)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		n, err := unix.Fgetxattr(int(d.Fd()), name, buf)
		if err == nil && n == 1 && buf[0] == 'y' {
			return true, nil
		}
	}
	return false, nil
}
