package network

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNewNetns runs the rest of the test on this goroutine's thread in a
// new, empty network namespace.
func inNewNetns(t testing.TB) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer orig.Close()
		ns.Close()
		// A thread left in the wrong namespace stays locked and ends
		// with its goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	})
}

func TestVethPortsReadIsolation(t *testing.T) {
	inNewNetns(t)
	for _, br := range []string{"br0", "br1"} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = br
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	br0, _ := netlink.LinkByName("br0")
	br1, _ := netlink.LinkByName("br1")
	// Three veths on br0 (the second isolated), one on br1, one on no
	// bridge, and a tap on br0 (not a veth).
	for i, master := range []netlink.Link{br0, br0, br0, br1, nil} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = fmt.Sprintf("v%d", i)
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: fmt.Sprintf("p%d", i)}); err != nil {
			t.Fatal(err)
		}
		l, _ := netlink.LinkByName(attrs.Name)
		if master == nil {
			continue
		}
		if err := netlink.LinkSetMaster(l, master); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := netlink.LinkSetIsolated(l, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	tap := netlink.NewLinkAttrs()
	tap.Name = "t0"
	if err := netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: tap, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS}); err != nil {
		t.Fatal(err)
	}
	if l, err := netlink.LinkByName("t0"); err != nil || netlink.LinkSetMaster(l, br0) != nil {
		t.Fatal("enslave the tap", err)
	}
	ports, err := vethPorts()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]vethPort{{"v0", false}, {"v1", true}, {"v2", false}})
	if got := fmt.Sprint(ports.of("br0")); got != want {
		t.Errorf("br0's ports: %s, want %s", got, want)
	}
	if got := fmt.Sprint(ports.of("br1")); got != fmt.Sprint([]vethPort{{"v3", false}}) {
		t.Errorf("br1's ports: %s", got)
	}
	if len(ports) != 2 {
		t.Errorf("ports of %d bridges listed, want 2: %v", len(ports), ports)
	}
	if got := fmt.Sprint(bridgePorts("br0")); got != "[v0 v1 v2]" {
		t.Errorf("bridgePorts(br0) = %s", got)
	}
}

// The start's read of 100 bridge ports and their isolation.
func BenchmarkVethPorts(b *testing.B) {
	inNewNetns(b)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "br0"
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		b.Fatal(err)
	}
	br, _ := netlink.LinkByName("br0")
	for i := range 100 {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MasterIndex = fmt.Sprintf("v%d", i), br.Attrs().Index
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: fmt.Sprintf("p%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		ports, err := vethPorts()
		if err != nil || len(ports.of("br0")) != 100 {
			b.Fatal(len(ports.of("br0")), err)
		}
	}
}
