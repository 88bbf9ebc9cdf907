//go:build cgo && seccomp

package sysinfo

// seccompBuilt: built with the tag that makes the shim's libcontainer
// apply seccomp profiles.
const seccompBuilt = true
