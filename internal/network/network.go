// Package network is engined's container networking: networks and their
// IP address management (state in bbolt, restored at start), the bridge
// driver (a Linux bridge per network, a veth pair per endpoint, through
// netlink) and the firewall (nftables, in engined's own table, through
// knftables). The container service uses it through an interface of its
// own; nothing else in engined touches links or rules.
package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/store"
)

// Config is the default bridge's settings (dockerd's -b, --bip, --mtu,
// --ip-forward, --ip-masq) and where state goes.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger
	// Bridge is the default bridge network's interface (dockerd's -b);
	// empty: DefaultBridge.
	Bridge string
	// BIP is the bridge's address with its prefix (e.g. 172.30.0.1/16);
	// empty: the first default pool subnet not routed on the host.
	BIP string
	// MTU of the bridge and veths; 0: 1500.
	MTU int
	// IPForward sets net.ipv4.ip_forward=1 at start, as dockerd does.
	IPForward bool
	// IPMasq masquerades traffic leaving each bridge's subnet.
	IPMasq bool
	// AddressPools are where networks without a subnet of their own
	// get one (dockerd's --default-address-pool); nil: dockerd's.
	AddressPools []AddressPool
	// ICC lets containers on the default bridge talk to each other
	// (dockerd's --icc); user networks have their own enable_icc option.
	ICC bool
	// Table is engined's nftables table (family ip); empty: DefaultTable.
	Table string
	// ContainerName names a container for network inspect; nil: none.
	ContainerName func(id string) string
	// Events, if set, receives network events (create, destroy,
	// connect, disconnect), as dockerd's.
	Events *events.Bus
	// DNS is the embedded resolver of user-defined networks; the zero
	// value has none (see dns.go).
	DNS DNSConfig
}

// Defaults that do not collide with a dockerd on the same host.
const (
	DefaultBridge = "engined0"
	DefaultTable  = "engined"
	// BridgeNetwork is the predefined network's name.
	BridgeNetwork = "bridge"
)

