package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/filters"
	"github.com/engined/engined/internal/store"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// The Engine service's network methods.

var validNetworkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func predefined(n *Network) bool {
	return n.Name == BridgeNetwork || n.Name == "host" || n.Name == "none"
}

// NetworkCreate makes a user-defined bridge network: its subnet is the
// one asked for or the first free one of the default pools.
func (m *Manager) NetworkCreate(ctx context.Context, req *enginev1.NetworkCreateRequest) (*enginev1.NetworkCreateResponse, error) {
	name := req.GetName()
	switch {
	case name == "":
		return nil, errdefs.InvalidArgument(errors.New("network name must not be empty"))
	case !validNetworkName.MatchString(name):
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	case name == "default":
		return nil, errdefs.Forbidden(fmt.Errorf("default is a pre-defined network and cannot be created"))
	}
	if d := req.GetDriver(); d != "" && d != "bridge" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("network driver %q is not supported: engined has the bridge driver only", d))
	}
	if err := checkOptions(req.GetOptions()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := &Network{ID: newID(), Name: name, Driver: "bridge", Created: time.Now().UTC(), Internal: req.GetInternal(),
		Labels: req.GetLabels(), Options: map[string]string{}, Attachable: req.GetAttachable()}
	for k, v := range req.GetOptions() {
		n.Options[k] = v
	}
	n.Bridge = cmpOr(req.GetOptions()[bridgeNameOption], "br-"+n.ID[:12])
	if len(n.Bridge) > 15 || !validNetworkName.MatchString(n.Bridge) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid bridge name %q (%s): at most 15 of [a-zA-Z0-9_.-]", n.Bridge, bridgeNameOption))
	}
	// A network's bridge is engined's own: made here, deleted with the
	// network. An interface that exists already is not taken over (nor
	// ever deleted).
	if linkExists(n.Bridge) {
		return nil, errdefs.Conflict(fmt.Errorf("interface %s exists already: a new network needs a bridge of its own (%s)", n.Bridge, bridgeNameOption))
	}
	err := m.cfg.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketNetworks)
		nets, err := networksIn(b)
		if err != nil {
			return err
		}
		var taken []netip.Prefix
		for _, o := range nets {
			if o.Name == name {
				return errdefs.Conflict(fmt.Errorf("network with name %s already exists", name))
			}
			if o.Bridge == n.Bridge && o.Bridge != "" {
				return errdefs.Conflict(fmt.Errorf("bridge %s is network %s's", n.Bridge, o.Name))
			}
			if p, err := netip.ParsePrefix(o.Subnet); err == nil {
				taken = append(taken, p)
			}
		}
		subnet, gw, err := subnetFor(m.cfg.AddressPools, req.GetSubnet(), req.GetGateway(), taken)
		if err != nil {
			return err
		}
		n.Subnet, n.Gateway = subnet.String(), gw.String()
		if n.IPRange, n.AuxAddresses, err = poolOptions(subnet, gw, req.GetIpRange(), req.GetAuxAddresses()); err != nil {
			return err
		}
		return putJSON(b, keyNetwork+n.ID, n)
	})
	if err != nil {
		return nil, err
	}
	if err := m.apply(ctx, n); err != nil {
		m.deleteNetwork(ctx, n)
		return nil, fmt.Errorf("create network %s: %w", name, err)
	}
	m.event("create", n.ID, n.Name, "")
	return &enginev1.NetworkCreateResponse{Id: n.ID}, nil
}

// subnetFor checks a requested subnet and gateway, or picks a subnet
// from the default pools that neither the host routes nor a network
// has.
func subnetFor(pools []AddressPool, subnet, gateway string, taken []netip.Prefix) (netip.Prefix, netip.Addr, error) {
	if subnet == "" {
		if gateway != "" {
			return netip.Prefix{}, netip.Addr{}, errdefs.InvalidArgument(errors.New("a gateway needs a subnet (--subnet)"))
		}
		routed, err := routedPrefixes("")
		if err != nil {
			return netip.Prefix{}, netip.Addr{}, err
		}
		p, err := pickSubnet(pools, append(taken, routed...))
		if err != nil {
			return netip.Prefix{}, netip.Addr{}, errdefs.Forbidden(err)
		}
		return p, gatewayOf(p), nil
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, netip.Addr{}, errdefs.InvalidArgument(fmt.Errorf("invalid subnet %q: IPv4 CIDR only", subnet))
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, netip.Addr{}, errdefs.InvalidArgument(fmt.Errorf("subnet %s is too small", p))
	}
	p = p.Masked()
	if overlapsAny(p, taken) {
		return netip.Prefix{}, netip.Addr{}, errdefs.Forbidden(fmt.Errorf("invalid pool request: Pool overlaps with other one on this address space"))
	}
	gw := gatewayOf(p)
	if gateway != "" {
		gw, err = netip.ParseAddr(gateway)
		if err != nil || !p.Contains(gw) || gw == p.Addr() || addrU32(gw) == addrU32(p.Addr())|(1<<(32-p.Bits())-1) {
			return netip.Prefix{}, netip.Addr{}, errdefs.InvalidArgument(fmt.Errorf("no matching subnet for gateway %s", gateway))
		}
	}
	return p, gw, nil
}

