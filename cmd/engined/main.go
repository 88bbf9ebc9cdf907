// Command engined is the container engine daemon: it serves the Engine
// gRPC API and the Docker Engine REST API on the same listeners.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/engined/engined/internal/config"
	"github.com/engined/engined/internal/daemon"
	"github.com/engined/engined/internal/version"
)

func main() {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:           "engined [flags]",
		Short:         "A Docker-compatible container engine",
		Args:          cobra.NoArgs,
		Version:       fmt.Sprintf("%s, build %s", version.Version, version.GitCommit),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Load()
			if err != nil {
				return err
			}
			level, _ := cfg.SlogLevel()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return daemon.Run(ctx, cfg, log)
		},
	}
	flags = config.Register(cmd.Flags())
	// A hidden subcommand, and no others: cobra would otherwise add and
	// show its help and completion commands.
	cmd.AddCommand(dnsResolverCommand())
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.SetHelpCommand(&cobra.Command{Hidden: true})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "engined:", err)
		os.Exit(1)
	}
}
