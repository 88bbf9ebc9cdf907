package network

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"sigs.k8s.io/knftables"
)

// Published ports in engined's table. The chains and rules are fixed
// (rewritten with the rest of the table when networks change, the
// elements put back in the same transaction); each published port is
// one element of a map, so publishing or releasing a container's ports
// is an element add or delete in one transaction, never a rewrite:
//
//	map host-ports { type inet_proto . inet_service : ipv4_addr . inet_service
//	  elements = { tcp . 8080 comment "web 0123456789ab" : 172.17.0.2 . 80 } }     # -p 8080:80
//	map addr-ports { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//	  elements = { 127.0.0.1 . tcp . 8081 : 172.17.0.3 . 80 } }                   # -p 127.0.0.1:8081:80
//	chain published {
//	  dnat ip to ip daddr . meta l4proto . th dport map @addr-ports
//	  dnat ip to meta l4proto . th dport map @host-ports }
//	chain prerouting { type nat hook prerouting priority dstnat;    # other hosts, containers
//	  ip daddr != 127.0.0.0/8 fib daddr type local jump published }
//	chain output { type nat hook output priority -100;              # the host itself
//	  fib daddr type local jump published }
//	chain raw-prerouting { type filter hook prerouting priority raw;
//	  iifname "engined0" ip daddr 127.0.0.0/8 drop }
//	postrouting, per bridge:
//	  oifname "engined0" ip saddr 127.0.0.0/8 masquerade              # host's 127.0.0.1:PORT
//	  oifname "engined0" ip saddr 172.17.0.0/16 ct status dnat masquerade   # hairpin
//
// Only the host's own packets (the output hook) are DNATed when they
// are addressed to 127.0.0.0/8: a packet for 127.0.0.1 arriving on
// another interface is never forwarded to a container, so -p
// 127.0.0.1:X:Y is not reachable from other hosts ("remote loopback").
// The bridges have route_localnet=1, so the host's 127.0.0.1 traffic can
// be routed to a container (and masqueraded to the gateway address);
// the raw drop keeps containers from reaching the host's loopback
// services through that.
const (
	mapHostPorts  = "host-ports"
	mapAddrPorts  = "addr-ports"
	chainPorts    = "published"
	loopbackRange = "127.0.0.0/8"
)

// addPortChains adds the maps, with every published port, and the
// chains of published ports.
func (f *firewall) addPortChains(tx *knftables.Transaction) error {
	tx.Add(&knftables.Map{Name: mapHostPorts, Type: "inet_proto . inet_service : ipv4_addr . inet_service",
		Comment: knftables.PtrTo("published ports on every host address: proto . port : container address . port")})
	tx.Add(&knftables.Map{Name: mapAddrPorts, Type: "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
		Comment: knftables.PtrTo("published ports on one host address: address . proto . port : container address . port")})
	// Whether a flush of the table empties maps differs between nft
	// versions (and knftables' fake): the elements are put back here,
	// in the rewrite's transaction, so ports answer throughout.
	tx.Flush(&knftables.Map{Name: mapHostPorts})
	tx.Flush(&knftables.Map{Name: mapAddrPorts})
	if f.published != nil {
		els, err := f.published()
		if err != nil {
			return err
		}
		for _, e := range els {
			tx.Add(e)
		}
	}
	tx.Add(&knftables.Chain{Name: chainPorts, Comment: knftables.PtrTo("DNAT of published ports")})
	tx.Add(&knftables.Rule{Chain: chainPorts, Rule: "dnat ip to ip daddr . meta l4proto . th dport map @" + mapAddrPorts})
	tx.Add(&knftables.Rule{Chain: chainPorts, Rule: "dnat ip to meta l4proto . th dport map @" + mapHostPorts})
	tx.Add(&knftables.Chain{Name: "prerouting", Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(knftables.PreroutingHook),
		Priority: knftables.PtrTo(knftables.DNATPriority)})
	tx.Add(&knftables.Rule{Chain: "prerouting", Rule: knftables.Concat("ip daddr !=", loopbackRange, "fib daddr type local jump", chainPorts),
		Comment: knftables.PtrTo("published ports, from other hosts and containers; never for 127.0.0.0/8 (remote loopback)")})
	// nft 1.0.6 knows "dstnat" for prerouting only: the output hook's
	// priority is the number.
	tx.Add(&knftables.Chain{Name: "output", Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(knftables.OutputHook),
		Priority: knftables.PtrTo(knftables.BaseChainPriority("-100"))})
	tx.Add(&knftables.Rule{Chain: "output", Rule: knftables.Concat("fib daddr type local jump", chainPorts),
		Comment: knftables.PtrTo("published ports, from the host itself (127.0.0.1 and its other addresses)")})
	tx.Add(&knftables.Chain{Name: "raw-prerouting", Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(knftables.PreroutingHook),
		Priority: knftables.PtrTo(knftables.RawPriority)})
	return nil
}

