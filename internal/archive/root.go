package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"syscall"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Root is a directory tree that paths are resolved in as a process
// chrooted there would resolve them: "..", absolute symlinks and
// symlinks climbing out all stay inside. Resolution is done on file
// descriptors (pathrs-lite, openat2 RESOLVE_IN_ROOT), and files are then
// used through the descriptor that resolution returned, so a process that
// swaps a directory for a symlink between a check and a use cannot
// redirect either of them outside the root.
//
// The root's own path is trusted: it comes from engined (a container's
// rootfs, a bind mount's source, a private temporary directory).
type Root struct {
	dir  *os.File // O_PATH handle of the root directory
	path string
}

// OpenRoot opens the directory at dir as a Root. Close it when done.
func OpenRoot(dir string) (*Root, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	return &Root{dir: f, path: dir}, nil
}

// Close releases the root's handle.
func (r *Root) Close() error { return r.dir.Close() }

// Path is the root's host path, for messages.
func (r *Root) Path() string { return r.path }

// split cleans p as an absolute path inside the root and returns its
// parent directory and last component; base is "" for the root itself.
func split(p string) (dir, base string) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		return "/", ""
	}
	dir, base = path.Split(clean)
	return dir, base
}

// parent resolves the directory that holds p inside the root, following
// symlinks there, and returns an O_PATH handle of it and p's last
// component ("" when p is the root).
func (r *Root) parent(p string) (*os.File, string, error) {
	dir, base := split(p)
	h, err := pathrs.OpenatInRoot(r.dir, dir)
	if err != nil {
		return nil, "", err
	}
	return h, base, nil
}

// Lstat describes p inside the root without following its last
// component.
func (r *Root) Lstat(p string) (fs.FileInfo, error) {
	parent, base, err := r.parent(p)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return statAt(parent, base, path.Base(path.Clean("/"+p)))
}

// Stat describes p inside the root, following symlinks (inside the
// root) to the end.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	h, err := pathrs.OpenatInRoot(r.dir, path.Clean("/"+p))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return statAt(h, "", path.Base(path.Clean("/"+p)))
}

// Readlink returns the text of the symlink p inside the root.
func (r *Root) Readlink(p string) (string, error) {
	parent, base, err := r.parent(p)
	if err != nil {
		return "", err
	}
	defer parent.Close()
	return readlinkAt(parent, base)
}

// OpenFile opens the regular file p inside the root for reading,
// following symlinks inside the root. Anything but a regular file is an
// error: a FIFO or a device must not block or be read.
func (r *Root) OpenFile(p string) (*os.File, error) {
	h, err := pathrs.OpenatInRoot(r.dir, path.Clean("/"+p))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	fi, err := statAt(h, "", path.Base(p))
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
}

// statAt is fstatat(dir, name, AT_SYMLINK_NOFOLLOW) as a FileInfo named
// display; name "" describes dir itself.
func statAt(dir *os.File, name, display string) (fs.FileInfo, error) {
	var st unix.Stat_t
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fstatat(int(dir.Fd()), name, &st, flags); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: display, Err: err}
	}
	return &fileInfo{name: display, st: syscallStat(&st)}, nil
}

// syscallStat is st as the syscall package's type, the one archive/tar
// and os understand. The fields have the same types on every Linux
// architecture in both packages.
func syscallStat(st *unix.Stat_t) syscall.Stat_t {
	return syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Rdev: st.Rdev,
		Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}
}

func readlinkAt(dir *os.File, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// openBeneath opens name under dir without following any symlink on the
// way, the last component included: what a walk saw as a directory or a
// file cannot be swapped for a link out of the tree. O_NONBLOCK keeps a
// FIFO swapped in from blocking the open.
func openBeneath(dir *os.File, name string, flags int) (*os.File, error) {
	if name == "" {
		name = "."
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if flags&unix.O_PATH == 0 {
		flags |= unix.O_NONBLOCK // openat2 refuses it with O_PATH
	}
	fd, err := unix.Openat2(int(dir.Fd()), name, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("changed into a symlink while in use")}
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// procPath names the inode behind an O_PATH handle for the calls that
// have no *at form that leaves the last component unfollowed (chmod,
// setxattr): the kernel resolves it to the handle's inode, never further.
func procPath(h *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(h.Fd()))
}

// fileInfo is a FileInfo from a stat(2) result; Sys is the *syscall.Stat_t
// archive/tar reads owners and devices from.
type fileInfo struct {
	name string
	st   syscall.Stat_t
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.st }

func (fi *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if fi.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// sameFile says whether two stat results are one inode.
func sameFile(a, b *syscall.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// OpenPath resolves p inside the root, symlinks included (they stay in
// the root), and returns an O_PATH handle of what it names: a handle to
// bind-mount from (/proc/self/fd/N), so what is mounted is what was
// resolved, whatever is swapped in meanwhile.
func (r *Root) OpenPath(p string) (*os.File, error) {
	return pathrs.OpenatInRoot(r.dir, path.Clean("/"+p))
}
