// Package archive reads and writes tar streams of directory trees without
// ever touching anything outside them. Every path from an archive, a
// request or a container's filesystem is resolved inside its Root on file
// descriptors, the last component included, and the file is then used
// through a descriptor, never through a path string that a racing process
// could redirect.
package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Whiteout markers of the OCI/Docker layer format.
const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
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
	// Busy are files and directories that must not be removed or
	// replaced, nor anything holding them: a running container's mount
	// points. Unlinking one from the host's view of the rootfs lazily
	// unmounts it in the container's namespace (its /proc, a read-only
	// bind); dockerd's copy fails with EBUSY there.
	Busy map[FileID]bool
}

// FileID names an inode.
type FileID struct{ Dev, Ino uint64 }

// Busy returns the IDs of the file or directory p inside the root
// (followed to the end) and of every directory above it, root excluded,
// for Options.Busy. p's directories should be resolved already
// (Resolve): its parents are taken as its lexical prefixes.
func (r *Root) Busy(p string) ([]FileID, error) {
	var ids []FileID
	for p = path.Clean("/" + p); p != "/"; p = path.Dir(p) {
		fi, err := r.Stat(p)
		if err != nil {
			return nil, err
		}
		st := fi.Sys().(*syscall.Stat_t)
		ids = append(ids, FileID{uint64(st.Dev), st.Ino})
	}
	return ids, nil
}

// Owner is a uid and gid.
type Owner struct{ UID, GID int }

// Apply unpacks the tar stream r into the directory dir, which must be
// private to the caller while Apply runs, and returns the bytes of file
// content written.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (int64, error) {
	root, err := OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	return root.Apply(ctx, "/", r, opts)
}

// Apply unpacks the tar stream r under dest, a directory inside the root,
// and returns the bytes of file content written. An entry's name is
// taken as relative to dest ("../" cannot climb above it), and the rest
// is resolved inside the root: symlinks in the tree or created by the
// archive itself lead at most to elsewhere in the root.
func (r *Root) Apply(ctx context.Context, dest string, rd io.Reader, opts Options) (int64, error) {
	tr := tar.NewReader(rd)
	var size int64
	type dirTime struct {
		path         string
		atime, mtime time.Time
	}
	var dirs []dirTime
	parents := parentCache{root: r}
	defer parents.drop()
	for {
		if err := ctx.Err(); err != nil {
			return size, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return size, fmt.Errorf("read archive: %w", err)
		}
		name := path.Join("/", dest, path.Clean("/"+hdr.Name))
		if path.Clean("/"+hdr.Name) == "/" {
			// A layer's "." is its root directory's metadata. Anywhere
			// else (docker cp, load) dest is not the archive's to
			// change, as dockerd's Untar skips "." too: a tarball made
			// with `tar -C dir -c .` must not chmod or chown a
			// container's /tmp or a bind-mounted host directory.
			if hdr.Typeflag == tar.TypeDir && opts.Overlay {
				if err := r.setDestMeta(dest, hdr, opts); err != nil {
					return size, fmt.Errorf("extract %q: %w", hdr.Name, err)
				}
			}
			continue
		}
		dir, base := split(name)
		parent, err := parents.get(dir)
		if err != nil {
			return size, fmt.Errorf("create parent of %q: %w", hdr.Name, err)
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			if !opts.Overlay {
				return size, fmt.Errorf("whiteout entry %q outside a layer", hdr.Name)
			}
			if err := applyWhiteout(parent, base); err != nil {
				return size, fmt.Errorf("whiteout %q: %w", hdr.Name, err)
			}
			parents.changed()
			continue
		}
		n, err := r.writeEntry(parent, base, dest, hdr, tr, opts, &parents)
		if err != nil {
			return size, fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
		size += n
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{name, hdr.AccessTime, hdr.ModTime})
		}
	}
	// Directory times last: creating their children changed them.
	for _, d := range dirs {
		if err := r.setDirTimes(d.path, d.atime, d.mtime); err != nil {
			return size, err
		}
	}
	return size, nil
}

// parentCache keeps the handle of the last parent directory: archives
// list a directory's entries together, and resolving each one's parent
// anew costs a lookup per component. It is dropped whenever an entry
// could change what a path resolves to (a removal, a symlink, a
// whiteout).
type parentCache struct {
	root  *Root
	dir   string
	h     *os.File
	stale bool
}

func (c *parentCache) get(dir string) (*os.File, error) {
	if c.h != nil && c.dir == dir && !c.stale {
		return c.h, nil
	}
	c.drop()
	h, err := pathrs.MkdirAllHandle(c.root.dir, dir, 0o755)
	if err != nil {
		return nil, err
	}
	c.dir, c.h = dir, h
	return h, nil
}

// changed marks the handle for resolving again at the next get; the
// entry being written goes on using it.
func (c *parentCache) changed() { c.stale = true }

func (c *parentCache) drop() {
	if c.h != nil {
		c.h.Close()
		c.h = nil
	}
	c.stale = false
}

// applyWhiteout records a layer's deletion of a name in overlayfs's
// form. The name must be one the directory can hold: ".wh..", ".wh..."
// and ".wh." would delete the directory itself or its parent.
func applyWhiteout(parent *os.File, base string) error {
	if base == whiteoutOpaque {
		return unix.Setxattr(procPath(parent), "trusted.overlay.opaque", []byte("y"), 0)
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		// aufs's own metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return fmt.Errorf("invalid whiteout name %q", base)
	}
	if err := removeAt(parent, victim); err != nil {
		return err
	}
	return unix.Mknodat(int(parent.Fd()), victim, unix.S_IFCHR, 0)
}

