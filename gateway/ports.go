package gateway

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Published ports between Docker's JSON shapes and the Engine API's.

// portBindings flattens HostConfig.PortBindings, in port order.
func portBindings(pm network.PortMap) []*enginev1.PortBinding {
	var out []*enginev1.PortBinding
	for port, bs := range pm {
		for _, b := range bs {
			pb := &enginev1.PortBinding{ContainerPort: port.String(), HostPort: b.HostPort}
			if b.HostIP.IsValid() {
				pb.HostIp = b.HostIP.String()
			}
			out = append(out, pb)
		}
		// "80/tcp": [] publishes nothing, as dockerd takes it (but
		// for -P, which publishes every exposed port).
	}
	slices.SortStableFunc(out, func(a, b *enginev1.PortBinding) int { return comparePort(a.GetContainerPort(), b.GetContainerPort()) })
	return out
}

func comparePort(a, b string) int {
	pa, _ := network.ParsePort(a)
	pb, _ := network.ParsePort(b)
	return cmp.Or(cmp.Compare(pa.Num(), pb.Num()), cmp.Compare(pa.Proto(), pb.Proto()))
}

// portMap is NetworkSettings.Ports: an exposed port without bindings is
// null.
func portMap(ports map[string]*enginev1.HostPorts) network.PortMap {
	out := network.PortMap{}
	for p, hp := range ports {
		port, err := network.ParsePort(p)
		if err != nil {
			continue
		}
		var bs []network.PortBinding
		for _, b := range hp.GetBindings() {
			pb := network.PortBinding{HostPort: b.GetHostPort()}
			pb.HostIP, _ = netip.ParseAddr(b.GetHostIp())
			bs = append(bs, pb)
		}
		out[port] = bs
	}
	return out
}

// portSummaries are the Ports of GET /containers/json: one per binding,
// and one without a public port per exposed port that has none.
func portSummaries(ports map[string]*enginev1.HostPorts) []container.PortSummary {
	out := []container.PortSummary{}
	for p, hp := range ports {
		port, err := network.ParsePort(p)
		if err != nil {
			continue
		}
		if len(hp.GetBindings()) == 0 {
			out = append(out, container.PortSummary{PrivatePort: port.Num(), Type: string(port.Proto())})
		}
		for _, b := range hp.GetBindings() {
			ps := container.PortSummary{PrivatePort: port.Num(), Type: string(port.Proto())}
			ps.IP, _ = netip.ParseAddr(b.GetHostIp())
			if n, err := strconv.ParseUint(b.GetHostPort(), 10, 16); err == nil {
				ps.PublicPort = uint16(n)
			}
			out = append(out, ps)
		}
	}
	slices.SortFunc(out, func(a, b container.PortSummary) int {
		return cmp.Or(cmp.Compare(a.PrivatePort, b.PrivatePort), cmp.Compare(a.Type, b.Type), cmp.Compare(a.PublicPort, b.PublicPort))
	})
	return out
}
