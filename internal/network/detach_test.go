package network

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
)

// An ended container's endpoint goes at once (its address and ports are
// free for the next container), its veth is down at once and deleted in
// the background, and Close waits for that deletion, so an engined that
// stops leaves none behind. The namespace is kept alive, as a container
// sharing it would keep it. The deletion is held until Close has begun.
func TestDetachDeletesTheVethByClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes a bridge, veths, a network namespace and an nftables table")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft command (Debian package nftables)")
	}
	ctx := context.Background()
	m := benchManager(t)
	release, deleted := make(chan struct{}), make(chan struct{})
	m.deleteVeth = func(l netlink.Link) error {
		<-release
		defer close(deleted)
		return deleteVeth(l)
	}
	ns := newNetns(t)
	defer ns.Close()
	containerID := newID()
	ep, err := m.Attach(ctx, containerID, "/proc/self/fd/"+strconv.Itoa(int(ns)), AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, containerID); err != nil {
		t.Fatal(err)
	}
	if eps, err := m.Endpoints(containerID); err != nil || len(eps) != 0 {
		t.Errorf("endpoints after Detach: %v, %v", eps, err)
	}
	link, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		t.Fatalf("veth %s gone before its deletion ran: %v", ep.HostVeth, err)
	}
	if link.Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("veth %s still up after Detach", ep.HostVeth)
	}
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	close(release)
	<-closed
	select {
	case <-deleted:
	default:
		t.Fatal("Close returned before the veth's deletion ended")
	}
	if linkExists(ep.HostVeth) {
		t.Errorf("veth %s still there after Close", ep.HostVeth)
	}
}
