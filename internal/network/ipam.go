package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/engined/engined/internal/errdefs"
)

// AddressPool is one of dockerd's --default-address-pool: networks
// without a subnet of their own get one of Size bits from Base.
type AddressPool struct {
	Base netip.Prefix
	Size int
}

// DefaultAddressPools are dockerd's default local address pools
// (libnetwork/ipamutils): 172.17/16 … 172.31/16 and 192.168/16 in /20s.
var DefaultAddressPools = []AddressPool{
	{netip.MustParsePrefix("172.17.0.0/16"), 16},
	{netip.MustParsePrefix("172.18.0.0/16"), 16},
	{netip.MustParsePrefix("172.19.0.0/16"), 16},
	{netip.MustParsePrefix("172.20.0.0/14"), 16},
	{netip.MustParsePrefix("172.24.0.0/14"), 16},
	{netip.MustParsePrefix("172.28.0.0/14"), 16},
	{netip.MustParsePrefix("192.168.0.0/16"), 20},
}

// ParseAddressPool reads dockerd's --default-address-pool value,
// "base=10.10.0.0/16,size=24".
func ParseAddressPool(s string) (AddressPool, error) {
	var base, size string
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch strings.ToLower(k) {
		case "base":
			base = v
		case "size":
			size = v
		default:
			return AddressPool{}, fmt.Errorf("default address pool %q: unknown key %q (want base and size)", s, k)
		}
	}
	if base == "" || size == "" {
		return AddressPool{}, fmt.Errorf("default address pool %q: want base=<CIDR>,size=<prefix length>", s)
	}
	n, err := strconv.Atoi(size)
	if err != nil {
		return AddressPool{}, fmt.Errorf("default address pool %q: size %q is not a number", s, size)
	}
	return NewAddressPool(base, n)
}

// NewAddressPool is a pool of subnets of size bits from base (a
// daemon.json default-address-pools entry).
func NewAddressPool(base string, size int) (AddressPool, error) {
	b, err := netip.ParsePrefix(base)
	if err != nil || !b.Addr().Is4() {
		return AddressPool{}, fmt.Errorf("default address pool: base %q is not an IPv4 CIDR", base)
	}
	p := AddressPool{Base: b.Masked(), Size: size}
	return p, p.check()
}

func (p AddressPool) check() error {
	if p.Size < p.Base.Bits() || p.Size > 30 {
		return fmt.Errorf("default address pool %s: size %d must be between %d and 30", p.Base, p.Size, p.Base.Bits())
	}
	return nil
}

// eachSubnet calls fn with the pools' subnets in order until it returns
// true; the subnets are made one at a time (a /8 split into /30s is
// four million of them).
func eachSubnet(pools []AddressPool, fn func(netip.Prefix) bool) {
	for _, p := range pools {
		step := uint64(1) << (32 - p.Size)
		base := uint64(addrU32(p.Base.Masked().Addr()))
		n := uint64(1) << (p.Size - p.Base.Bits())
		for i := uint64(0); i < n; i++ {
			if fn(netip.PrefixFrom(u32Addr(uint32(base+i*step)), p.Size)) {
				return
			}
		}
	}
}

// pickSubnet is the first subnet of the pools that overlaps none of
// taken (the host's routes and the networks engined already has).
func pickSubnet(pools []AddressPool, taken []netip.Prefix) (netip.Prefix, error) {
	var found netip.Prefix
	eachSubnet(pools, func(c netip.Prefix) bool {
		if !overlapsAny(c, taken) {
			found = c
			return true
		}
		return false
	})
	if !found.IsValid() {
		return netip.Prefix{}, errors.New("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
	}
	return found, nil
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