// poolOptions checks --ip-range and --aux-address against the subnet.
func poolOptions(subnet netip.Prefix, gw netip.Addr, ipRange string, aux map[string]string) (string, map[string]string, error) {
	if ipRange != "" {
		r, err := netip.ParsePrefix(ipRange)
		if err != nil || !r.Addr().Is4() {
			return "", nil, errdefs.InvalidArgument(fmt.Errorf("invalid ip range %q: IPv4 CIDR only", ipRange))
		}
		r = r.Masked()
		if r.Bits() < subnet.Bits() || !subnet.Contains(r.Addr()) {
			return "", nil, errdefs.InvalidArgument(fmt.Errorf("invalid pool request: ip range %s is not within subnet %s", r, subnet))
		}
		ipRange = r.String()
	}
	var out map[string]string
	for name, s := range aux {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return "", nil, errdefs.InvalidArgument(fmt.Errorf("invalid auxiliary address %s=%q", name, s))
		}
		if !subnet.Contains(a) {
			return "", nil, errdefs.InvalidArgument(fmt.Errorf("invalid pool request: auxiliary address %s=%s is not within subnet %s", name, a, subnet))
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = a.String()
	}
	return ipRange, out, nil
}

// apply makes a network's bridge and rewrites the rules.
func (m *Manager) apply(ctx context.Context, n *Network) error {
	if err := ensureBridge(n, n.mtu(m.cfg.MTU)); err != nil {
		return err
	}
	return m.syncRules(ctx)
}

func (m *Manager) syncRules(ctx context.Context) error {
	nets, err := m.bridges()
	if err != nil {
		return err
	}
	return m.fw.sync(ctx, nets)
}

// deleteNetwork removes a network's record, bridge and rules.
func (m *Manager) deleteNetwork(ctx context.Context, n *Network) error {
	if err := m.cfg.Store.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketNetworks).Delete([]byte(keyNetwork + n.ID))
	}); err != nil {
		return err
	}
	err := deleteLink(n.Bridge)
	return errors.Join(err, m.syncRules(ctx))
}

// NetworkRemove deletes a user-defined network without endpoints.
func (m *Manager) NetworkRemove(ctx context.Context, req *enginev1.NetworkRemoveRequest) (*enginev1.NetworkRemoveResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.network(req.GetId())
	if err != nil {
		return nil, err
	}
	if predefined(n) {
		return nil, errdefs.Forbidden(fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name))
	}
	eps, err := m.endpointsOn(n.ID)
	if err != nil {
		return nil, err
	}
	if len(eps) > 0 {
		return nil, errdefs.Forbidden(fmt.Errorf("error while removing network: network %s id %s has active endpoints", n.Name, n.ID))
	}
	if err := m.deleteNetwork(ctx, n); err != nil {
		return nil, err
	}
	// The resolver forgets the network (it had no endpoints left).
	if err := m.syncDNS(ctx, ""); err != nil {
		m.log.Warn("embedded DNS", "err", err)
	}
	m.event("destroy", n.ID, n.Name, "")
	return &enginev1.NetworkRemoveResponse{}, nil
}

func (m *Manager) endpointsOn(networkID string) ([]*Endpoint, error) {
	var out []*Endpoint
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		eps, err := endpointsIn(tx.Bucket(store.BucketNetworks), "")
		for _, ep := range eps {
			if ep.NetworkID == networkID {
				out = append(out, ep)
			}
		}
		return err
	})
	return out, err
}

// NetworkInspect finds a network by name, ID or ID prefix.
func (m *Manager) NetworkInspect(ctx context.Context, req *enginev1.NetworkInspectRequest) (*enginev1.Network, error) {
	n, err := m.network(req.GetId())
	if err != nil {
		return nil, err
	}
	if sc := req.GetScope(); sc != "" && sc != "local" {
		return nil, errdefs.NotFound(fmt.Errorf("network %s not found", req.GetId()))
	}
	return m.toProto(n)
}

