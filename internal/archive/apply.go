// Package archive unpacks tar streams into a directory without ever writing
// outside it. Every path from the archive is resolved inside the root
// (symlinks included, with filepath-securejoin), so "../", absolute names,
// symlinked parents and hard links pointing out all land inside or fail.
package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Whiteout markers of the OCI/Docker layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Options change how entries are written.
type Options struct {
	// Overlay turns layer whiteouts into overlayfs's form: a 0/0 character
	// device for a deleted name, the trusted.overlay.opaque xattr for an
	// opaque directory. Without it, whiteout entries are an error.
	Overlay bool
	// NoLchown keeps file ownership as the caller's (for rootless callers).
	NoLchown bool
	// Owner, when set, owns every entry instead of the archive's owners
	// (docker cp without -a gives files to the container's root).
	Owner *Owner
	// NoOverwriteDirNonDir refuses to replace a directory with a
	// non-directory or the other way round.
	NoOverwriteDirNonDir bool
}

// Owner is a uid and gid.
type Owner struct{ UID, GID int }

// Apply unpacks the tar stream r into root and returns the bytes of file
// content written. root must be private to the caller while Apply runs.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (int64, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return 0, err
	}
	tr := tar.NewReader(r)
	var size int64
	type dirTime struct {
		path         string
		atime, mtime time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return size, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return size, fmt.Errorf("read layer archive: %w", err)
		}
		// Clean as an absolute path: ".." cannot climb above the root.
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			if hdr.Typeflag == tar.TypeDir {
				if err := setMeta(root, hdr, opts); err != nil {
					return size, err
				}
			}
			continue
		}
		dir, base := path.Split(name)
		parent, err := securejoin.SecureJoin(root, dir)
		if err != nil {
			return size, fmt.Errorf("resolve %q: %w", hdr.Name, err)
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return size, fmt.Errorf("create parent of %q: %w", hdr.Name, err)
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			if !opts.Overlay {
				return size, fmt.Errorf("whiteout entry %q outside a layer", hdr.Name)
			}
			if err := applyWhiteout(parent, base); err != nil {
				return size, fmt.Errorf("whiteout %q: %w", hdr.Name, err)
			}
			continue
		}
		target := filepath.Join(parent, base)
		n, err := writeEntry(root, target, hdr, tr, opts)
		if err != nil {
			return size, fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
		size += n
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{target, hdr.AccessTime, hdr.ModTime})
		}
	}
	// Directory times last: creating their children changed them.
	for _, d := range dirs {
		if err := setTimes(d.path, d.atime, d.mtime); err != nil {
			return size, err
		}
	}
	return size, nil
}

func applyWhiteout(parent, base string) error {
	if base == whiteoutOpaque {
		return unix.Setxattr(parent, "trusted.overlay.opaque", []byte("y"), 0)
	}
	target := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
	if err := os.RemoveAll(target); err != nil {
		return err
	}
	return unix.Mknod(target, unix.S_IFCHR, 0)
}

func writeEntry(root, target string, hdr *tar.Header, r io.Reader, opts Options) (int64, error) {
	fi, err := os.Lstat(target)
	switch {
	case err == nil && fi.IsDir() && hdr.Typeflag == tar.TypeDir:
		// Merge into the existing directory.
	case err == nil && opts.NoOverwriteDirNonDir && fi.IsDir() != (hdr.Typeflag == tar.TypeDir):
		return 0, fmt.Errorf("cannot overwrite %s with %s", kindOf(fi.IsDir()), kindOf(hdr.Typeflag == tar.TypeDir))
	case err == nil:
		if err := os.RemoveAll(target); err != nil {
			return 0, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return 0, err
	}
	mode := uint32(hdr.Mode) & 0o7777
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi == nil || !fi.IsDir() {
			if err := os.Mkdir(target, 0o700); err != nil {
				return 0, err
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return 0, err
		}
		n, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, err
		}
	case tar.TypeSymlink:
		// The link text is stored as is: it is only ever resolved inside
		// the root (by the container's mount namespace or by SecureJoin).
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return 0, err
		}
	case tar.TypeLink:
		src, err := linkSource(root, hdr.Linkname)
		if err != nil {
			return 0, err
		}
		if err := os.Link(src, target); err != nil {
			return 0, err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, kind|mode, int(dev)); err != nil {
			return 0, err
		}
	case tar.TypeXGlobalHeader:
		return 0, nil
	default:
		return 0, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if hdr.Typeflag == tar.TypeLink {
		return n, nil
	}
	if err := setMeta(target, hdr, opts); err != nil {
		return n, err
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := setTimes(target, hdr.AccessTime, hdr.ModTime); err != nil {
			return n, err
		}
	}
	return n, nil
}

// linkSource resolves a hard link's target inside root. The last component
// is not followed: a hard link to a symlink links the symlink.
func linkSource(root, linkname string) (string, error) {
	clean := path.Clean("/" + linkname)
	dir, base := path.Split(clean)
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", err
	}
	src := filepath.Join(parent, base)
	fi, err := os.Lstat(src)
	if err != nil {
		return "", fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("hard link target %q is a directory", linkname)
	}
	return src, nil
}

func kindOf(dir bool) string {
	if dir {
		return "a directory"
	}
	return "a non-directory"
}

func setMeta(target string, hdr *tar.Header, opts Options) error {
	uid, gid := hdr.Uid, hdr.Gid
	if opts.Owner != nil {
		uid, gid = opts.Owner.UID, opts.Owner.GID
	}
	if !opts.NoLchown {
		if err := os.Lchown(target, uid, gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Lsetxattr(target, attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("set xattr %s: %w", attr, err)
			}
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	// Chmod after chown: chown clears setuid and setgid bits.
	return os.Chmod(target, hdr.FileInfo().Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
}

func setTimes(target string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", target, err)
	}
	return nil
}
