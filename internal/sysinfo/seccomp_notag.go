//go:build !cgo || !seccomp

package sysinfo

// seccompBuilt: built without the seccomp tag, so the shim's libcontainer
// applies no seccomp profile.
const seccompBuilt = false
