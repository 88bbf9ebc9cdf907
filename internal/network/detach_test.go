package network

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// An ended container's endpoint goes at once (its address and ports are
// free for the next container) and its veth in the background; Close
// waits for that, so an engined that stops leaves none behind. The
// namespace is kept alive, as a container sharing it would, so the
// kernel unregisters the pair while Detach's caller has moved on.
func TestDetachDeletesTheVethByClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes a bridge, veths, a network namespace and an nftables table")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft command (Debian package nftables)")
	}
	ctx := context.Background()
	m := benchManager(t)
	ns := newNetns(t)
	defer ns.Close()
	containerID := newID()
	ep, err := m.Attach(ctx, containerID, "/proc/self/fd/"+strconv.Itoa(int(ns)), AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !linkExists(ep.HostVeth) {
		t.Fatalf("no veth %s after Attach", ep.HostVeth)
	}
	if err := m.Detach(ctx, containerID); err != nil {
		t.Fatal(err)
	}
	if eps, err := m.Endpoints(containerID); err != nil || len(eps) != 0 {
		t.Errorf("endpoints after Detach: %v, %v", eps, err)
	}
	m.Close()
	if linkExists(ep.HostVeth) {
		t.Errorf("veth %s still there after Close", ep.HostVeth)
	}
}
