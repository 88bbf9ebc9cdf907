// Command shim runs one container for engined and serves the ttrpc Shim
// service (proto/shim) on a unix socket. It is also the container's init:
// libcontainer re-executes it as "shim init", so its imports stay small
// (no gRPC, no gateway) because every package init() runs again then.
//
//	shim serve --runc-root DIR   the server, started by engined in a session of its own, socket on fd 3
//	shim init                    (internal) libcontainer's container init
//
// A shim is started before it has a container: Create names the
// container and its state directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

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
		resetSignals()
		libcontainer.Init() // does not return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "shim: started by engined, not by hand (usage: shim serve --runc-root DIR, socket on fd 3)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("shim "+os.Args[1], flag.ExitOnError)
	runcRoot := fs.String("runc-root", "", "libcontainer state root")
	fs.Parse(os.Args[2:])
	if *runcRoot == "" {
		fmt.Fprintln(os.Stderr, "shim: --runc-root is required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(*runcRoot)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shim:", err)
		os.Exit(1)
	}
}

// resetSignals gives the container's process (init or exec'd) default
// signal dispositions and an empty signal mask whatever engined and the
// shim inherited: a shell's `engined &` starts engined with SIGINT and
// SIGHUP ignored, GNU make ignores signals 32 and 33 in its recipes, and
// an ignored signal or a blocked one survives exec, so Ctrl-C, docker
// kill -s INT and trap would do nothing in the container. The kernel's
// own list of ignored signals is read, since Go's signal.Ignored does not
// see the ones its runtime keeps for itself (32 and 33), and each is set
// back to SIG_DFL. libcontainer's init execs the process from this thread
// (Init locks it too) without touching dispositions.
func resetSignals() {
	runtime.LockOSThread()
	for _, sig := range ignoredSignals() {
		// struct kernel_sigaction with a NULL handler (SIG_DFL), no
		// flags and an empty mask.
		var act [4]uint64
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); errno != 0 {
			fmt.Fprintf(os.Stderr, "shim init: reset signal %d: %v\n", sig, errno)
		}
	}
	var none unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil); err != nil {
		fmt.Fprintln(os.Stderr, "shim init: clear the signal mask:", err)
	}
}

// ignoredSignals reads the SigIgn mask of /proc/self/status.
func ignoredSignals() []unix.Signal {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		hex, ok := strings.CutPrefix(line, "SigIgn:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil
		}
		var sigs []unix.Signal
		for n := 1; n <= 64; n++ {
			if mask&(1<<(n-1)) != 0 && unix.Signal(n) != unix.SIGKILL && unix.Signal(n) != unix.SIGSTOP {
				sigs = append(sigs, unix.Signal(n))
			}
		}
		return sigs
	}
	return nil
}

// unwantedAfter is how long a shim with no container waits for its first
// client.
const unwantedAfter = 10 * time.Second

// connWatch tells the service when client connections open and end.
type connWatch struct{ svc *shim.Service }

func (w connWatch) Handshake(_ context.Context, conn net.Conn) (net.Conn, any, error) {
	w.svc.ClientConnected()
	return &watchedConn{Conn: conn, gone: w.svc.ClientGone}, nil, nil
}

type watchedConn struct {
	net.Conn
	once sync.Once
	gone func()
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.gone)
	return err
}

func serve(runcRoot string) error {
	// A shim is small and mostly idle: collect garbage early, and one
	// processor is plenty for one container (each P has its own caches).
	debug.SetGCPercent(20)
	debug.SetMemoryLimit(8 << 20)
	runtime.GOMAXPROCS(1)
	l, err := net.FileListener(os.NewFile(3, "socket"))
	if err != nil {
		return fmt.Errorf("socket on fd 3: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := shim.New(runcRoot)
	sigchld := make(chan os.Signal, 32)
	signal.Notify(sigchld, unix.SIGCHLD)
	go svc.Reap(ctx, sigchld)
	// engined stopping must not stop the container: these are caught and
	// dropped (a full channel drops them), not ignored, because an
	// ignored signal stays ignored across exec and the container's
	// processes would inherit that.
	signal.Notify(make(chan os.Signal, 1), unix.SIGINT, unix.SIGHUP, unix.SIGPIPE)

	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(connWatch{svc}))
	if err != nil {
		return err
	}
	shimv1.RegisterShimService(srv, svc)
	// engined dials as soon as it has started the shim, and the socket
	// was listening before: by now its connection is waiting to be
	// accepted, unless that engined died first.
	unwanted := time.AfterFunc(unwantedAfter, svc.EndIfUnwanted)
	defer unwanted.Stop()
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
