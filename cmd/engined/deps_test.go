package main

import (
	"os/exec"
	"strings"
	"testing"
)

// engined does not link libcontainer or libseccomp: only the shim runs
// containers, and every package init() linked here would also slow
// engined's start for nothing.
func TestEnginedDoesNotLinkTheRuntime(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "seccomp", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/opencontainers/runc/") || strings.HasPrefix(pkg, "github.com/seccomp/") {
			t.Errorf("engined links %s", pkg)
		}
	}
}

// The shim links none of engined's networking: engined sets up container
// networks between the shim's create and start, and every package the
// shim links runs its init() again in each container start. (netlink
// itself comes with libcontainer, which brings up the loopback.)
func TestShimDoesNotLinkNetworking(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "seccomp", "-deps", "../shim").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"sigs.k8s.io/knftables", "github.com/google/nftables", "github.com/engined/engined/internal/network"} {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("the shim links %s", pkg)
			}
		}
	}
}