// addPortRules are a bridge's rules for published ports.
func addPortRules(tx *knftables.Transaction, n *Network) {
	if n.Internal {
		return // ports are not published on internal networks
	}
	c := knftables.PtrTo("net " + n.ID[:12])
	tx.Add(&knftables.Rule{Chain: "raw-prerouting", Rule: knftables.Concat("iifname", quote(n.Bridge), "ip daddr", loopbackRange, "drop"), Comment: c})
	tx.Add(&knftables.Rule{Chain: "postrouting", Rule: knftables.Concat("oifname", quote(n.Bridge), "ip saddr", loopbackRange, "masquerade"), Comment: c})
	tx.Add(&knftables.Rule{Chain: "postrouting", Rule: knftables.Concat("oifname", quote(n.Bridge), "ip saddr", n.Subnet, "ct status dnat masquerade"), Comment: c})
}

// portElement is a binding's DNAT map element.
func portElement(ep *Endpoint, b PortBinding, comment string) *knftables.Element {
	port, cport := strconv.Itoa(int(b.HostPort)), strconv.Itoa(int(b.ContainerPort))
	e := &knftables.Element{Map: mapHostPorts, Key: []string{b.Proto, port}, Value: []string{ep.IPAddress, cport}}
	if ip, err := netip.ParseAddr(b.HostIP); err == nil && !ip.IsUnspecified() {
		e.Map, e.Key = mapAddrPorts, []string{ip.String(), b.Proto, port}
	}
	if comment != "" {
		e.Comment = knftables.PtrTo(comment)
	}
	return e
}

// elementComment names the container in its elements (nft keeps at
// most 128 bytes of a comment).
func elementComment(name, containerID string) string {
	c := "ctr " + short(containerID)
	if name != "" && len(name) <= 100 {
		c = name + " " + short(containerID)
	}
	return c
}

// addPorts adds an endpoint's published ports, in one transaction.
func (f *firewall) addPorts(ctx context.Context, ep *Endpoint, comment string) error {
	if len(ep.Ports) == 0 {
		return nil
	}
	if err := f.ready(ctx); err != nil {
		return err
	}
	tx := f.nft.NewTransaction()
	for _, b := range ep.Ports {
		tx.Add(portElement(ep, b, comment))
	}
	if err := f.nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("publish ports: %w", err)
	}
	return nil
}

// deletePorts removes an endpoint's published ports; ones that are not
// there are no error (each is added first, in the same transaction,
// which the kernel takes as nothing for an element that exists).
func (f *firewall) deletePorts(ctx context.Context, ep *Endpoint) error {
	if len(ep.Ports) == 0 {
		return nil
	}
	if err := f.ready(ctx); err != nil {
		return err
	}
	tx := f.nft.NewTransaction()
	for _, b := range ep.Ports {
		tx.Add(portElement(ep, b, ""))
		tx.Delete(portElement(ep, b, ""))
	}
	if err := f.nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("unpublish ports: %w", err)
	}
	return nil
}
