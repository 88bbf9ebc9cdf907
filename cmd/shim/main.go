// Command shim runs one container for engined and serves the ttrpc Shim
// service (proto/shim) on a unix socket. It is also the container's init:
// libcontainer re-executes it as "shim init", so its imports stay small
// (no gRPC, no gateway) because every package init() runs again then.
//
//	shim start --id ID --state DIR --socket PATH   bind, detach a server, print its pid
//	shim serve --id ID --state DIR                 (internal) the detached server, socket on fd 3
//	shim init                                      (internal) libcontainer's container init
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/opencontainers/runc/libcontainer"
	// Registers the device-rules manager libcontainer needs for cgroups.
	_ "github.com/opencontainers/cgroups/devices"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/shim"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init() // does not return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "shim: started by engined, not by hand (usage: shim start|serve --id ID --state DIR)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("shim "+os.Args[1], flag.ExitOnError)
	id := fs.String("id", "", "container id")
	state := fs.String("state", "", "container state directory")
	socket := fs.String("socket", "", "ttrpc socket path (start)")
	runcRoot := fs.String("runc-root", "", "libcontainer state root")
	fs.Parse(os.Args[2:])
	if *id == "" || *state == "" {
		fmt.Fprintln(os.Stderr, "shim: --id and --state are required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "start":
		err = start(*id, *state, *socket, *runcRoot)
	case "serve":
		err = serve(*id, *state, *runcRoot)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shim:", err)
		os.Exit(1)
	}
}

// StartResult is what `shim start` prints for engined.
type StartResult struct {
	Address string `json:"address"`
	Pid     int    `json:"pid"`
}

// start binds the socket and re-executes the shim detached (own session,
// not engined's child for long) so it outlives engined.
func start(id, state, socket, runcRoot string) error {
	if socket == "" {
		return fmt.Errorf("--socket is required")
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return err
	}
	os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(state, "shim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "serve", "--id", id, "--state", state, "--runc-root", runcRoot)
	cmd.Dir = state
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start shim server: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(StartResult{Address: socket, Pid: cmd.Process.Pid})
}

func serve(id, state, runcRoot string) error {
	// A shim is small and mostly idle: collect garbage early.
	debug.SetGCPercent(20)
	debug.SetMemoryLimit(8 << 20)
	l, err := net.FileListener(os.NewFile(3, "socket"))
	if err != nil {
		return fmt.Errorf("socket on fd 3: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := shim.New(id, state, runcRoot)
	sigchld := make(chan os.Signal, 32)
	signal.Notify(sigchld, unix.SIGCHLD)
	go svc.Reap(ctx, sigchld)
	// engined stopping must not stop the container.
	signal.Ignore(unix.SIGINT, unix.SIGHUP, unix.SIGPIPE)

	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	shimv1.RegisterShimService(srv, svc)
	shutdown := make(chan struct{})
	go func() {
		defer close(shutdown)
		<-svc.Done
		// Shutdown waits for the Delete reply to go out.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		l.Close()
	}()
	err = srv.Serve(ctx, l)
	select {
	case <-svc.Done:
		<-shutdown
		return nil
	default:
	}
	if err != nil && err != ttrpc.ErrServerClosed {
		return err
	}
	return nil
}
