// Package pidfile keeps one engined per exec root: the pid file is locked
// for as long as the process lives, so a second engined fails at once and
// can say which process holds it. The lock, not the file's presence, is the
// truth: a file left by a killed engined is simply taken over.
package pidfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// File is a held pid file.
type File struct {
	f    *os.File
	path string
}

// ErrHeld means another live process holds the pid file.
var ErrHeld = errors.New("pid file is held by another process")

// Acquire creates or takes over path, locks it and writes our pid.
func Acquire(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("create pid file directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open pid file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readPid(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if holder > 0 {
				return nil, fmt.Errorf("%w: another engined (pid %d) is running with pid file %s", ErrHeld, holder, path)
			}
			return nil, fmt.Errorf("%w: another engined is running with pid file %s", ErrHeld, path)
		}
		return nil, fmt.Errorf("lock pid file %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate pid file: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	return &File{f: f, path: path}, nil
}

func readPid(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

// Release removes the file and drops the lock.
func (p *File) Release() error {
	err := os.Remove(p.path)
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}
