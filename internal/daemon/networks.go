package daemon

import (
	"context"
	"fmt"

	"github.com/engined/engined/internal/config"

	"github.com/engined/engined/internal/container"
	"github.com/engined/engined/internal/network"
)

// containerNetworks serves the container service's Networks interface
// from the network manager.
type containerNetworks struct{ m *network.Manager }

func (n containerNetworks) Attach(ctx context.Context, containerID, netnsPath string, req container.NetworkAttach) (*container.NetworkEndpoint, error) {
	ar := network.AttachRequest{Network: req.Network, IPv4Address: req.IPv4Address, MacAddress: req.MacAddress,
		Name: req.Name, Hostname: req.Hostname, Aliases: req.Aliases, DNS: req.DNS}
	for _, p := range req.Ports {
		ar.Ports = append(ar.Ports, network.PortRequest{Proto: p.Proto, ContainerPort: p.ContainerPort, HostIP: p.HostIP,
			HostPortStart: p.HostPortStart, HostPortEnd: p.HostPortEnd})
	}
	ep, err := n.m.Attach(ctx, containerID, netnsPath, ar)
	if err != nil {
		return nil, err
	}
	out := &container.NetworkEndpoint{NetworkName: ep.NetworkName, NetworkID: ep.NetworkID, EndpointID: ep.ID,
		IPAddress: ep.IPAddress, IPPrefixLen: ep.IPPrefixLen, Gateway: ep.Gateway, MacAddress: ep.MacAddress,
		Aliases: ep.Aliases, DNSNames: ep.DNSNames}
	for _, b := range ep.Ports {
		out.Ports = append(out.Ports, container.PublishedPort{Proto: b.Proto, ContainerPort: b.ContainerPort, HostIP: b.HostIP, HostPort: b.HostPort})
	}
	return out, nil
}

func (n containerNetworks) AttachedContainers(ctx context.Context) ([]string, error) {
	return n.m.AttachedContainers(ctx)
}

func (n containerNetworks) Lookup(ctx context.Context, ref string) (string, string, error) {
	return n.m.Lookup(ref)
}

func (n containerNetworks) Detach(ctx context.Context, containerID string) error {
	return n.m.Detach(ctx, containerID)
}

func (n containerNetworks) Rename(ctx context.Context, containerID, name string) error {
	return n.m.Rename(ctx, containerID, name)
}

func (n containerNetworks) DetachNetwork(ctx context.Context, containerID, network string) error {
	return n.m.DetachNetwork(ctx, containerID, network)
}

// addressPools are --default-address-pool's, else daemon.json's
// default-address-pools; nil: dockerd's defaults.
func addressPools(cfg *config.Config) ([]network.AddressPool, error) {
	var out []network.AddressPool
	for _, f := range cfg.AddressPoolFlags {
		p, err := network.ParseAddressPool(f)
		if err != nil {
			return nil, fmt.Errorf("--default-address-pool: %w", err)
		}
		out = append(out, p)
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, c := range cfg.AddressPools {
		p, err := network.NewAddressPool(c.Base, c.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: default-address-pools: %w", cfg.ConfigFile, err)
		}
		out = append(out, p)
	}
	return out, nil
}
