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
