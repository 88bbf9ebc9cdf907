package container

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/engined/engined/internal/errdefs"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Networks is what the container service needs of networking (the
// daemon wires internal/network behind it): attach a container's network
// namespace to a network between the runtime's create and start (or
// while it runs: docker network connect), and detach its endpoints when
// it stops, goes, or is disconnected.
type Networks interface {
	// Attach gives the namespace at netnsPath an interface on the
	// network named in req, with an address of its own.
	Attach(ctx context.Context, containerID, netnsPath string, req NetworkAttach) (*NetworkEndpoint, error)
	// Detach removes every endpoint of the container and releases its
	// addresses; detaching a container that has none is not an error.
	Detach(ctx context.Context, containerID string) error
	// DetachNetwork removes the container's endpoint on one network.
	DetachNetwork(ctx context.Context, containerID, network string) error
	// Lookup resolves a network's name, ID or ID prefix to its name
	// and ID.
	Lookup(ctx context.Context, ref string) (name, id string, err error)
	// AttachedContainers lists the containers that have endpoints.
	AttachedContainers(ctx context.Context) ([]string, error)
	// Rename gives the container's endpoints its new name on the
	// networks' DNS (dockerd's rename does); name has no slash.
	Rename(ctx context.Context, containerID, name string) error
}

// NetworkAttach is what a container asks of a network.
type NetworkAttach struct {
	Network     string     // "bridge", or a network's name or ID
	IPv4Address string     // "": the first free one
	MacAddress  string     // "": random
	Ports       []PortSpec // to publish (ports.go)
	// Names on a user-defined network's embedded DNS: the container's
	// name and hostname and its --network-alias aliases; DNS: its --dns
	// servers, which that DNS forwards other names to.
	Name     string
	Hostname string
	Aliases  []string
	DNS      []string
}

// NetworkEndpoint is a container's attachment to a network: what it
// asked for (kept across its runs) and, while it runs, what it got.
type NetworkEndpoint struct {
	NetworkName string `json:"networkName"`
	NetworkID   string `json:"networkID"`
	EndpointID  string `json:"endpointID"`
	IPAddress   string `json:"ipAddress"`
	IPPrefixLen int    `json:"ipPrefixLen"`
	Gateway     string `json:"gateway"`
	MacAddress  string `json:"macAddress"`
	// Asked for: --ip, --mac-address, --network-alias, per network.
	RequestedIP  string   `json:"requestedIP,omitempty"`
	RequestedMAC string   `json:"requestedMAC,omitempty"`
	Aliases      []string `json:"aliases,omitempty"`
	// Ports are the endpoint's published ports, as bound.
	Ports []PublishedPort `json:"ports,omitempty"`
	// DNSNames: the names the network's DNS has for the container
	// (user-defined networks only); they stay after it stops.
	DNSNames []string `json:"dnsNames,omitempty"`
}

// released is the endpoint as a stopped container keeps it: what it
// asked for, without what it got.
func (ep *NetworkEndpoint) released() *NetworkEndpoint {
	return &NetworkEndpoint{NetworkName: ep.NetworkName, NetworkID: ep.NetworkID,
		RequestedIP: ep.RequestedIP, RequestedMAC: ep.RequestedMAC, Aliases: ep.Aliases, DNSNames: ep.DNSNames}
}

// endpointConfig checks what a container asks of one network (--ip,
// --mac-address, --network-alias) as dockerd does; network is the
// network's name, userDefined whether it is not the default bridge.
func endpointConfig(hc *enginev1.HostConfig, network string, userDefined bool, ep *enginev1.EndpointConfig) (*NetworkEndpoint, error) {
	out := &NetworkEndpoint{NetworkName: network}
	ip, mac := ep.GetIpv4Address(), ep.GetMacAddress()
	if !bridged(hc) {
		switch {
		case mac != "":
			return nil, errdefs.InvalidArgument(errors.New("conflicting options: mac-address and the network mode"))
		case ip != "" || len(ep.GetAliases()) > 0:
			return nil, errdefs.InvalidArgument(fmt.Errorf("conflicting options: --ip and --network-alias need a bridge network, not network mode %s", hc.GetNetworkMode()))
		}
		return out, nil
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid MAC address: %s", mac))
		}
		if hw[0]&1 != 0 {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid MAC address %s: a multicast address", mac))
		}
		out.RequestedMAC = hw.String()
	}
	if ip != "" {
		if !userDefined {
			return nil, errdefs.InvalidArgument(errors.New("user specified IP address is supported on user defined networks only"))
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid IPv4 address: %s", ip))
		}
		out.RequestedIP = a.String()
	}
	if len(ep.GetAliases()) > 0 && !userDefined {
		return nil, errdefs.InvalidArgument(errors.New("network-scoped aliases are only supported for user-defined networks"))
	}
	for _, a := range ep.GetAliases() {
		if a == "" || !validAlias.MatchString(a) {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid network alias %q", a))
		}
		if !slices.Contains(out.Aliases, a) {
			out.Aliases = append(out.Aliases, a)
		}
	}
	return out, nil
}

