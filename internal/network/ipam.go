package network

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/engined/engined/internal/errdefs"
)

// defaultPools are dockerd's default local address pools
// (libnetwork/ipamutils): 172.17/16 … 172.31/16 and 192.168/16 in /20s.
var defaultPools = []struct {
	base netip.Prefix
	size int
}{
	{netip.MustParsePrefix("172.17.0.0/16"), 16},
	{netip.MustParsePrefix("172.18.0.0/16"), 16},
	{netip.MustParsePrefix("172.19.0.0/16"), 16},
	{netip.MustParsePrefix("172.20.0.0/14"), 16},
	{netip.MustParsePrefix("172.24.0.0/14"), 16},
	{netip.MustParsePrefix("172.28.0.0/14"), 16},
	{netip.MustParsePrefix("192.168.0.0/16"), 20},
}

// candidateSubnets lists the subnets of the default pools in order.
func candidateSubnets() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range defaultPools {
		step := uint32(1) << (32 - p.size)
		base := addrU32(p.base.Addr())
		n := uint32(1) << (p.size - p.base.Bits())
		for i := uint32(0); i < n; i++ {
			out = append(out, netip.PrefixFrom(u32Addr(base+i*step), p.size))
		}
	}
	return out
}

// pickSubnet is the first default-pool subnet that overlaps none of
// taken (the host's routes and the networks engined already has).
func pickSubnet(taken []netip.Prefix) (netip.Prefix, error) {
	for _, c := range candidateSubnets() {
		if !overlapsAny(c, taken) {
			return c, nil
		}
	}
	return netip.Prefix{}, errors.New("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

func overlapsAny(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// firstFree is the lowest host address of pool (the network's
// --ip-range, or its subnet) that is neither the gateway nor in used;
// the subnet's network and broadcast addresses are never given.
func firstFree(subnet, pool netip.Prefix, gateway netip.Addr, used map[netip.Addr]bool) (netip.Addr, error) {
	subnet, pool = subnet.Masked(), pool.Masked()
	first, last := addrU32(subnet.Addr()), addrU32(subnet.Addr())|(1<<(32-subnet.Bits())-1)
	base := addrU32(pool.Addr())
	size := uint64(1) << (32 - pool.Bits())
	for i := uint64(0); i < size; i++ {
		v := base + uint32(i)
		a := u32Addr(v)
		if v == first || v == last || a == gateway || used[a] {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, errdefs.Unavailable(fmt.Errorf("no available IPv4 addresses on network %s", pool))
}

// gatewayOf is a subnet's first host address, dockerd's default gateway.
func gatewayOf(subnet netip.Prefix) netip.Addr {
	return u32Addr(addrU32(subnet.Masked().Addr()) + 1)
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// requestedAddress checks an address asked for (--ip): a host address of
// the subnet that is not the gateway and that no endpoint has.
func requestedAddress(s string, subnet netip.Prefix, gateway netip.Addr, used map[netip.Addr]bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	subnet = subnet.Masked()
	last := u32Addr(addrU32(subnet.Addr()) | (1<<(32-subnet.Bits()) - 1))
	switch {
	case err != nil || !a.Is4():
		return netip.Addr{}, errdefs.InvalidArgument(fmt.Errorf("invalid IPv4 address %q", s))
	case !subnet.Contains(a) || a == subnet.Addr() || a == last:
		return netip.Addr{}, errdefs.InvalidArgument(fmt.Errorf("no configured subnet or ip-range contain the IP address %s", a))
	case a == gateway || used[a]:
		return netip.Addr{}, errdefs.Conflict(fmt.Errorf("Address already in use: %s", a))
	}
	return a, nil
}