// removeAt removes name, and all it holds, from the directory parent.
// os.RemoveAll works with openat and O_NOFOLLOW from there on, so links
// inside are removed, never followed.
func removeAt(parent *os.File, name string) error {
	return os.RemoveAll(procPath(parent) + "/" + name)
}

func (r *Root) writeEntry(parent *os.File, base, dest string, hdr *tar.Header, rd io.Reader, opts Options, parents *parentCache) (int64, error) {
	pfd := int(parent.Fd())
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	exists := err == nil
	isDir := exists && st.Mode&unix.S_IFMT == unix.S_IFDIR
	wantDir := hdr.Typeflag == tar.TypeDir
	switch {
	case exists && isDir && wantDir:
		// Merge into the existing directory.
	case exists && opts.NoOverwriteDirNonDir && isDir != wantDir:
		return 0, fmt.Errorf("cannot overwrite %s with %s", kindOf(isDir), kindOf(wantDir))
	case exists:
		if opts.Busy[FileID{uint64(st.Dev), st.Ino}] {
			return 0, fmt.Errorf("cannot replace %s: it is, or holds, a mount point of the container: %w", base, unix.EBUSY)
		}
		if err := removeAt(parent, base); err != nil {
			return 0, err
		}
		parents.changed()
	case !errors.Is(err, unix.ENOENT):
		return 0, err
	}
	mode := uint32(hdr.Mode) & 0o7777
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !isDir {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return 0, err
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, err
		}
		f := os.NewFile(uintptr(fd), base)
		n, err = io.Copy(f, rd)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, err
		}
	case tar.TypeSymlink:
		// The link text is stored as is: it is only ever resolved inside
		// the root (by the container's mount namespace or by a Root).
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return 0, err
		}
		parents.changed()
	case tar.TypeLink:
		if err := r.linkAt(dest, hdr.Linkname, parent, base); err != nil {
			return 0, err
		}
		return 0, nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, kind|mode, int(dev)); err != nil {
			return 0, err
		}
	case tar.TypeXGlobalHeader:
		return 0, nil
	default:
		return 0, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	h, err := openEntry(parent, base)
	if err != nil {
		return n, err
	}
	defer h.Close()
	if err := setMeta(h, hdr, opts); err != nil {
		return n, err
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := setTimes(parent, base, hdr.AccessTime, hdr.ModTime); err != nil {
			return n, err
		}
	}
	return n, nil
}

// openEntry opens an O_PATH handle of the name just created in parent,
// not following it: metadata is then set on that inode, whatever the name
// is changed into meanwhile.
func openEntry(parent *os.File, base string) (*os.File, error) {
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), base), nil
}

// linkAt makes base in parent a hard link to the archive's linkname,
// which names a file of the same archive: resolved under dest inside the
// root, its last component not followed (a hard link to a symlink links
// the symlink).
func (r *Root) linkAt(dest, linkname string, parent *os.File, base string) error {
	src, srcBase, err := r.parent(path.Join("/", dest, path.Clean("/"+linkname)))
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, errnoOf(err))
	}
	defer src.Close()
	var st unix.Stat_t
	if srcBase == "" {
		return fmt.Errorf("hard link target %q is a directory", linkname)
	}
	if err := unix.Fstatat(int(src.Fd()), srcBase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hard link target %q is a directory", linkname)
	}
	return unix.Linkat(int(src.Fd()), srcBase, int(parent.Fd()), base, 0)
}

// errnoOf is the system error under a lookup's wrapping, which names
// host paths and library internals a client has no use for.
func errnoOf(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

func kindOf(dir bool) string {
	if dir {
		return "a directory"
	}
	return "a non-directory"
}

// setDestMeta applies the archive's entry for "." to dest itself.
func (r *Root) setDestMeta(dest string, hdr *tar.Header, opts Options) error {
	h, err := pathrs.OpenatInRoot(r.dir, dest)
	if err != nil {
		return err
	}
	defer h.Close()
	return setMeta(h, hdr, opts)
}

// setMeta sets owner, xattrs and mode through the O_PATH handle h.
func setMeta(h *os.File, hdr *tar.Header, opts Options) error {
	uid, gid := hdr.Uid, hdr.Gid
	if opts.Owner != nil {
		uid, gid = opts.Owner.UID, opts.Owner.GID
	}
	if !opts.NoLchown {
		if err := unix.Fchownat(int(h.Fd()), "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		// Neither modes nor user xattrs exist on symlinks.
		return nil
	}
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Setxattr(procPath(h), attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("set xattr %s: %w", attr, err)
			}
		}
	}
	// Chmod after chown: chown clears setuid and setgid bits.
	if err := unix.Chmod(procPath(h), uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

func setTimes(parent *os.File, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(int(parent.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", base, err)
	}
	return nil
}

// setDirTimes sets a directory's times once its content is in, if the
// name is still a directory.
func (r *Root) setDirTimes(p string, atime, mtime time.Time) error {
	parent, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer parent.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil // replaced by a later entry
	}
	return setTimes(parent, base, atime, mtime)
}