// Network is a network as stored.
type Network struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Bridge   string            `json:"bridge"`
	Subnet   string            `json:"subnet"`
	Gateway  string            `json:"gateway"`
	Created  time.Time         `json:"created"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	// IPRange is --ip-range, the part of the subnet addresses are
	// allocated from ("": all of it); AuxAddresses are --aux-address,
	// addresses never given to an endpoint.
	IPRange      string            `json:"ip_range,omitempty"`
	AuxAddresses map[string]string `json:"aux_addresses,omitempty"`
	Attachable   bool              `json:"attachable,omitempty"`
}

// pool is where the network allocates addresses from.
func (n *Network) pool() (subnet, pool netip.Prefix, err error) {
	subnet, err = netip.ParsePrefix(n.Subnet)
	if err != nil {
		return subnet, pool, fmt.Errorf("network %s: subnet %q: %w", n.Name, n.Subnet, err)
	}
	pool = subnet
	if n.IPRange != "" {
		if pool, err = netip.ParsePrefix(n.IPRange); err != nil {
			return subnet, pool, fmt.Errorf("network %s: ip range %q: %w", n.Name, n.IPRange, err)
		}
	}
	return subnet, pool, nil
}

// reserved are the addresses of the network no endpoint may have.
func (n *Network) reserved() map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, s := range n.AuxAddresses {
		if a, err := netip.ParseAddr(s); err == nil {
			used[a] = true
		}
	}
	return used
}

// Endpoint is a container's attachment to a network, as stored.
type Endpoint struct {
	ID          string `json:"id"`
	ContainerID string `json:"container_id"`
	NetworkID   string `json:"network_id"`
	NetworkName string `json:"network_name"`
	IPAddress   string `json:"ip"`
	IPPrefixLen int    `json:"prefix_len"`
	Gateway     string `json:"gateway"`
	MacAddress  string `json:"mac"`
	HostVeth    string `json:"host_veth"`
	// IfName is the interface in the container (eth0, eth1, …);
	// Sandbox the container's network namespace, while attached.
	IfName  string `json:"if_name,omitempty"`
	Sandbox string `json:"sandbox,omitempty"`
	// Ports are the endpoint's published ports, as bound (ports.go).
	Ports []PortBinding `json:"ports,omitempty"`
	// Name resolution (user-defined networks; see dns.go): the
	// aliases asked for, dockerd's DNSNames, the container's namespace
	// (path and inode) and its --dns servers.
	Aliases    []string `json:"aliases,omitempty"`
	DNSNames   []string `json:"dns_names,omitempty"`
	NetNS      string   `json:"netns,omitempty"`
	NetNSInode uint64   `json:"netns_inode,omitempty"`
	DNS        []string `json:"dns,omitempty"`
}

// AttachRequest says what a container asks of a network.
type AttachRequest struct {
	Network     string // name or ID; "", "default": the bridge network
	IPv4Address string // "": the first free address
	MacAddress  string // "": random, locally administered
	Ports       []PortRequest
	// For name resolution on user-defined networks: the container's
	// name, hostname, --network-alias aliases and --dns servers.
	Name     string
	Hostname string
	Aliases  []string
	DNS      []string
}

// Manager owns networks, endpoints, links and rules.
type Manager struct {
	cfg Config
	log *slog.Logger
	fw  *firewall
	dns *dnsState
	// mu orders the changes to the stored networks and endpoints (an
	// address is chosen and stored under it) and network changes; the
	// kernel work of an endpoint (its veth, its rules) is done outside
	// it, so containers starting together do not wait for each other's.
	mu sync.Mutex
	// ports are the host ports held for published ports (under mu).
	ports reservations
	// unplugs are the veths of ended containers being deleted in the
	// background (see Detach); Close waits for them. closing (under mu)
	// is set by Close: a Detach after it deletes at once.
	unplugs sync.WaitGroup
	closing bool
	// deleteVeth deletes an ended container's veth (a test holds it).
	deleteVeth func(netlink.Link) error
}

// Store keys in store.BucketNetworks.
const (
	keyNetwork  = "n/" // n/<network id>
	keyEndpoint = "e/" // e/<container id>/<network id>
)

// New loads the stored networks, creates the default bridge network if
// there is none, sets up every network's bridge and engined's rules.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Bridge = cmpOr(cfg.Bridge, DefaultBridge)
	cfg.Table = cmpOr(cfg.Table, DefaultTable)
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.AddressPools == nil {
		cfg.AddressPools = DefaultAddressPools
	}
	for _, p := range cfg.AddressPools {
		if err := p.check(); err != nil {
			return nil, err
		}
	}
	if len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q: longer than 15 characters", cfg.Bridge)
	}
	fw, err := newFirewall(cfg.Table, cfg.IPMasq)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, fw: fw, ports: reservations{}, dns: newDNSState(cfg.DNS, cfg.Logger), deleteVeth: deleteVeth}
	fw.published = m.portElements
	if err := m.ensureDefault(); err != nil {
		return nil, err
	}
	nets, err := m.bridges()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if err := ensureBridge(n, n.mtu(cfg.MTU)); err != nil {
			return nil, fmt.Errorf("network %s: bridge %s: %w", n.Name, n.Bridge, err)
		}
	}
	ports, err := vethPorts()
	if err != nil {
		return nil, err
	}
	// The endpoints are read once for what the start needs of them.
	eps, err := m.allEndpoints()
	if err != nil {
		return nil, err
	}
	m.removeStrayVeths(nets, ports, eps)
	for _, n := range nets {
		// --icc may have changed since the running containers attached.
		for _, port := range ports.of(n.Bridge) {
			if port.isolated == n.icc() {
				if err := isolatePort(port.name, !n.icc()); err != nil {
					m.log.Warn("bridge port isolation", "link", port.name, "err", err)
				}
			}
		}
	}
	m.restorePorts(eps)
	m.fw.start(ctx, m.bridges, m.log)
	if cfg.IPForward {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			m.log.Warn("enable IPv4 forwarding", "err", err)
		}
	}
	// The resolver is found again (or started, if there are containers
	// to serve and it died); engined's start goes on if it cannot be.
	if err := m.syncDNS(ctx, ""); err != nil {
		m.log.Warn("embedded DNS", "err", err)
	}
	return m, nil
}

// WriteRules rewrites engined's table in the background, unless a change
// that needed it has already begun that. engined calls it once it has
// reattached its containers.
func (m *Manager) WriteRules() {
	if m.fw.launch != nil {
		m.fw.launch()
	}
}

// ensureDefault stores the predefined bridge network, following -b and
// --bip when given, keeping the stored subnet otherwise.
func (m *Manager) ensureDefault() error {
	// Nothing to change (the usual start) writes nothing.
	return m.cfg.Store.UpdateIfChanged(func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(store.BucketNetworks)
		nets, err := networksIn(b)
		if err != nil {
			return false, err
		}
		var def *Network
		var taken []netip.Prefix
		for _, n := range nets {
			if n.Name == BridgeNetwork {
				def = n
				continue
			}
			if n.Subnet == "" {
				continue
			}
			if p, err := netip.ParsePrefix(n.Subnet); err == nil {
				taken = append(taken, p)
			}
		}
		added := false
		for _, p := range []struct{ name, driver string }{{"host", "host"}, {"none", "null"}} {
			if !slices.ContainsFunc(nets, func(n *Network) bool { return n.Name == p.name }) {
				added = true
				if err := putJSON(b, keyNetwork+newIDFor(p.name), &Network{ID: newIDFor(p.name), Name: p.name, Driver: p.driver,
					Created: time.Now().UTC(), Options: map[string]string{}}); err != nil {
					return false, err
				}
			}
		}
		if def == nil {
			def = &Network{ID: newID(), Name: BridgeNetwork, Driver: "bridge", Created: time.Now().UTC(),
				Options: map[string]string{"com.docker.network.bridge.default_bridge": "true"}}
		}
		changed := def.Bridge != m.cfg.Bridge || def.Options[iccOption] != strconv.FormatBool(m.cfg.ICC) ||
			def.Options[masqOption] != strconv.FormatBool(m.cfg.IPMasq) || def.Options[mtuOption] != strconv.Itoa(m.cfg.MTU)
		def.Bridge = m.cfg.Bridge
		// The options dockerd's default bridge shows, from the flags.
		def.Options[bridgeNameOption] = m.cfg.Bridge
		def.Options[iccOption] = strconv.FormatBool(m.cfg.ICC)
		def.Options[masqOption] = strconv.FormatBool(m.cfg.IPMasq)
		def.Options[mtuOption] = strconv.Itoa(m.cfg.MTU)
		def.Options["com.docker.network.bridge.host_binding_ipv4"] = "0.0.0.0"
		switch {
		case m.cfg.BIP != "":
			gw, err := netip.ParsePrefix(m.cfg.BIP)
			if err != nil || !gw.Addr().Is4() {
				return false, errdefs.InvalidArgument(fmt.Errorf("--bip %q: not an IPv4 address with a prefix length", m.cfg.BIP))
			}
			if def.Subnet != gw.Masked().String() || def.Gateway != gw.Addr().String() {
				def.Subnet, def.Gateway, changed = gw.Masked().String(), gw.Addr().String(), true
			}
		case def.Subnet == "" || changed:
			// A new bridge: its subnet is one nothing on the host routes
			// yet (an existing bridge of this name keeps its own).
			routed, err := routedPrefixes(def.Bridge)
			if err != nil {
				return false, err
			}
			if cur, ok := bridgeSubnet(def.Bridge); ok {
				def.Subnet, def.Gateway = cur.Masked().String(), cur.Addr().String()
			} else {
				p, err := pickSubnet(m.cfg.AddressPools, append(taken, routed...))
				if err != nil {
					return false, err
				}
				def.Subnet, def.Gateway = p.String(), gatewayOf(p).String()
			}
			changed = true
		}
		if !changed {
			return added, nil
		}
		return true, putJSON(b, keyNetwork+def.ID, def)
	})
}

// Networks lists the stored networks.
func (m *Manager) networks() ([]*Network, error) {
	var out []*Network
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		out, err = networksIn(tx.Bucket(store.BucketNetworks))
		return err
	})
	return out, err
}

// bridges are the networks of the bridge driver.
func (m *Manager) bridges() ([]*Network, error) {
	nets, err := m.networks()
	return slices.DeleteFunc(nets, func(n *Network) bool { return n.Driver != "bridge" }), err
}

// DefaultNetwork is the predefined bridge network.
func (m *Manager) DefaultNetwork() (*Network, error) {
	return m.network(BridgeNetwork)
}

func (m *Manager) network(ref string) (*Network, error) {
	if ref == "" || ref == "default" {
		ref = BridgeNetwork
	}
	nets, err := m.networks()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	for _, n := range nets {
		if strings.HasPrefix(n.ID, ref) {
			return n, nil
		}
	}
	return nil, errdefs.NotFound(fmt.Errorf("network %s not found", ref))
}

// Attach connects the container whose network namespace is netnsPath to
// a network: an address (the first free one), a veth pair with its
// container end as eth0, the default route through the gateway.
func (m *Manager) Attach(ctx context.Context, containerID, netnsPath string, req AttachRequest) (*Endpoint, error) {
	start := time.Now()
	// The bridge's forward and masquerade rules first: after a reboot
	// they are not in the kernel until the firewall's start wrote them.
	if err := m.fw.ready(ctx); err != nil {
		return nil, err
	}
	n, ep, err := m.allocate(containerID, netnsPath, req)
	if err != nil {
		return nil, err
	}
	key := keyEndpoint + containerID + "/" + n.ID
	// The DNAT elements need only the address: they go in while the veth
	// is made (the nft process is most of a publishing attach's time);
	// the container starts only once both are done.
	published := make(chan error, 1)
	if len(ep.Ports) > 0 {
		go func(comment string) { published <- m.fw.addPorts(ctx, ep, comment) }(m.portComment(ep))
	} else {
		published <- nil
	}
	err = plugVeth(n, ep, netnsPath, n.mtu(m.cfg.MTU))
	if perr := <-published; err == nil {
		err = perr
	}
	if err != nil {
		m.release(key, ep)
		return nil, fmt.Errorf("attach to network %s: %w", n.Name, err)
	}
	// The container's names resolve before it starts.
	if userDefined(n) {
		if err := m.syncDNS(ctx, containerID); err != nil {
			m.release(key, ep)
			if err2 := m.syncDNS(ctx, ""); err2 != nil {
				m.log.Warn("embedded DNS", "err", err2)
			}
			return nil, fmt.Errorf("attach to network %s: %w", n.Name, err)
		}
	}
	m.event("connect", n.ID, n.Name, containerID)
	// The engine-side cost of an endpoint, which the benchmarks follow.
	m.log.Debug("endpoint attached", "container", short(containerID), "network", n.Name, "ports", len(ep.Ports), "took", time.Since(start))
	return ep, nil
}

// allocate chooses and stores a new endpoint of the container on
// req.Network: its address, MAC, names, interface name and host ports.
// A stored endpoint holds its address and keeps its network from being
// removed, so what Attach then does in the kernel needs no lock.
func (m *Manager) allocate(containerID, netnsPath string, req AttachRequest) (*Network, *Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.network(req.Network)
	if err != nil {
		return nil, nil, err
	}
	if n.Driver != "bridge" {
		return nil, nil, errdefs.InvalidArgument(fmt.Errorf("network %s: containers join it with --network %s, not as an endpoint", n.Name, n.Name))
	}
	subnet, pool, err := n.pool()
	if err != nil {
		return nil, nil, err
	}
	gw, _ := netip.ParseAddr(n.Gateway)
	mac := req.MacAddress
	if mac == "" {
		mac = randomMAC().String()
	} else if _, err := net.ParseMAC(mac); err != nil {
		return nil, nil, errdefs.InvalidArgument(fmt.Errorf("invalid MAC address %q", mac))
	}
	epID := newID()
	ep := &Endpoint{ID: epID, ContainerID: containerID, NetworkID: n.ID, NetworkName: n.Name, IPPrefixLen: subnet.Bits(),
		Gateway: n.Gateway, MacAddress: mac, HostVeth: hostVethName(epID), Sandbox: netnsPath}
	// The name in the container is known before the endpoint is stored,
	// so the one commit below records all of it.
	if ep.IfName, err = freeEthName(netnsPath); err != nil {
		return nil, nil, err
	}
	if err := dnsEndpoint(ep, n, containerID, netnsPath, req); err != nil {
		return nil, nil, err
	}
	key := keyEndpoint + containerID + "/" + n.ID
	// A container attaches when it starts, so an endpoint it still has
	// is a previous run's that was not released (engined died first):
	// it goes now.
	var stale []*Endpoint
	if err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		stale, err = endpointsIn(tx.Bucket(store.BucketNetworks), containerID+"/"+n.ID)
		return err
	}); err != nil {
		return nil, nil, err
	}
	for _, old := range stale {
		m.log.Info("releasing a previous run's endpoint", "container", containerID[:12], "network", n.Name, "ip", old.IPAddress)
		if err := m.releaseLocked(key, old); err != nil {
			return nil, nil, err
		}
	}
	// The host ports are taken before anything else is made: a port
	// that is not free fails the attach with nothing to undo.
	if ep.Ports, err = m.reservePorts(n, ep, req.Ports); err != nil {
		return nil, nil, err
	}
	err = m.cfg.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketNetworks)
		used := n.reserved()
		eps, err := endpointsIn(b, "")
		if err != nil {
			return err
		}
		for _, e := range eps {
			if e.NetworkID == n.ID {
				if a, err := netip.ParseAddr(e.IPAddress); err == nil {
					used[a] = true
				}
			}
		}
		ip, err := firstFree(subnet, pool, gw, used)
		if req.IPv4Address != "" {
			ip, err = requestedAddress(req.IPv4Address, subnet, gw, used)
		}
		if err != nil {
			return err
		}
		ep.IPAddress = ip.String()
		return putJSON(b, key, ep)
	})
	if err != nil {
		m.ports.release(ep.Ports)
		return nil, nil, err
	}
	return n, ep, nil
}

// Detach removes all of a container's endpoints, once it has ended:
// their published ports and address allocations at once (a container
// started next may ask for the same), and the host end of each veth
// (the container's end goes with it), which is set down at once and
// deleted in the background. Unregistering a veth takes the kernel tens
// of milliseconds (an RCU barrier), which a `docker run --rm` or a
// `docker stop` would otherwise wait for. Down, the pair carries nothing
// even while a container sharing the ended one's namespace (--network
// container:) keeps it: the address freed here cannot answer twice on
// the bridge. Detaching what is not attached is not an error.
func (m *Manager) Detach(ctx context.Context, containerID string) error {
	var eps []*Endpoint
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		eps, err = endpointsIn(tx.Bucket(store.BucketNetworks), containerID+"/")
		return err
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		key := keyEndpoint + ep.ContainerID + "/" + ep.NetworkID
		m.mu.Lock()
		// A run's exit and a removal may clean up together: the one
		// that finds the record gone (or another endpoint's there)
		// leaves the ports and the veth to whoever forgot it, since
		// they may already be another container's.
		if !m.stored(key, ep.ID) {
			m.mu.Unlock()
			continue
		}
		errs = append(errs, m.forget(key, ep))
		errs = append(errs, m.unplugLocked(ep))
		m.mu.Unlock()
		m.event("disconnect", ep.NetworkID, ep.NetworkName, containerID)
	}
	if slices.ContainsFunc(eps, func(ep *Endpoint) bool { return ep.NetNS != "" }) {
		// Its names go, and the resolver's sockets in its namespace.
		errs = append(errs, m.syncDNS(ctx, ""))
	}
	return errors.Join(errs...)
}

// stored says whether the endpoint record at key is the endpoint id.
func (m *Manager) stored(key, id string) bool {
	var ok bool
	m.cfg.Store.View(func(tx *bolt.Tx) error {
		var ep Endpoint
		v := tx.Bucket(store.BucketNetworks).Get([]byte(key))
		ok = v != nil && json.Unmarshal(v, &ep) == nil && ep.ID == id
		return nil
	})
	return ok
}

// unplugLocked sets an ended container's host veth down and deletes
// that link (found now, so a name taken again later is not touched) in
// the background, or at once once Close has begun: nothing would wait
// for it then. Called under m.mu, which orders it against Close.
func (m *Manager) unplugLocked(ep *Endpoint) error {
	link, err := setLinkDown(ep.HostVeth)
	if link == nil || err != nil {
		return err // nil, nil: gone with the container's namespace
	}
	if m.closing {
		return m.deleteVeth(link)
	}
	m.unplugs.Add(1)
	go func() {
		defer m.unplugs.Done()
		if err := m.deleteVeth(link); err != nil {
			m.log.Warn("remove the veth of an ended container", "link", ep.HostVeth, "err", err)
		}
	}()
	return nil
}

// DetachNetwork removes the container's endpoint on one network (a
// disconnect while it runs); if that endpoint was the container's way
// out, the next network that has one gives the default route.
func (m *Manager) DetachNetwork(ctx context.Context, containerID, network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.network(network)
	if err != nil {
		return err
	}
	eps, err := m.Endpoints(containerID)
	if err != nil {
		return err
	}
	var gone *Endpoint
	var rest []*Endpoint
	for _, ep := range eps {
		if ep.NetworkID == n.ID {
			gone = ep
			continue
		}
		if o, err := m.network(ep.NetworkID); err == nil && !o.Internal && ep.IfName != "" {
			rest = append(rest, ep)
		}
	}
	if gone == nil {
		return errdefs.NotFound(fmt.Errorf("container %s is not connected to network %s", containerID, n.Name))
	}
	if err := m.releaseLocked(keyEndpoint+containerID+"/"+n.ID, gone); err != nil {
		return err
	}
	m.event("disconnect", n.ID, n.Name, containerID)
	if userDefined(n) {
		if err := m.syncDNS(ctx, ""); err != nil {
			m.log.Warn("embedded DNS after a disconnect", "container", containerID[:12], "err", err)
		}
	}
	if gone.Sandbox != "" {
		if err := restoreDefaultRoute(gone.Sandbox, rest); err != nil {
			m.log.Warn("default route after a disconnect", "container", containerID[:12], "err", err)
		}
	}
	return nil
}

// release deletes an endpoint: its host veth (the kernel takes tens of
// milliseconds to unregister the pair, done without m.mu), then, under
// m.mu, its published ports (rules first, then the host ports) and its
// record, which frees its address. The caller must not hold m.mu.
func (m *Manager) release(key string, ep *Endpoint) error {
	err := m.unplug(ep)
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(err, m.forget(key, ep))
}

// releaseLocked is release for a caller that holds m.mu.
func (m *Manager) releaseLocked(key string, ep *Endpoint) error {
	return errors.Join(m.unplug(ep), m.forget(key, ep))
}

// unplug removes an endpoint's host veth.
func (m *Manager) unplug(ep *Endpoint) error {
	return deleteLink(ep.HostVeth)
}

// forget removes an endpoint's port rules, releases its host ports and
// deletes its record (under m.mu: a rewrite of the table, which puts
// back the ports of every stored endpoint, must not run between the
// rules' removal and the record's).
func (m *Manager) forget(key string, ep *Endpoint) error {
	err := m.fw.deletePorts(context.Background(), ep)
	m.ports.release(ep.Ports)
	return errors.Join(err, m.cfg.Store.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketNetworks).Delete([]byte(key))
	}))
}

// Endpoints are a container's current endpoints.
func (m *Manager) Endpoints(containerID string) ([]*Endpoint, error) {
	var eps []*Endpoint
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		eps, err = endpointsIn(tx.Bucket(store.BucketNetworks), containerID+"/")
		return err
	})
	return eps, err
}

// AttachedContainers are the containers that have endpoints.
func (m *Manager) AttachedContainers(ctx context.Context) ([]string, error) {
	var ids []string
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		eps, err := endpointsIn(tx.Bucket(store.BucketNetworks), "")
		for _, ep := range eps {
			if len(ids) == 0 || ids[len(ids)-1] != ep.ContainerID {
				ids = append(ids, ep.ContainerID)
			}
		}
		return err
	})
	return ids, err
}

// removeStrayVeths deletes the veths on engined's bridges that belong to
// no endpoint (an endpoint is stored before its veth is made, so these
// are left by an engined killed mid-attach, or by hand). Called at start,
// before any container can attach.
func (m *Manager) removeStrayVeths(nets []*Network, ports portsByBridge, eps []*Endpoint) {
	keep := map[string]bool{}
	for _, ep := range eps {
		keep[ep.HostVeth] = true
	}
	for _, n := range nets {
		for _, p := range ports.of(n.Bridge) {
			if name := p.name; !keep[name] {
				m.log.Info("removing a veth that belongs to no endpoint", "link", name, "bridge", n.Bridge)
				if err := deleteLink(name); err != nil {
					m.log.Warn("remove veth", "link", name, "err", err)
				}
			}
		}
	}
}

// event publishes a network event: dockerd's actor is the network, with
// its name, its driver and the container, if any.
func (m *Manager) event(action, networkID, name, containerID string) {
	if m.cfg.Events == nil {
		return
	}
	attrs := map[string]string{"name": name, "type": "bridge"}
	if containerID != "" {
		attrs["container"] = containerID
	}
	m.cfg.Events.Publish("network", action, networkID, attrs)
}

func networksIn(b *bolt.Bucket) ([]*Network, error) {
	var out []*Network
	c := b.Cursor()
	for k, v := c.Seek([]byte(keyNetwork)); k != nil && strings.HasPrefix(string(k), keyNetwork); k, v = c.Next() {
		var n Network
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("network record %s: %w", k, err)
		}
		if n.Options == nil {
			n.Options = map[string]string{}
		}
		out = append(out, &n)
	}
	return out, nil
}

func endpointsIn(b *bolt.Bucket, containerPrefix string) ([]*Endpoint, error) {
	var out []*Endpoint
	prefix := keyEndpoint + containerPrefix
	c := b.Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		var e Endpoint
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("endpoint record %s: %w", k, err)
		}
		out = append(out, &e)
	}
	return out, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// newIDFor is a predefined network's ID: stable for a name, as the
// random ones are unique.
func newIDFor(name string) string {
	sum := sha256.Sum256([]byte("engined predefined network " + name))
	return hex.EncodeToString(sum[:])
}

// hostVethName is the host end of an endpoint's veth: as long as a link
// name may be (15 bytes), so that two endpoints' names collide with odds
// of one in 2^44, not 2^28 as with dockerd's 7 hex digits. dockerd draws
// again when a name is taken; this name is the endpoint's own, so a
// collision (also with a veth still being deleted) would fail the start.
func hostVethName(epID string) string { return "veth" + epID[:11] }

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomMAC is a random unicast, locally administered address.
func randomMAC() net.HardwareAddr {
	b := make([]byte, 6)
	rand.Read(b)
	b[0] = (b[0] &^ 0x01) | 0x02
	return b
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
