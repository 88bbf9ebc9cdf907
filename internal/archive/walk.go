package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// Entry is one name a Walk visits.
type Entry struct {
	// Path is relative to the walk's start, "." for the start itself.
	Path string
	Info fs.FileInfo
	dir  *os.File // the handle name is looked up beneath
	name string
}

// Open opens the entry, a regular file, for reading. It fails if the
// name no longer is the file the walk saw (swapped for a link, a FIFO or
// another file meanwhile).
func (e *Entry) Open() (*os.File, error) {
	f, err := openBeneath(e.dir, e.name, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if want := e.Info.Sys().(*syscall.Stat_t); !sameFile(&st, want) || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s changed while it was read", e.Path)
	}
	return f, nil
}

// Readlink returns the entry's link text.
func (e *Entry) Readlink() (string, error) {
	if e.name == "" {
		return readlinkAt(e.dir, "")
	}
	parent, err := openBeneath(e.dir, path.Dir(e.name), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer parent.Close()
	return readlinkAt(parent, path.Base(e.name))
}

// Walk calls fn for src (resolved inside the root, its last component not
// followed) and, when it is a directory, for everything under it, each
// directory before its content and names in lexical order. Symlinks are
// reported, never followed. Every directory is opened beneath the start
// with no symlink allowed on the way, so a tree changed during the walk
// cannot lead it out; at most two descriptors are open per walk however
// deep the tree. fn returning fs.SkipDir for a directory skips its
// content.
func (r *Root) Walk(ctx context.Context, src string, fn func(*Entry) error) error {
	parent, base, err := r.parent(src)
	if err != nil {
		return err
	}
	defer parent.Close()
	info, err := statAt(parent, base, path.Base(path.Clean("/"+src)))
	if err != nil {
		return err
	}
	start := &Entry{Path: ".", Info: info, dir: parent, name: base}
	if err := fn(start); err != nil || !info.IsDir() {
		if errors.Is(err, fs.SkipDir) {
			return nil
		}
		return err
	}
	top := parent
	if base != "" {
		if top, err = openBeneath(parent, base, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return err
		}
		defer top.Close()
		var st syscall.Stat_t
		if err := syscall.Fstat(int(top.Fd()), &st); err != nil {
			return err
		}
		if !sameFile(&st, info.Sys().(*syscall.Stat_t)) {
			return fmt.Errorf("%s changed while it was read", src)
		}
	}
	return walkDir(ctx, top, "", fn)
}

func walkDir(ctx context.Context, top *os.File, rel string, fn func(*Entry) error) error {
	d, err := openBeneath(top, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("read directory %s: %w", relName(rel), err)
	}
	sort.Strings(names)
	entries := make([]*Entry, 0, len(names))
	for _, n := range names {
		info, err := statAt(d, n, n)
		if errors.Is(err, unix.ENOENT) {
			continue // removed since it was listed
		}
		if err != nil {
			d.Close()
			return err
		}
		p := path.Join(rel, n)
		entries = append(entries, &Entry{Path: p, Info: info, dir: top, name: p})
	}
	d.Close()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(e)
		if errors.Is(err, fs.SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if e.Info.IsDir() {
			if err := walkDir(ctx, top, e.Path, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func relName(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
