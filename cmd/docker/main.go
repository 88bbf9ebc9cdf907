// Command docker is engined's own CLI: docker-compatible commands over the
// Engine gRPC API (the commands are in package cli).
package main

import (
	"context"
	"os"

	"github.com/engined/engined/cmd/docker/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:]))
}
