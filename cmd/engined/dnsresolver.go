package main

import (
	"github.com/spf13/cobra"

	"github.com/engined/engined/internal/network/dns"
)

// dnsResolverCommand runs the embedded DNS resolver inside the engined
// binary (hidden): what engined starts as its DNS resolver.
func dnsResolverCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "dns-resolver --root DIR",
		Short:              "Serve the embedded DNS of user-defined networks (started by engined)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return dns.Main(args)
		},
	}
}