// validAlias is a DNS name: labels of letters, digits, - and _.
var validAlias = regexp.MustCompile(`^[a-zA-Z0-9_]([a-zA-Z0-9_.-]*[a-zA-Z0-9_])?$`)

// bridged: the container's network mode attaches it to a network (the
// default bridge or a user-defined one), not none or host.
func bridged(hc *enginev1.HostConfig) bool {
	switch m := hc.GetNetworkMode(); {
	case m == "none", m == "host", strings.HasPrefix(m, "container:"):
		return false
	}
	return true
}

// createNetworks, at create, finds the networks the container is to be
// on (the network mode's and, API >= 1.44, any others of
// EndpointsConfig), checks what it asks of each, and records them by
// name: it joins them at each start. The networks are looked up again
// then.
func (s *Service) createNetworks(ctx context.Context, rec *Record, hc *enginev1.HostConfig, primary *enginev1.EndpointConfig, others map[string]*enginev1.EndpointConfig) error {
	mode := hc.GetNetworkMode()
	if !bridged(hc) {
		if _, err := endpointConfig(hc, mode, false, primary); err != nil {
			return err
		}
		if len(others) > 0 {
			if mode == "none" {
				return errdefs.InvalidArgument(errors.New("container cannot be connected to multiple networks with one of the networks in private (none) mode"))
			}
			return errdefs.InvalidArgument(errors.New("container sharing network namespace with another container or host cannot be connected to any other network"))
		}
		return nil
	}
	if s.cfg.Networks == nil {
		return errdefs.NotFound(fmt.Errorf("network %s not found", mode))
	}
	rec.Networks = map[string]*NetworkEndpoint{}
	add := func(ref string, epc *enginev1.EndpointConfig) error {
		name, id, err := s.cfg.Networks.Lookup(ctx, ref)
		if err != nil {
			return err
		}
		switch name {
		case "host":
			return errdefs.InvalidArgument(errors.New("container sharing network namespace with another container or host cannot be connected to any other network"))
		case "none":
			return errdefs.InvalidArgument(errors.New("container cannot be connected to multiple networks with one of the networks in private (none) mode"))
		}
		if _, dup := rec.Networks[name]; dup {
			return nil // the mode's network named again in EndpointsConfig
		}
		ep, err := endpointConfig(hc, name, name != "bridge", epc)
		if err != nil {
			return err
		}
		ep.NetworkID = id
		rec.Networks[name] = ep
		if ref == mode {
			rec.PrimaryNetwork = name
		}
		return nil
	}
	if err := add(mode, primary); err != nil {
		return err
	}
	for _, ref := range slices.Sorted(maps.Keys(others)) {
		if err := add(ref, others[ref]); err != nil {
			return err
		}
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

// joinOrder is the order a container joins its networks at start: the
// network mode's first (it gets eth0 and the default route), then the
// others by name. Records made before the container kept its networks
// have the mode's network alone.
func (r *Record) joinOrder(hc *enginev1.HostConfig) []*NetworkEndpoint {
	if r.Networks == nil {
		return []*NetworkEndpoint{{NetworkName: hc.GetNetworkMode(), RequestedIP: r.RequestedIP, RequestedMAC: r.RequestedMAC}}
	}
	var out []*NetworkEndpoint
	if ep := r.Networks[r.PrimaryNetwork]; ep != nil {
		out = append(out, ep)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Networks)) {
		if name != r.PrimaryNetwork {
			out = append(out, r.Networks[name])
		}
	}
	return out
}

// attachNetworks connects the container whose init (created, not yet
// started) is pid to its networks, records the endpoints and writes the
// container's own addresses into its /etc/hosts.
func (s *Service) attachNetworks(ctx context.Context, rec *Record, cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig, pid int) error {
	if !bridged(hc) {
		return nil
	}
	if s.cfg.Networks == nil {
		return fmt.Errorf("network mode %s: engined has no networking", hc.GetNetworkMode())
	}
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	ports, err := portSpecs(cfg, hc)
	if err != nil {
		return err
	}
	joined := map[string]*NetworkEndpoint{}
	for i, want := range rec.joinOrder(hc) {
		var publish []PortSpec
		if i == 0 {
			// Published ports go with the first network, the one of
			// the default route, as dockerd's.
			publish = ports
		}
		ep, err := s.attach(ctx, rec, cfg, hc, nsPath, want, publish)
		if err != nil {
			return err
		}
		joined[ep.NetworkName] = ep
	}
	rec, err = s.update(rec.ID, func(r *Record) error {
		r.Networks, r.SandboxKey = joined, nsPath
		if r.PrimaryNetwork == "" && len(r.Networks) == 1 {
			for name := range r.Networks {
				r.PrimaryNetwork = name
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.writeHosts(rec, cfg, hc)
}

// attach joins one network, keeping what the container asked of it,
// with its names and --dns servers for the network's DNS, and publishes
// ports on it.
func (s *Service) attach(ctx context.Context, rec *Record, cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig, nsPath string, want *NetworkEndpoint, ports []PortSpec) (*NetworkEndpoint, error) {
	dns, _, _ := s.dnsSettings(hc)
	ep, err := s.cfg.Networks.Attach(ctx, rec.ID, nsPath, NetworkAttach{Network: want.NetworkName, IPv4Address: want.RequestedIP,
		MacAddress: want.RequestedMAC, Aliases: want.Aliases, Ports: ports, Name: rec.Name, Hostname: cfg.GetHostname(), DNS: dns})
	if err != nil {
		return nil, err
	}
	ep.RequestedIP, ep.RequestedMAC, ep.Aliases = want.RequestedIP, want.RequestedMAC, want.Aliases
	return ep, nil
}

// writeHosts rewrites the running container's /etc/hosts for its
// current endpoints: its hostname on each of its addresses, and its
// links. In place: the file is bind-mounted into the container.
func (s *Service) writeHosts(rec *Record, cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig) error {
	var own []string
	for _, ep := range rec.joinOrder(hc) {
		if ep.IPAddress != "" {
			own = append(own, ep.IPAddress)
		}
	}
	hosts, err := hostsFile(cfg.GetHostname(), false, hc.GetExtraHosts(), own...)
	if err != nil {
		return err
	}
	hosts += s.linkHosts(rec, hc)
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
	if r, err := s.get(id); err != nil || !r.attached() {
		return // nothing to write (--network none, host, or detached already)
	}
	s.update(id, func(r *Record) error {
		for name, ep := range r.Networks {
			r.Networks[name] = ep.released()
		}
		r.SandboxKey = ""
		return nil
	})
}

// lockForNetwork takes the lock of the container a connect or
// disconnect names and reads its record and host config under it.
func (s *Service) lockForNetwork(container, network string) (*Record, *enginev1.HostConfig, func(), error) {
	if s.cfg.Networks == nil {
		return nil, nil, nil, errdefs.NotFound(fmt.Errorf("network %s not found", network))
	}
	rec, unlock, err := s.lockRecord(container)
	if err != nil {
		return nil, nil, nil, err
	}
	hc, err := rec.hostConfig()
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return rec, hc, unlock, nil
}

// rewriteNetworkFiles writes a container's /etc/resolv.conf again after
// its networks changed, and a running one's /etc/hosts (a created one's
// is written at its start, with its addresses).
func (s *Service) rewriteNetworkFiles(rec *Record, hc *enginev1.HostConfig, running bool) error {
	if err := s.writeResolvConf(rec, hc); err != nil {
		return err
	}
	if !running {
		return nil
	}
	cfg, err := rec.config()
	if err != nil {
		return err
	}
	return s.writeHosts(rec, cfg, hc)
}

// NetworkConnect puts a container on a network: at once if it runs
// (a new interface in its namespace), at its next start otherwise.
func (s *Service) NetworkConnect(ctx context.Context, req *enginev1.NetworkConnectRequest) (*enginev1.NetworkConnectResponse, error) {
	rec, hc, unlock, err := s.lockForNetwork(req.GetContainer(), req.GetNetwork())
	if err != nil {
		return nil, err
	}
	defer unlock()
	name, id, err := s.cfg.Networks.Lookup(ctx, req.GetNetwork())
	if err != nil {
		return nil, err
	}
	switch {
	case name == "host" && hc.GetNetworkMode() != "host":
		return nil, errdefs.InvalidArgument(errors.New("cannot connect container to host network - container must be created in host network mode"))
	case !bridged(hc):
		return nil, errdefs.InvalidArgument(errors.New("container sharing network namespace with another container or host cannot be connected to any other network"))
	case name == "none":
		return nil, errdefs.InvalidArgument(errors.New("container cannot be connected to multiple networks with one of the networks in private (none) mode"))
	}
	if _, ok := rec.joinedNetworks(hc)[name]; ok {
		return nil, errdefs.Forbidden(fmt.Errorf("endpoint with name %s already exists in network %s", strings.TrimPrefix(rec.Name, "/"), name))
	}
	want, err := endpointConfig(hc, name, name != "bridge", req.GetEndpoint())
	if err != nil {
		return nil, err
	}
	want.NetworkID = id
	running := rec.SandboxKey != "" && (rec.Status == "running" || rec.Status == "paused")
	if running {
		cfg, err := rec.config()
		if err != nil {
			return nil, err
		}
		if want, err = s.attach(ctx, rec, cfg, hc, rec.SandboxKey, want, nil); err != nil {
			return nil, err
		}
	}
	rec, err = s.update(rec.ID, func(r *Record) error {
		if r.Networks == nil {
			r.Networks = r.joinedNetworks(hc)
		}
		r.Networks[name] = want
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.rewriteNetworkFiles(rec, hc, running); err != nil {
		return nil, err
	}
	return &enginev1.NetworkConnectResponse{}, nil
}

// NetworkDisconnect takes a container off a network; force also when
// the network is gone.
func (s *Service) NetworkDisconnect(ctx context.Context, req *enginev1.NetworkDisconnectRequest) (*enginev1.NetworkDisconnectResponse, error) {
	rec, hc, unlock, err := s.lockForNetwork(req.GetContainer(), req.GetNetwork())
	if err != nil {
		return nil, err
	}
	defer unlock()
	name, _, err := s.cfg.Networks.Lookup(ctx, req.GetNetwork())
	if err != nil {
		if !req.GetForce() || !errdefs.IsNotFound(err) {
			return nil, err
		}
		name = req.GetNetwork()
	}
	switch {
	case name == "host" && hc.GetNetworkMode() == "host":
		return nil, errdefs.InvalidArgument(errors.New("cannot disconnect container from host network - container was created in host network mode"))
	}
	networks := rec.joinedNetworks(hc)
	if _, ok := networks[name]; !ok {
		return nil, errdefs.InvalidArgument(fmt.Errorf("container %s is not connected to the network %s", rec.ID, name))
	}
	running := rec.SandboxKey != "" && (rec.Status == "running" || rec.Status == "paused")
	if running {
		if err := s.cfg.Networks.DetachNetwork(ctx, rec.ID, name); err != nil && !(req.GetForce() && errdefs.IsNotFound(err)) {
			return nil, err
		}
	}
	rec, err = s.update(rec.ID, func(r *Record) error {
		if r.Networks == nil {
			r.Networks = networks
		}
		delete(r.Networks, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.rewriteNetworkFiles(rec, hc, running); err != nil {
		return nil, err
	}
	return &enginev1.NetworkDisconnectResponse{}, nil
}

// attached: the record shows a namespace or an endpoint with an address.
func (r *Record) attached() bool {
	if r.SandboxKey != "" {
		return true
	}
	for _, ep := range r.Networks {
		if ep.EndpointID != "" || ep.IPAddress != "" || len(ep.Ports) > 0 {
			return true
		}
	}
	return false
}

// joinedNetworks are the networks the container is on, by name.
func (r *Record) joinedNetworks(hc *enginev1.HostConfig) map[string]*NetworkEndpoint {
	if !bridged(hc) {
		return map[string]*NetworkEndpoint{hc.GetNetworkMode(): {NetworkName: hc.GetNetworkMode()}}
	}
	out := map[string]*NetworkEndpoint{}
	for _, ep := range r.joinOrder(hc) {
		out[ep.NetworkName] = ep
	}
	return out
}

// networkSettings is inspect's view of the record's endpoints.
func networkSettings(r *Record, hc *enginev1.HostConfig) *enginev1.NetworkSettings {
	ns := &enginev1.NetworkSettings{SandboxKey: r.SandboxKey, Networks: map[string]*enginev1.EndpointSettings{}}
	if r.SandboxKey != "" {
		ns.SandboxId = r.ID
	}
	if strings.HasPrefix(hc.GetNetworkMode(), "container:") {
		return ns // the other container's, as dockerd shows it
	}
	for name, ep := range r.joinedNetworks(hc) {
		es := &enginev1.EndpointSettings{NetworkId: ep.NetworkID, EndpointId: ep.EndpointID, Gateway: ep.Gateway,
			IpAddress: ep.IPAddress, IpPrefixLen: int32(ep.IPPrefixLen), MacAddress: cmp.Or(ep.MacAddress, ep.RequestedMAC),
			Aliases: ep.Aliases, Ipv4Address: ep.RequestedIP, DnsNames: ep.DNSNames}
		if name == "bridge" {
			es.Links = dockerLinks(r.Name, hc.GetLinks())
		}
		ns.Networks[name] = es
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
