package daemon

import (
	"context"

	"github.com/engined/engined/internal/container"
	"github.com/engined/engined/internal/network"
)

// containerNetworks serves the container service's Networks interface
// from the network manager.
type containerNetworks struct{ m *network.Manager }

func (n containerNetworks) Attach(ctx context.Context, containerID, netnsPath string, req container.NetworkAttach) (*container.NetworkEndpoint, error) {
	ep, err := n.m.Attach(ctx, containerID, netnsPath, network.AttachRequest{Network: req.Network, IPv4Address: req.IPv4Address, MacAddress: req.MacAddress,
		Name: req.Name, Hostname: req.Hostname, Aliases: req.Aliases, DNS: req.DNS})
	if err != nil {
		return nil, err
	}
	return &container.NetworkEndpoint{NetworkName: ep.NetworkName, NetworkID: ep.NetworkID, EndpointID: ep.ID,
		IPAddress: ep.IPAddress, IPPrefixLen: ep.IPPrefixLen, Gateway: ep.Gateway, MacAddress: ep.MacAddress,
		Aliases: ep.Aliases, DNSNames: ep.DNSNames}, nil
}

func (n containerNetworks) AttachedContainers(ctx context.Context) ([]string, error) {
	return n.m.AttachedContainers(ctx)
}

func (n containerNetworks) Lookup(ctx context.Context, ref string) (string, error) {
	return n.m.Lookup(ref)
}

func (n containerNetworks) Detach(ctx context.Context, containerID string) error {
	return n.m.Detach(ctx, containerID)
}

func (n containerNetworks) Rename(ctx context.Context, containerID, name string) error {
	return n.m.Rename(ctx, containerID, name)
}
