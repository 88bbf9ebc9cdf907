package network

import (
	"net/netip"
	"testing"
)

func TestCandidateSubnetsFollowDockerdsPools(t *testing.T) {
	c := candidateSubnets()
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
	got, err := pickSubnet([]netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("172.18.5.0/24")})
	if err != nil || got.String() != "172.19.0.0/16" {
		t.Fatalf("pickSubnet = %v, %v; want 172.19.0.0/16", got, err)
	}
	if _, err := pickSubnet([]netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}); err == nil {
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
		p, gw, err := subnetFor(c.subnet, c.gateway, taken)
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
