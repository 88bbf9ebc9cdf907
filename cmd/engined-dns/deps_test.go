package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The resolver stays small: none of engined's API, image or runtime
// packages (their init() and memory are what the separate binary saves).
func TestResolverLinksLittle(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "seccomp", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"google.golang.org/grpc", "google.golang.org/protobuf", "github.com/opencontainers/runc/",
			"github.com/engined/engined/gateway", "github.com/engined/engined/internal/container", "github.com/google/go-containerregistry",
			"go.etcd.io/bbolt", "sigs.k8s.io/knftables", "github.com/spf13/cobra"} {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("engined-dns links %s", pkg)
			}
		}
	}
}
