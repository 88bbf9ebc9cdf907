// Package shimclient is engined's side of the shim: it starts a shim for a
// container, records how to find it again (bootstrap.json), and dials it
// over ttrpc, after an engined restart too.
package shimclient

import (
	"bytes"
	"context"
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

	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// ProtocolVersion is the newest Shim protocol engined speaks.
const ProtocolVersion = 1

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
	shimv1.ShimService
	conn      *ttrpc.Client
	Bootstrap Bootstrap
}

// Close closes the connection, not the shim.
func (c *Client) Close() error { return c.conn.Close() }

// Start runs `shim start` for a container and connects to it.
func Start(ctx context.Context, shimBin, id, stateDir, socket, runcRoot string) (*Client, error) {
	cmd := exec.CommandContext(ctx, shimBin, "start", "--id", id, "--state", stateDir, "--socket", socket, "--runc-root", runcRoot)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("start shim: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res struct {
		Address string `json:"address"`
		Pid     int    `json:"pid"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("start shim: unexpected output %q: %w", stdout.String(), err)
	}
	st, err := ProcessStartTime(res.Pid)
	if err != nil {
		return nil, fmt.Errorf("shim pid %d: %w", res.Pid, err)
	}
	b := Bootstrap{Address: res.Address, Pid: res.Pid, StartTime: st, Version: ProtocolVersion}
	if err := writeBootstrap(stateDir, b); err != nil {
		return nil, err
	}
	return Dial(ctx, b)
}

func writeBootstrap(dir string, b Bootstrap) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, BootstrapFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, BootstrapFile))
}

// ReadBootstrap reads a state directory's bootstrap record.
func ReadBootstrap(dir string) (Bootstrap, error) {
	var b Bootstrap
	data, err := os.ReadFile(filepath.Join(dir, BootstrapFile))
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
	c := &Client{ShimService: shimv1.NewShimClient(tc), conn: tc, Bootstrap: b}
	resp, err := c.Connect(dctx, &shimv1.ConnectRequest{ProtocolVersion: ProtocolVersion})
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("connect to shim %s: %w", b.Address, err)
	}
	if resp.GetProtocolVersion() == 0 || resp.GetProtocolVersion() > ProtocolVersion {
		tc.Close()
		return nil, fmt.Errorf("shim %s speaks protocol %d, engined %d", b.Address, resp.GetProtocolVersion(), ProtocolVersion)
	}
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
