// Package shimclient is engined's side of the shim: it starts a shim for a
// container, records how to find it again (bootstrap.json), and dials it
// over ttrpc, after an engined restart too.
package shimclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// ProtocolVersion is the newest Shim protocol engined speaks.
const ProtocolVersion = 2

// BootstrapFile names the record of a running shim in its state directory.
const BootstrapFile = "bootstrap.json"

// connectTimeout bounds dialing and Connect: a hung shim must not hang
// engined's start.
const connectTimeout = 5 * time.Second

// Bootstrap is how to find a shim again.
type Bootstrap struct {
	Address string `json:"address"`
	Pid     int    `json:"pid"`
	// StartTime is the pid's start time from /proc/PID/stat, so a reused
	// pid is not mistaken for the shim.
	StartTime uint64 `json:"startTime"`
	Version   uint32 `json:"version"`
}

// Client is a connection to one shim.
type Client struct {
	shimv1.ShimClient
	conn      *ttrpc.Client
	Bootstrap Bootstrap
	// Version is the protocol the shim speaks: a shim started by an
	// older engined may speak an older one (1: no events, no execs).
	Version uint32
}

// Close closes the connection, not the shim.
func (c *Client) Close() error { return c.conn.Close() }

// Options say how to start a shim.
type Options struct {
	Bin      string // the shim binary
	RuncRoot string // libcontainer's state root
	// SocketDir holds the shims' sockets: unix socket paths are limited
	// to 108 bytes, so they get short random names there.
	SocketDir string
}

// Start starts a shim without a container yet and connects to it.
// logPath is the shim's log until Create gives it a state directory.
//
// engined binds the shim's socket and starts `shim serve` in a session of
// its own with the socket on fd 3: the detached server `shim start`
// would start, without the extra process start (a Go binary of this size
// takes about 10 ms to start, on the path of every container start).
// The server is engined's child until engined exits; reap waits for it
// so it leaves no zombie.
func Start(ctx context.Context, o Options, logPath string) (*Client, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	socket := filepath.Join(o.SocketDir, hex.EncodeToString(rnd[:])+".sock")
	if err := os.MkdirAll(o.SocketDir, 0o700); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	// The shim owns the socket file from now on.
	l.SetUnlinkOnClose(false)
	lf, err := l.File()
	l.Close()
	if err != nil {
		os.Remove(socket)
		return nil, err
	}
	defer lf.Close()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		os.Remove(socket)
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(o.Bin, "serve", "--runc-root", o.RuncRoot)
	cmd.Dir = "/"
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(socket)
		return nil, fmt.Errorf("start shim: %w", err)
	}
	go reap(cmd)
	st, err := ProcessStartTime(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		os.Remove(socket)
		return nil, fmt.Errorf("shim pid %d: %w", cmd.Process.Pid, err)
	}
	c, err := Dial(ctx, Bootstrap{Address: socket, Pid: cmd.Process.Pid, StartTime: st, Version: ProtocolVersion})
	if err != nil {
		cmd.Process.Kill()
		os.Remove(socket)
		return nil, err
	}
	return c, nil
}

// reap collects a shim's exit status when it exits while engined runs.
func reap(cmd *exec.Cmd) { cmd.Wait() }

// WriteBootstrap records how to find the shim again in dir.
func (c *Client) WriteBootstrap(dir string) error { return writeBootstrap(dir, c.Bootstrap) }

// Kill ends a shim that does not answer, and removes its socket.
func (b Bootstrap) Kill() {
	if b.Alive() {
		unix.Kill(b.Pid, unix.SIGKILL)
	}
	os.Remove(b.Address)
}

func writeBootstrap(dir string, b Bootstrap) error {
	return writeBootstrapAs(filepath.Join(dir, BootstrapFile), b)
}

// writeBootstrapAs writes the record atomically.
func writeBootstrapAs(path string, b Bootstrap) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadBootstrap reads a state directory's bootstrap record.
func ReadBootstrap(dir string) (Bootstrap, error) {
	return readBootstrapFile(filepath.Join(dir, BootstrapFile))
}

func readBootstrapFile(path string) (Bootstrap, error) {
	var b Bootstrap
	data, err := os.ReadFile(path)
	if err != nil {
		return b, err
	}
	return b, json.Unmarshal(data, &b)
}

// Alive reports whether the shim process recorded in b still runs.
func (b Bootstrap) Alive() bool {
	st, err := ProcessStartTime(b.Pid)
	return err == nil && st == b.StartTime
}

// Dial connects to a shim and checks its protocol version.
func Dial(ctx context.Context, b Bootstrap) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "unix", b.Address)
	if err != nil {
		return nil, fmt.Errorf("dial shim %s: %w", b.Address, err)
	}
	tc := ttrpc.NewClient(conn)
	c := &Client{ShimClient: shimv1.NewShimClient(tc), conn: tc, Bootstrap: b}
	resp, err := c.Connect(dctx, &shimv1.ConnectRequest{ProtocolVersion: ProtocolVersion})
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("connect to shim %s: %w", b.Address, err)
	}
	if resp.GetProtocolVersion() == 0 || resp.GetProtocolVersion() > ProtocolVersion {
		tc.Close()
		return nil, fmt.Errorf("shim %s speaks protocol %d, engined %d", b.Address, resp.GetProtocolVersion(), ProtocolVersion)
	}
	c.Version = resp.GetProtocolVersion()
	return c, nil
}

// ProcessStartTime is field 22 of /proc/PID/stat (clock ticks after boot).
func ProcessStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
