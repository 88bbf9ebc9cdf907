// Package sdnotify is the receiving end of systemd's notify protocol
// (what a Type=notify unit's manager reads on NOTIFY_SOCKET), for the
// tests and the benchmarks that wait for a daemon to say it is ready.
// engined itself sends through go-systemd.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Listener is a notify socket that learns each message's sender.
type Listener struct{ conn *net.UnixConn }

// Listen makes a notify socket at path (one left there is replaced).
func Listen(path string) (*Listener, error) {
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err == nil {
		var serr error
		err = raw.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1) })
		err = errors.Join(err, serr)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket credentials: %w", err)
	}
	return &Listener{conn: conn}, nil
}

// Path is the socket's path, for NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.conn.LocalAddr().String() }

// Close removes the socket.
func (l *Listener) Close() error { return l.conn.Close() }

// Next waits until deadline for a message and returns its lines
// ("READY=1", ...) and the pid that sent it.
func (l *Listener) Next(deadline time.Time) (vars []string, pid int, err error) {
	l.conn.SetReadDeadline(deadline)
	buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	n, oobn, _, _, err := l.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, 0, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, 0, fmt.Errorf("notify message without its sender's credentials (%d control messages, %v)", len(msgs), err)
	}
	cred, err := syscall.ParseUnixCredentials(&msgs[0])
	if err != nil {
		return nil, 0, err
	}
	return strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n"), int(cred.Pid), nil
}

// WaitReady waits until deadline for READY=1 from pid itself: dockerd
// passes NOTIFY_SOCKET on to the containerd it starts, which says READY
// too.
func (l *Listener) WaitReady(pid int, deadline time.Time) error {
	for {
		vars, from, err := l.Next(deadline)
		if err != nil {
			return fmt.Errorf("no READY=1 from pid %d: %w", pid, err)
		}
		if from == pid && slices.Contains(vars, "READY=1") {
			return nil
		}
	}
}
