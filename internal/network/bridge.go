package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ensureBridge makes the network's bridge exist, up, with the gateway
// address (an existing bridge of that name is reused).
func ensureBridge(n *Network, mtu int) error {
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return err
	}
	gw, err := netip.ParseAddr(n.Gateway)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(n.Bridge)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = n.Bridge, mtu
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge: %w", err)
		}
		link, err = netlink.LinkByName(n.Bridge)
	}
	if err != nil {
		return err
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is not a bridge (%s)", n.Bridge, link.Type())
	}
	want := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	have := false
	for _, a := range addrs {
		// Other addresses stay: -b may name a bridge engined did not make.
		have = have || a.IPNet.String() == want.IPNet.String()
	}
	if !have {
		if err := netlink.AddrAdd(link, want); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("address %s: %w", want.IPNet, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return err
	}
	return routeLocalnet(n)
}

// plugVeth creates the endpoint's veth pair with the container end in
// the namespace at netnsPath, named ep.IfName, with the endpoint's
// address and MAC, and the default route
// through the gateway if the namespace has none yet (the first network
// a container joins gives its way out, as dockerd's).
func plugVeth(n *Network, ep *Endpoint, netnsPath string, mtu int) (err error) {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	mac, err := net.ParseMAC(ep.MacAddress)
	if err != nil {
		return err
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("container network namespace: %w", err)
	}
	defer ns.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.MasterIndex = ep.HostVeth, mtu, br.Attrs().Index
	// The peer is made in the container's namespace, under its name
	// there (ep.IfName, free in that namespace; the host's own eth0
	// does not matter).
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ep.IfName, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(ns)), PeerMTU: uint32(mtu)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", ep.HostVeth, err)
	}
	defer func() {
		if err != nil {
			deleteLink(ep.HostVeth)
		}
	}()
	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}
	// ICC off: the bridge does not forward between isolated ports, so
	// the containers reach the gateway (and published ports) only. A
	// kernel setting, it holds while engined is down.
	if !n.icc() {
		if err := netlink.LinkSetIsolated(host, true); err != nil {
			return fmt.Errorf("isolate %s (icc off): %w", ep.HostVeth, err)
		}
	}
	// Hairpin: with br_netfilter, a container's packet to its own
	// published port is DNATed on the bridge and must go back out the
	// port it came in on.
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin mode on %s: %w", ep.HostVeth, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	in, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("veth in the container: %w", err)
	}
	ip, err := netip.ParseAddr(ep.IPAddress)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(ep.IPPrefixLen, 32)}}
	if err := h.AddrAdd(in, addr); err != nil {
		return fmt.Errorf("address %s: %w", addr.IPNet, err)
	}
	if err := h.LinkSetUp(in); err != nil {
		return err
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		h.LinkSetUp(lo)
	}
	if n.Internal {
		return nil // no way out: no default route
	}
	return defaultRoute(h, in, ep.Gateway)
}

// freeEthName is the lowest ethN no link in the namespace at netnsPath
// has: the name of the container's next interface.
func freeEthName(netnsPath string) (string, error) {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return "", fmt.Errorf("container network namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return "", fmt.Errorf("links in the container: %w", err)
	}
	taken := map[string]bool{}
	for _, l := range links {
		taken[l.Attrs().Name] = true
	}
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !taken[name] {
			return name, nil
		}
	}
}

