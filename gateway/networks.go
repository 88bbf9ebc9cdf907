package gateway

import (
	"net"
	"net/netip"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// inspectResponse is a container's inspect document with API 1.51's
// NetworkSettings, which still has the deprecated top-level fields of
// the default network (IPAddress, Gateway, MacAddress, …) that newer Go
// types dropped; the outer field wins over the embedded one in JSON.
type inspectResponse struct {
	container.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

type legacyNetworkSettings struct {
	Bridge                 string
	SandboxID              string
	SandboxKey             string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	Ports                  network.PortMap
	SecondaryIPAddresses   []any
	SecondaryIPv6Addresses []any
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
	Networks               map[string]*network.EndpointSettings
}

func containerInspectJSON(c *enginev1.Container) inspectResponse {
	in := containerInspect(c)
	ns := c.GetNetworkSettings()
	out := &legacyNetworkSettings{SandboxID: ns.GetSandboxId(), SandboxKey: ns.GetSandboxKey(), Ports: network.PortMap{},
		Networks: in.NetworkSettings.Networks}
	// The top-level fields are the default bridge's endpoint, as dockerd's.
	if ep := ns.GetNetworks()["bridge"]; ep != nil {
		out.EndpointID, out.Gateway, out.IPAddress = ep.GetEndpointId(), ep.GetGateway(), ep.GetIpAddress()
		out.IPPrefixLen, out.MacAddress = int(ep.GetIpPrefixLen()), ep.GetMacAddress()
	}
	return inspectResponse{InspectResponse: in, NetworkSettings: out}
}

// networkSettings is the Go type's view of a container's networks.
func networkSettings(ns *enginev1.NetworkSettings) *container.NetworkSettings {
	out := &container.NetworkSettings{SandboxID: ns.GetSandboxId(), SandboxKey: ns.GetSandboxKey(), Ports: network.PortMap{},
		Networks: map[string]*network.EndpointSettings{}}
	for name, ep := range ns.GetNetworks() {
		out.Networks[name] = endpointSettings(ep)
	}
	return out
}

func endpointSettings(ep *enginev1.EndpointSettings) *network.EndpointSettings {
	es := &network.EndpointSettings{NetworkID: ep.GetNetworkId(), EndpointID: ep.GetEndpointId(), IPPrefixLen: int(ep.GetIpPrefixLen())}
	es.Gateway, _ = netip.ParseAddr(ep.GetGateway())
	es.IPAddress, _ = netip.ParseAddr(ep.GetIpAddress())
	if mac, err := net.ParseMAC(ep.GetMacAddress()); err == nil {
		es.MacAddress = network.HardwareAddr(mac)
	}
	return es
}
