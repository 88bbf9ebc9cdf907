// Command engined-dns is the embedded DNS resolver of engined's
// user-defined networks, one per engined, started by engined. It is a
// binary of its own rather than only a subcommand of engined because
// it lives for as long as there are containers: without engined's
// packages (gRPC, images, the gateway) it runs in about 8 MB instead of
// about 19 (internal/network/dns says more).
package main

import (
	"fmt"
	"os"

	"github.com/engined/engined/internal/network/dns"
)

func main() {
	if err := dns.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "engined-dns:", err)
		os.Exit(1)
	}
}
