package network

import (
	"net/netip"
	"testing"
)

func TestCandidateSubnetsFollowDockerdsPools(t *testing.T) {
	var c []netip.Prefix
	eachSubnet(DefaultAddressPools, func(p netip.Prefix) bool { c = append(c, p); return false })
	want := map[int]string{0: "172.17.0.0/16", 1: "172.18.0.0/16", 2: "172.19.0.0/16", 3: "172.20.0.0/16", 14: "172.31.0.0/16", 15: "192.168.0.0/20", 30: "192.168.240.0/20"}
	for i, w := range want {
		if c[i].String() != w {
			t.Errorf("candidate %d = %s, want %s", i, c[i], w)
		}
	}
	if len(c) != 31 {
		t.Errorf("%d candidates, want 31", len(c))
	}
}

func TestPickSubnetSkipsRouted(t *testing.T) {
	got, err := pickSubnet(DefaultAddressPools, []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("172.18.5.0/24")})
	if err != nil || got.String() != "172.19.0.0/16" {
		t.Fatalf("pickSubnet = %v, %v; want 172.19.0.0/16", got, err)
	}
	if _, err := pickSubnet(DefaultAddressPools, []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}); err == nil {
		t.Fatal("pickSubnet found a subnet with every pool taken")
	}
}

func TestFirstFree(t *testing.T) {
	s := netip.MustParsePrefix("10.9.0.0/29")
	gw := gatewayOf(s)
	if gw.String() != "10.9.0.1" {
		t.Fatalf("gateway %s", gw)
	}
	used := map[netip.Addr]bool{}
	var got []string
	for {
		a, err := firstFree(s, s, gw, used)
		if err != nil {
			break
		}
		used[a] = true
		got = append(got, a.String())
	}
	// .0 is the network, .1 the gateway, .7 the broadcast address.
	if want := "[10.9.0.2 10.9.0.3 10.9.0.4 10.9.0.5 10.9.0.6]"; toString(got) != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
	delete(used, netip.MustParseAddr("10.9.0.4"))
	if a, _ := firstFree(s, s, gw, used); a.String() != "10.9.0.4" {
		t.Fatalf("a released address is not reused first: got %s", a)
	}
}

func TestRandomMACIsLocalUnicast(t *testing.T) {
	for i := 0; i < 100; i++ {
		m := randomMAC()
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("%s is not a locally administered unicast address", m)
		}
	}
}

func toString(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}

func TestSubnetFor(t *testing.T) {
	taken := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	for _, c := range []struct {
		subnet, gateway string
		want            string // subnet gateway, or "error"
	}{
		{"10.2.0.0/24", "", "10.2.0.0/24 10.2.0.1"},
		{"10.2.0.7/24", "10.2.0.254", "10.2.0.0/24 10.2.0.254"},
		{"10.1.3.0/24", "", "error"},         // overlaps
		{"10.2.0.0/24", "10.3.0.1", "error"}, // gateway outside
		{"10.2.0.0/24", "10.2.0.255", "error"},
		{"10.2.0.0/24", "10.2.0.0", "error"},
		{"", "10.2.0.1", "error"},
		{"fd00::/64", "", "error"},
		{"10.2.0.0/31", "", "error"},
	} {
		p, gw, err := subnetFor(DefaultAddressPools, c.subnet, c.gateway, taken)
		got := p.String() + " " + gw.String()
		if err != nil {
			got = "error"
		}
		if got != c.want {
			t.Errorf("subnetFor(%q, %q) = %s (%v), want %s", c.subnet, c.gateway, got, err, c.want)
		}
	}
}

func TestRequestedAddress(t *testing.T) {
	s := netip.MustParsePrefix("10.9.0.0/24")
	gw := gatewayOf(s)
	used := map[netip.Addr]bool{netip.MustParseAddr("10.9.0.2"): true}
	for in, ok := range map[string]bool{"10.9.0.50": true, "10.9.0.254": true, "10.9.0.2": false, "10.9.0.1": false,
		"10.9.0.0": false, "10.9.0.255": false, "10.8.0.5": false, "fd00::1": false, "x": false} {
		if _, err := requestedAddress(in, s, gw, used); (err == nil) != ok {
			t.Errorf("requestedAddress(%s): %v, want ok=%v", in, err, ok)
		}
	}
}

func TestAddressPools(t *testing.T) {
	p, err := ParseAddressPool("base=10.10.0.0/16,size=24")
	if err != nil || p.Base.String() != "10.10.0.0/16" || p.Size != 24 {
		t.Fatalf("ParseAddressPool = %+v, %v", p, err)
	}
	got, err := pickSubnet([]AddressPool{p}, []netip.Prefix{netip.MustParsePrefix("10.10.0.0/23")})
	if err != nil || got.String() != "10.10.2.0/24" {
		t.Errorf("pickSubnet = %v, %v; want 10.10.2.0/24", got, err)
	}
	// A /8 in /30s is walked lazily: the last one is found.
	big := AddressPool{netip.MustParsePrefix("10.0.0.0/8"), 30}
	if got, err := pickSubnet([]AddressPool{big}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/9"), netip.MustParsePrefix("10.128.0.0/10"),
		netip.MustParsePrefix("10.192.0.0/11"), netip.MustParsePrefix("10.224.0.0/12"), netip.MustParsePrefix("10.240.0.0/13"),
		netip.MustParsePrefix("10.248.0.0/14"), netip.MustParsePrefix("10.252.0.0/15"), netip.MustParsePrefix("10.254.0.0/16"),
		netip.MustParsePrefix("10.255.0.0/17"), netip.MustParsePrefix("10.255.128.0/18"), netip.MustParsePrefix("10.255.192.0/19"),
		netip.MustParsePrefix("10.255.224.0/20"), netip.MustParsePrefix("10.255.240.0/21"), netip.MustParsePrefix("10.255.248.0/22"),
		netip.MustParsePrefix("10.255.252.0/23"), netip.MustParsePrefix("10.255.254.0/24"), netip.MustParsePrefix("10.255.255.0/25"),
		netip.MustParsePrefix("10.255.255.128/26"), netip.MustParsePrefix("10.255.255.192/27"), netip.MustParsePrefix("10.255.255.224/28"),
		netip.MustParsePrefix("10.255.255.240/29")}); err != nil || got.String() != "10.255.255.248/30" {
		t.Errorf("last /30 of a /8: %v, %v", got, err)
	}
	for _, bad := range []string{"base=10.0.0.0/16", "size=24", "base=10.0.0.0/16,size=8", "base=x,size=24", "base=10.0.0.0/16,size=24,foo=1", "base=10.0.0.0/16,size=31"} {
		if _, err := ParseAddressPool(bad); err == nil {
			t.Errorf("ParseAddressPool(%q) accepted", bad)
		}
	}
}
