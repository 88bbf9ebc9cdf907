// Command shim runs one container for engined and serves the ttrpc Shim
// service (proto/shim). Its imports stay small: it re-executes itself as
// the container's init, so every package init() runs again then.
package main

import (
	"fmt"
	"os"
)

func main() {
	// The container work (issue: containers) adds start, serve, delete and
	// the libcontainer init entry point here.
	fmt.Fprintln(os.Stderr, "shim: engined's per-container shim; it is started by engined, not by hand")
	os.Exit(2)
}
