// Command docker is engined's own CLI: docker-compatible commands over the
// Engine gRPC API (the commands are in package cli).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/engined/engined/cmd/docker/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
