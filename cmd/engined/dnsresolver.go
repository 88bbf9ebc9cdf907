package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/engined/engined/internal/network/dns"
)

// dnsResolverCommand is the embedded DNS resolver's process, started by
// engined (hidden: nobody else starts it). It lives apart from engined
// so names resolve while engined is stopped or restarting.
func dnsResolverCommand() *cobra.Command {
	var root, level string
	var controlFD int
	cmd := &cobra.Command{
		Use:    "dns-resolver --root DIR",
		Short:  "Serve the embedded DNS of user-defined networks (started by engined)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return fmt.Errorf("--root is required")
			}
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level %q: %w", level, err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("component", "dns-resolver")
			var control net.Listener
			if controlFD > 0 {
				f := os.NewFile(uintptr(controlFD), "control")
				l, err := net.FileListener(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("control socket fd %d: %w", controlFD, err)
				}
				control = l
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			// Nothing to do with the terminal engined may have had.
			signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
			return dns.Run(ctx, root, control, log)
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "the resolver's state directory (records file, pid file, control socket)")
	cmd.Flags().IntVar(&controlFD, "control-fd", 0, "listening control socket inherited from engined (0: bind root/control.sock)")
	cmd.Flags().StringVar(&level, "log-level", "info", "log level")
	return cmd
}
