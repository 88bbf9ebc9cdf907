package dns

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Main is the resolver process's main, shared by its own small binary
// (engined's hidden "dns-resolver" subcommand).
// args are its flags: --root DIR (required), --control-fd N (a
// listening control socket inherited from engined; 0: bind
// DIR/control.sock), --log-level LEVEL.
func Main(args []string) error {
	fs := flag.NewFlagSet("engined-dns", flag.ContinueOnError)
	root := fs.String("root", "", "the resolver's state directory (records file, pid file, control socket)")
	controlFD := fs.Int("control-fd", 0, "listening control socket inherited from engined (0: bind ROOT/control.sock)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: engined-dns --root DIR [--control-fd N] [--log-level LEVEL]")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("component", "dns-resolver")
	var control net.Listener
	if *controlFD > 0 {
		f := os.NewFile(uintptr(*controlFD), "control")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("control socket fd %d: %w", *controlFD, err)
		}
		control = l
	}
	// A long-lived process whose live heap is small (the records and a
	// few goroutines per sandbox): collecting at 50% growth instead of
	// 100% keeps its RSS near that, for little CPU at its query rates.
	debug.SetGCPercent(50)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Started in a session of its own: no terminal to hang up.
	signal.Ignore(syscall.SIGHUP)
	return Run(ctx, *root, control, log)
}