// defaultRoute routes the namespace's traffic through gateway on link,
// unless it has a default route already.
func defaultRoute(h *netlink.Handle, link netlink.Link, gateway string) error {
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("routes in the container: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
			return nil
		}
	}
	gw, err := netip.ParseAddr(gateway)
	if err != nil {
		return err
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice(), Scope: netlink.SCOPE_UNIVERSE}); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// restoreDefaultRoute gives the namespace at netnsPath a default route
// through the first of eps (endpoints still attached, on networks that
// are not internal) when it lost its own with a disconnected network.
func restoreDefaultRoute(netnsPath string, eps []*Endpoint) error {
	if len(eps) == 0 {
		return nil
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("container network namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(eps[0].IfName)
	if err != nil {
		return fmt.Errorf("%s in the container: %w", eps[0].IfName, err)
	}
	return defaultRoute(h, link, eps[0].Gateway)
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// deleteLink removes a link; one that does not exist is not an error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return err
	}
	return deleteVeth(link)
}

// deleteVeth removes a link; one already gone is not an error.
func deleteVeth(link netlink.Link) error {
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// setLinkDown finds a link by name and sets it down; nil, nil if there
// is none.
func setLinkDown(name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetDown(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return nil, fmt.Errorf("set %s down: %w", name, err)
	}
	return link, nil
}

// bridgePorts names the veths enslaved to a bridge.
func bridgePorts(bridge string) []string {
	ports, err := vethPorts()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range ports.of(bridge) {
		out = append(out, p.name)
	}
	return out
}

// vethPort is a veth enslaved to a bridge.
type vethPort struct {
	name     string
	isolated bool
}

// portsByBridge are the veth ports of each bridge, by its index.
type portsByBridge map[int][]vethPort

func (p portsByBridge) of(bridge string) []vethPort {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return nil
	}
	return p[br.Attrs().Index]
}

// vethPorts lists every bridge's veths with their isolation in two
// netlink dumps, however many there are: engined's start reads them all,
// and a request per port was most of its network setup with 100
// containers running.
func vethPorts() (portsByBridge, error) {
	veths, err := dumpLinks(unix.AF_UNSPEC, "veth")
	if err != nil {
		return nil, fmt.Errorf("list veths: %w", err)
	}
	// Isolation is a bridge port's attribute, reported in the bridge
	// family's dump only.
	brports, err := dumpLinks(unix.AF_BRIDGE, "")
	if err != nil {
		return nil, fmt.Errorf("list bridge ports: %w", err)
	}
	isolated := map[int32]bool{}
	for _, l := range brports {
		isolated[l.index] = l.isolated
	}
	out := portsByBridge{}
	for _, l := range veths {
		if l.master != 0 {
			out[int(l.master)] = append(out[int(l.master)], vethPort{name: l.name, isolated: isolated[l.index]})
		}
	}
	return out, nil
}

// rtextFilterSkipStats is linux/rtnetlink.h's RTEXT_FILTER_SKIP_STATS.
const rtextFilterSkipStats = 1 << 3

// dumpedLink is what vethPorts needs of a link in a dump.
type dumpedLink struct {
	index, master int32
	name, kind    string
	isolated      bool // a bridge port's, in the bridge family's dump
}

// dumpLinks lists the links of an address family, only those of one
// kind if kind is set (the kernel filters them). A dump interrupted by a
// change is taken again. Only the attributes vethPorts uses are read:
// netlink's LinkDeserialize decodes every one of them, and was half the
// time of the dumps with 100 veths.
func dumpLinks(family int, kind string) ([]dumpedLink, error) {
	for try := 0; ; try++ {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(family))
		// Without the counters: a quarter of a veth's message.
		req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
		if kind != "" {
			info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
			info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated(kind))
			req.AddData(info)
		}
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		links := make([]dumpedLink, 0, len(msgs))
		for _, m := range msgs {
			l, err := parseDumpedLink(m)
			if err != nil {
				return nil, err
			}
			// A kernel that does not filter by kind lists them all.
			if kind == "" || l.kind == kind {
				links = append(links, l)
			}
		}
		return links, nil
	}
}

func parseDumpedLink(m []byte) (dumpedLink, error) {
	if len(m) < unix.SizeofIfInfomsg {
		return dumpedLink{}, fmt.Errorf("link message of %d bytes", len(m))
	}
	l := dumpedLink{index: nl.DeserializeIfInfomsg(m).Index}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return dumpedLink{}, fmt.Errorf("link %d: %w", l.index, err)
	}
	for _, a := range attrs {
		switch a.Attr.Type &^ unix.NLA_F_NESTED {
		case unix.IFLA_IFNAME:
			l.name = string(bytes.TrimRight(a.Value, "\x00"))
		case unix.IFLA_MASTER:
			if len(a.Value) >= 4 {
				l.master = int32(nl.NativeEndian().Uint32(a.Value))
			}
		case unix.IFLA_LINKINFO:
			if info, err := nl.ParseRouteAttr(a.Value); err == nil {
				for _, i := range info {
					if i.Attr.Type == nl.IFLA_INFO_KIND {
						l.kind = string(bytes.TrimRight(i.Value, "\x00"))
					}
				}
			}
		case unix.IFLA_PROTINFO:
			if pi, err := nl.ParseRouteAttr(a.Value); err == nil {
				for _, p := range pi {
					if p.Attr.Type&^unix.NLA_F_NESTED == nl.IFLA_BRPORT_ISOLATED && len(p.Value) > 0 {
						l.isolated = p.Value[0] != 0
					}
				}
			}
		}
	}
	return l, nil
}

// routedPrefixes are the IPv4 destinations the host routes, other than
// through except (a bridge of engined's own) and the default route.
func routedPrefixes(except string) ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	skip := -1
	if l, err := netlink.LinkByName(except); err == nil {
		skip = l.Attrs().Index
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == skip {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if ones == 0 {
			continue
		}
		if a, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok {
			out = append(out, netip.PrefixFrom(a, ones).Masked())
		}
	}
	return out, nil
}

// bridgeSubnet is the IPv4 address (with prefix) an existing bridge has.
func bridgeSubnet(bridge string) (netip.Prefix, bool) {
	l, err := netlink.LinkByName(bridge)
	if err != nil {
		return netip.Prefix{}, false
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(addrs[0].IP.To4())
	ones, _ := addrs[0].Mask.Size()
	return netip.PrefixFrom(a, ones), ok
}

// isolatePort sets a bridge port's isolation (ICC off) as wanted.
func isolatePort(name string, isolated bool) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetIsolated(link, isolated)
}
