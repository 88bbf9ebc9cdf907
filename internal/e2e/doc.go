// Package e2e holds engined's end-to-end tests: they build the binaries,
// start real engined processes as root and drive them with the real docker
// CLI (/usr/local/bin/docker), curl, the official Go client
// (github.com/moby/moby/client) and our own gRPC client.
package e2e
