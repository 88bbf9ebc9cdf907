package network

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/network/dns"
	"github.com/engined/engined/internal/resolvconf"
	"github.com/engined/engined/internal/store"
)

// DNSConfig is where the embedded resolver lives and what it forwards to.
type DNSConfig struct {
	// Root is the resolver's state directory (under engined's exec
	// root); empty: no embedded DNS.
	Root string
	// Command starts the resolver process: engined-dns, or engined's
	// hidden dns-resolver subcommand; --root and --control-fd follow.
	Command []string
	// HostResolvConf is the host's resolv.conf, whose servers the
	// resolver forwards other names to; empty: /etc/resolv.conf.
	HostResolvConf string
}

type dnsState struct {
	cfg    DNSConfig
	client *dns.Client
	// mu makes each sync read the records, write the file and have the
	// resolver apply it before the next one reads: a slower earlier
	// sync would otherwise write over a later one's records.
	mu sync.Mutex
}

func newDNSState(cfg DNSConfig, log *slog.Logger) *dnsState {
	if cfg.HostResolvConf == "" {
		cfg.HostResolvConf = "/etc/resolv.conf"
	}
	s := &dnsState{cfg: cfg}
	if cfg.Root != "" {
		s.client = dns.NewClient(cfg.Root, cfg.Command, log)
	}
	return s
}

// userDefined: a network whose containers resolve each other's names
// (dockerd's: every bridge network but the default one).
func userDefined(n *Network) bool {
	return n.Driver == "bridge" && n.Name != BridgeNetwork
}

// dnsEndpoint fills in an endpoint's names: dockerd's DNSNames (name,
// aliases, short id, hostname, without repeats) on user-defined
// networks, and where the container's namespace is.
func dnsEndpoint(ep *Endpoint, n *Network, containerID, netnsPath string, req AttachRequest) error {
	if !userDefined(n) {
		if len(req.Aliases) > 0 {
			return errdefs.InvalidArgument(fmt.Errorf("network-scoped aliases are only supported for user-defined networks"))
		}
		return nil
	}
	ep.Aliases = req.Aliases
	ep.DNS = req.DNS
	names := []string{}
	if name := strings.TrimPrefix(req.Name, "/"); name != "" {
		names = append(names, name)
	}
	names = append(names, req.Aliases...)
	names = append(names, containerID[:min(12, len(containerID))])
	if req.Hostname != "" {
		names = append(names, req.Hostname)
	}
	for _, name := range names {
		if !slices.Contains(ep.DNSNames, name) {
			ep.DNSNames = append(ep.DNSNames, name)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(netnsPath, &st); err != nil {
		return fmt.Errorf("container network namespace %s: %w", netnsPath, err)
	}
	ep.NetNS, ep.NetNSInode = netnsPath, st.Ino
	return nil
}

// dnsRecords are the resolver's records, from the stored networks and
// endpoints alone: whatever changed endpoints (attach, detach, connect,
// disconnect) writes them with syncDNS.
func (m *Manager) dnsRecords() (*dns.Records, error) {
	recs := &dns.Records{Networks: []dns.Network{}, Endpoints: []dns.Endpoint{}, Sandboxes: []dns.Sandbox{}}
	host, _ := os.ReadFile(m.dns.cfg.HostResolvConf)
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketNetworks)
		nets, err := networksIn(b)
		if err != nil {
			return err
		}
		user, internal := map[string]bool{}, map[string]bool{}
		for _, n := range nets {
			internal[n.ID] = n.Internal
			if userDefined(n) {
				user[n.ID] = true
				recs.Networks = append(recs.Networks, dns.Network{ID: n.ID, Name: n.Name})
			}
		}
		eps, err := endpointsIn(b, "")
		if err != nil {
			return err
		}
		// A container only on --internal networks has no way out, so
		// neither have its queries (dockerd's resolver does not forward
		// for such a container either).
		outside := map[string]bool{}
		for _, ep := range eps {
			outside[ep.ContainerID] = outside[ep.ContainerID] || !internal[ep.NetworkID]
		}
		seen := map[string]bool{}
		for _, ep := range eps {
			if !user[ep.NetworkID] || ep.NetNS == "" || ep.IPAddress == "" {
				continue
			}
			recs.Endpoints = append(recs.Endpoints, dns.Endpoint{ContainerID: ep.ContainerID, NetworkID: ep.NetworkID,
				Names: ep.DNSNames, IPv4: ep.IPAddress})
			if seen[ep.ContainerID] {
				continue
			}
			seen[ep.ContainerID] = true
			sb := dns.Sandbox{ContainerID: ep.ContainerID, NetNS: ep.NetNS, NetNSInode: ep.NetNSInode}
			for _, u := range resolvconf.Upstreams(host, ep.DNS) {
				if !outside[ep.ContainerID] {
					break
				}
				sb.Upstreams = append(sb.Upstreams, dns.Upstream{Addr: net.JoinHostPort(u.Addr.String(), "53"), HostNS: u.HostNS})
			}
			recs.Sandboxes = append(recs.Sandboxes, sb)
		}
		return nil
	})
	return recs, err
}

// syncDNS writes the records file and has the resolver apply it,
// starting the resolver if there is something to serve and none runs.
// With containerID, that container's sandbox must have been opened.
func (m *Manager) syncDNS(ctx context.Context, containerID string) error {
	if m.dns.client == nil {
		return nil
	}
	m.dns.mu.Lock()
	defer m.dns.mu.Unlock()
	start := time.Now()
	recs, err := m.dnsRecords()
	if err != nil {
		return err
	}
	if err := dns.WriteRecords(m.dns.cfg.Root, recs); err != nil {
		return err
	}
	written := time.Since(start)
	ack, err := m.dns.client.Reload(ctx, len(recs.Sandboxes))
	if err != nil {
		return fmt.Errorf("embedded DNS: %w", err)
	}
	if msg, failed := ack.Failed[containerID]; failed && containerID != "" {
		return fmt.Errorf("embedded DNS in the container: %s", msg)
	}
	m.log.Debug("dns records applied", "sandboxes", ack.Sandboxes, "failed", len(ack.Failed), "written", written, "took", time.Since(start))
	return nil
}

// Rename gives a container's endpoints on user-defined networks its new
// name: the first of their DNS names, as dockerd's.
func (m *Manager) Rename(ctx context.Context, containerID, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	err := m.cfg.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketNetworks)
		eps, err := endpointsIn(b, containerID+"/")
		if err != nil {
			return err
		}
		for _, ep := range eps {
			if len(ep.DNSNames) == 0 || ep.DNSNames[0] == name {
				continue
			}
			names := []string{name}
			for _, n := range ep.DNSNames[1:] {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
			ep.DNSNames, changed = names, true
			if err := putJSON(b, keyEndpoint+ep.ContainerID+"/"+ep.NetworkID, ep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !changed {
		return err
	}
	return m.syncDNS(ctx, "")
}

// Close waits for the firewall's start and the veths being deleted, and
// stops watching the resolver (which goes on serving).
func (m *Manager) Close() {
	m.fw.stop()
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.unplugs.Wait()
	if m.dns.client != nil {
		m.dns.client.Close()
	}
}
