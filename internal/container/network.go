package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/engined/engined/internal/errdefs"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Networks is what the container service needs of networking (the
// daemon wires internal/network behind it): attach a container's network
// namespace to a network between the runtime's create and start, and
// detach all of a container's endpoints when it stops or goes.
type Networks interface {
	// Attach gives the namespace at netnsPath an interface on the
	// network named in req, with an address of its own.
	Attach(ctx context.Context, containerID, netnsPath string, req NetworkAttach) (*NetworkEndpoint, error)
	// Detach removes every endpoint of the container and releases its
	// addresses; detaching a container that has none is not an error.
	Detach(ctx context.Context, containerID string) error
	// Lookup resolves a network's name, ID or ID prefix to its name.
	Lookup(ctx context.Context, ref string) (string, error)
	// AttachedContainers lists the containers that have endpoints.
	AttachedContainers(ctx context.Context) ([]string, error)
	// Rename gives the container's endpoints its new name on the
	// networks' DNS (dockerd's rename does); name has no slash.
	Rename(ctx context.Context, containerID, name string) error
}

// NetworkAttach is what a container asks of a network.
type NetworkAttach struct {
	Network     string // "bridge", or a network's name or ID
	IPv4Address string // "": the first free one
	MacAddress  string // "": random
	// Names on a user-defined network's embedded DNS: the container's
	// name and hostname and its --network-alias aliases; DNS: its --dns
	// servers, which that DNS forwards other names to.
	Name     string
	Hostname string
	Aliases  []string
	DNS      []string
}

// endpointRequest checks --ip and --mac-address and records them.
func endpointRequest(rec *Record, hc *enginev1.HostConfig, ep *enginev1.EndpointConfig) error {
	if err := aliasRequest(rec, hc, ep.GetAliases()); err != nil {
		return err
	}
	ip, mac := ep.GetIpv4Address(), ep.GetMacAddress()
	if ip == "" && mac == "" {
		return nil
	}
	if !bridged(hc) {
		return errdefs.InvalidArgument(fmt.Errorf("conflicting options: --ip and --mac-address need a bridge network, not network mode %s", hc.GetNetworkMode()))
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return errdefs.InvalidArgument(fmt.Errorf("invalid MAC address: %s", mac))
		}
		if hw[0]&1 != 0 {
			return errdefs.InvalidArgument(fmt.Errorf("invalid MAC address %s: a multicast address", mac))
		}
		rec.RequestedMAC = hw.String()
	}
	if ip != "" {
		if hc.GetNetworkMode() == "bridge" {
			return errdefs.InvalidArgument(errors.New("user specified IP address is supported on user defined networks only"))
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			return errdefs.InvalidArgument(fmt.Errorf("invalid IPv4 address: %s", ip))
		}
		rec.RequestedIP = a.String()
	}
	return nil
}

// NetworkEndpoint is a container's attachment, as inspect shows it.
type NetworkEndpoint struct {
	NetworkName string `json:"networkName"`
	NetworkID   string `json:"networkID"`
	EndpointID  string `json:"endpointID"`
	IPAddress   string `json:"ipAddress"`
	IPPrefixLen int    `json:"ipPrefixLen"`
	Gateway     string `json:"gateway"`
	MacAddress  string `json:"macAddress"`
	// Aliases as asked for; DNSNames: the names the network's DNS has
	// for the container (user-defined networks only). Both stay after
	// the container stops, as dockerd's.
	Aliases  []string `json:"aliases,omitempty"`
	DNSNames []string `json:"dnsNames,omitempty"`
}

// bridged: the container's network mode attaches it to a network (the
// default bridge or a user-defined one), not none or host.
func bridged(hc *enginev1.HostConfig) bool {
	switch m := hc.GetNetworkMode(); {
	case m == "none", m == "host", strings.HasPrefix(m, "container:"):
		return false
	}
	return true
}

// checkNetwork, at create, makes sure the network a container is to be
// attached to exists (it is looked up again at each start).
func (s *Service) checkNetwork(ctx context.Context, hc *enginev1.HostConfig) error {
	if !bridged(hc) || hc.GetNetworkMode() == "bridge" {
		return nil
	}
	if s.cfg.Networks == nil {
		return errdefs.NotFound(fmt.Errorf("network %s not found", hc.GetNetworkMode()))
	}
	name, err := s.cfg.Networks.Lookup(ctx, hc.GetNetworkMode())
	if err != nil {
		return err
	}
	if name == "host" || name == "none" {
		return errdefs.InvalidArgument(fmt.Errorf("network %s: use --network %s", hc.GetNetworkMode(), name))
	}
	return nil
}