// NetworkList lists networks; filters: dangling, driver, id, label,
// name, scope, type.
func (m *Manager) NetworkList(ctx context.Context, req *enginev1.NetworkListRequest) (*enginev1.NetworkListResponse, error) {
	f, err := filters.Parse(req.GetFilters(), "dangling", "driver", "id", "label", "name", "scope", "type")
	if err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	for _, t := range f.Get("type") {
		if t != "custom" && t != "builtin" {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter: 'type'='%s'", t))
		}
	}
	dangling, err := f.Bool("dangling", false)
	if err != nil {
		return nil, err
	}
	nets, err := m.networks()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(nets, func(a, b *Network) int { return strings.Compare(a.Name, b.Name) })
	out := &enginev1.NetworkListResponse{}
	for _, n := range nets {
		if !matches(f, n) {
			continue
		}
		p, err := m.toProto(n)
		if err != nil {
			return nil, err
		}
		// dangling: user-defined networks no container is on (and
		// dangling=false, the others), as dockerd's.
		if f.Has("dangling") && dangling != (!predefined(n) && len(p.Containers) == 0) {
			continue
		}
		out.Networks = append(out.Networks, p)
	}
	return out, nil
}

// matches applies dockerd's network filters: name is a substring, id a
// prefix, the values of one key are alternatives.
func matches(f filters.Args, n *Network) bool {
	anyOf := func(key string, ok func(v string) bool) bool {
		vs := f.Get(key)
		return len(vs) == 0 || slices.ContainsFunc(vs, ok)
	}
	typ := "custom"
	if predefined(n) {
		typ = "builtin"
	}
	return anyOf("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		anyOf("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		anyOf("driver", func(v string) bool { return v == n.Driver }) &&
		anyOf("type", func(v string) bool { return v == typ }) &&
		anyOf("scope", func(v string) bool { return v == "local" }) &&
		f.MatchLabels("label", n.Labels)
}

// NetworkPrune removes the user-defined networks without endpoints,
// those created before until and matching the label filters.
func (m *Manager) NetworkPrune(ctx context.Context, req *enginev1.NetworkPruneRequest) (*enginev1.NetworkPruneResponse, error) {
	f, err := filters.Parse(req.GetFilters(), "until", "label", "label!")
	if err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	var until time.Time
	if v := f.Get("until"); len(v) > 0 {
		if until, err = filters.ParseTime(v[0], time.Now()); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	nets, err := m.networks()
	if err != nil {
		return nil, err
	}
	out := &enginev1.NetworkPruneResponse{NetworksDeleted: []string{}}
	for _, n := range nets {
		if predefined(n) || (!until.IsZero() && !n.Created.Before(until)) || !f.MatchLabels("label", n.Labels) ||
			(f.Has("label!") && !f.MatchNoLabel("label!", n.Labels)) {
			continue
		}
		eps, err := m.endpointsOn(n.ID)
		if err != nil {
			return nil, err
		}
		if len(eps) > 0 {
			continue
		}
		if err := m.deleteNetwork(ctx, n); err != nil {
			return nil, fmt.Errorf("prune network %s: %w", n.Name, err)
		}
		m.event("destroy", n.ID, n.Name, "")
		out.NetworksDeleted = append(out.NetworksDeleted, n.Name)
	}
	return out, nil
}

func (m *Manager) toProto(n *Network) (*enginev1.Network, error) {
	eps, err := m.endpointsOn(n.ID)
	if err != nil {
		return nil, err
	}
	p := &enginev1.Network{Id: n.ID, Name: n.Name, Created: timestamppb.New(n.Created), Driver: n.Driver, Subnet: n.Subnet,
		Gateway: n.Gateway, Internal: n.Internal, Labels: n.Labels, Options: n.Options, Containers: map[string]*enginev1.NetworkContainer{},
		Attachable: n.Attachable, IpRange: n.IPRange, AuxAddresses: n.AuxAddresses}
	for _, ep := range eps {
		name := ""
		if m.cfg.ContainerName != nil {
			name = m.cfg.ContainerName(ep.ContainerID)
		}
		p.Containers[ep.ContainerID] = &enginev1.NetworkContainer{Name: name, EndpointId: ep.ID, MacAddress: ep.MacAddress,
			Ipv4Address: fmt.Sprintf("%s/%d", ep.IPAddress, ep.IPPrefixLen)}
	}
	return p, nil
}

// Lookup resolves a network reference to the network's name and ID.
func (m *Manager) Lookup(ref string) (name, id string, err error) {
	n, err := m.network(ref)
	if err != nil {
		return "", "", err
	}
	return n.Name, n.ID, nil
}
