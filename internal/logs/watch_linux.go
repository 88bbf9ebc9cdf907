package logs

import (
	"os"

	"golang.org/x/sys/unix"
)

// watch returns a channel that receives when a file in dir is written or
// created, so a follower wakes at once rather than at its next poll: attach
// echoes keystrokes through the log. It returns a nil channel when inotify
// is unavailable (out of instances, say); the follower then polls.
func watch(dir string) (<-chan struct{}, func()) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, func() {}
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, func() {}
	}
	// Non-blocking, so the runtime poller serves it and Close ends the Read.
	f := os.NewFile(uintptr(fd), "inotify")
	c := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	return c, func() { f.Close() }
}