// Name is a container's name without its leading slash ("" if none).
func (s *Service) Name(id string) string {
	r, err := s.get(id)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(r.Name, "/")
}

// attachNetworks connects the container whose init (created, not yet
// started) is pid to its network, records the endpoint and writes the
// container's own address into its /etc/hosts.
func (s *Service) attachNetworks(ctx context.Context, rec *Record, cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig, pid int) error {
	if !bridged(hc) {
		return nil
	}
	if s.cfg.Networks == nil {
		return fmt.Errorf("network mode %s: engined has no networking", hc.GetNetworkMode())
	}
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	dns, _, _ := s.dnsSettings(hc)
	ep, err := s.cfg.Networks.Attach(ctx, rec.ID, nsPath, NetworkAttach{Network: hc.GetNetworkMode(), IPv4Address: rec.RequestedIP, MacAddress: rec.RequestedMAC,
		Name: rec.Name, Hostname: cfg.GetHostname(), Aliases: rec.Aliases, DNS: dns})
	if err != nil {
		return err
	}
	if _, err := s.update(rec.ID, func(r *Record) error {
		r.Networks = map[string]*NetworkEndpoint{ep.NetworkName: ep}
		r.SandboxKey = nsPath
		return nil
	}); err != nil {
		return err
	}
	hosts, err := hostsFile(cfg.GetHostname(), false, hc.GetExtraHosts(), ep.IPAddress)
	if err != nil {
		return err
	}
	// In place: the file is bind-mounted into the container already.
	return os.WriteFile(filepath.Join(s.containerDir(rec.ID), "hosts"), []byte(hosts), 0o644)
}

// detachNetworks releases the container's endpoints; inspect keeps the
// networks it is on, without addresses, as dockerd's does.
func (s *Service) detachNetworks(id string) {
	if s.cfg.Networks == nil {
		return
	}
	if err := s.cfg.Networks.Detach(context.Background(), id); err != nil {
		s.cfg.Logger.Warn("detach container from its networks", "id", id, "err", err)
	}
	s.update(id, func(r *Record) error {
		for _, ep := range r.Networks {
			*ep = NetworkEndpoint{NetworkName: ep.NetworkName, NetworkID: ep.NetworkID, Aliases: ep.Aliases, DNSNames: ep.DNSNames}
		}
		r.SandboxKey = ""
		return nil
	})
}

// networkSettings is inspect's view of the record's endpoints.
func networkSettings(r *Record, hc *enginev1.HostConfig) *enginev1.NetworkSettings {
	ns := &enginev1.NetworkSettings{SandboxKey: r.SandboxKey, Networks: map[string]*enginev1.EndpointSettings{}}
	if r.SandboxKey != "" {
		ns.SandboxId = r.ID
	}
	for name, ep := range r.Networks {
		ns.Networks[name] = &enginev1.EndpointSettings{NetworkId: ep.NetworkID, EndpointId: ep.EndpointID, Gateway: ep.Gateway,
			IpAddress: ep.IPAddress, IpPrefixLen: int32(ep.IPPrefixLen), MacAddress: ep.MacAddress, Aliases: ep.Aliases, DnsNames: ep.DNSNames}
	}
	if len(ns.Networks) == 0 {
		switch m := hc.GetNetworkMode(); m {
		case "bridge", "host", "none":
			ns.Networks[m] = &enginev1.EndpointSettings{}
		}
	}
	return ns
}

// reconcileNetworks, at engined's start, releases the endpoints of
// containers that do not run (they exited while engined was down, or
// engined died in their start or removal), each under its container's
// lock so a start under way is never undone.
func (s *Service) reconcileNetworks(ctx context.Context) {
	if s.cfg.Networks == nil {
		return
	}
	ids, err := s.cfg.Networks.AttachedContainers(ctx)
	if err != nil {
		s.cfg.Logger.Warn("list network endpoints", "err", err)
		return
	}
	for _, id := range ids {
		unlock := s.lock(id)
		if r, err := s.get(id); err != nil || (r.Status != "running" && r.Status != "paused") {
			s.cfg.Logger.Info("releasing the network endpoints of a container that does not run", "id", id[:12])
			s.detachNetworks(id)
		}
		unlock()
	}
}
