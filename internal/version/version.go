// Package version holds what engined reports about itself. The Makefile sets
// the variables at link time.
package version

import "runtime"

var (
	// Version is the engine's release, e.g. "0.1.0" or a git describe.
	Version = "dev"
	// GitCommit is the short commit the binaries were built from.
	GitCommit = "unknown"
	// BuildTime is RFC 3339, UTC.
	BuildTime = ""
)

const (
	// APIVersion is the Docker Engine API version engined implements.
	APIVersion = "1.51"
	// MinAPIVersion is the oldest API version clients may ask for:
	// Docker 28's default minimum. The gateway shapes replies for the
	// versions between it and APIVersion where they differ.
	MinAPIVersion = "1.24"
	// Product names the engine in the Server header and `docker version`.
	Product = "engined"
)

// GoVersion is the toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
