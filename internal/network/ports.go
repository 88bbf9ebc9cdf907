package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/store"
)

// Port publishing. Forwarding is the kernel's: each published port is
// one element of a DNAT map in engined's table (see nft.go), so a
// container's ports answer while engined is down or restarting. engined
// also holds a socket bound to each host port, as dockerd does: that
// reserves the port against other engined containers and against any
// other process, and makes a taken port an error at start instead of a
// silent mis-route.

// PortRequest is a port a container asks to publish (one -p, or one
// exposed port of -P).
type PortRequest struct {
	Proto         string // "tcp" or "udp"
	ContainerPort uint16
	HostIP        string // "" or "0.0.0.0": every host address
	// HostPortStart is the host port, or the first of a range; 0: an
	// ephemeral port (from ip_local_port_range, the kernel's choice).
	HostPortStart uint16
	// HostPortEnd is a range's last port; 0 or HostPortStart: one port.
	HostPortEnd uint16
}

// PortBinding is a published port as bound on the host.
type PortBinding struct {
	Proto         string `json:"proto"`
	ContainerPort uint16 `json:"container_port"`
	HostIP        string `json:"host_ip"` // 0.0.0.0: every address
	HostPort      uint16 `json:"host_port"`
}

func (b PortBinding) key() portKey {
	ip, _ := netip.ParseAddr(b.HostIP)
	return portKey{proto: b.Proto, ip: ip, port: b.HostPort}
}

// portKey names a host port engined holds.
type portKey struct {
	proto string
	ip    netip.Addr // 0.0.0.0: every address
	port  uint16
}

func (k portKey) String() string { return fmt.Sprintf("%s:%d/%s", k.ip, k.port, k.proto) }

// overlaps: two bindings of one protocol and port that the same packet
// could match (the same address, or one of them on every address).
func (k portKey) overlaps(o portKey) bool {
	return k.proto == o.proto && k.port == o.port && (k.ip == o.ip || k.ip.IsUnspecified() || o.ip.IsUnspecified())
}

// reservations are the host sockets engined holds for published ports,
// guarded by Manager.mu.
type reservations map[portKey]*os.File

// conflict is the reservation a new one on k would clash with.
func (r reservations) conflict(k portKey) (portKey, bool) {
	for h := range r {
		if h.overlaps(k) {
			return h, true
		}
	}
	return portKey{}, false
}

// reserve binds the host side of a request: its one port, the first
// free port of its range, or an ephemeral one.
func (r reservations) reserve(req PortRequest) (PortBinding, error) {
	ip := netip.IPv4Unspecified()
	if req.HostIP != "" {
		a, err := netip.ParseAddr(req.HostIP)
		if err != nil {
			return PortBinding{}, errdefs.InvalidArgument(fmt.Errorf("invalid host IP %q", req.HostIP))
		}
		if !a.Unmap().Is4() {
			return PortBinding{}, errdefs.InvalidArgument(fmt.Errorf("host IP %s: engined publishes ports on IPv4 addresses only", a))
		}
		ip = a.Unmap()
	}
	if req.Proto != "tcp" && req.Proto != "udp" {
		return PortBinding{}, errdefs.InvalidArgument(fmt.Errorf("invalid proto %q: engined publishes tcp and udp ports", req.Proto))
	}
	b := PortBinding{Proto: req.Proto, ContainerPort: req.ContainerPort, HostIP: ip.String()}
	if req.HostPortStart == 0 {
		port, f, err := bindHostPort(portKey{proto: req.Proto, ip: ip})
		if err != nil {
			return PortBinding{}, err
		}
		b.HostPort = port
		r[b.key()] = f
		return b, nil
	}
	start, end := req.HostPortStart, max(req.HostPortEnd, req.HostPortStart)
	for p := int(start); p <= int(end); p++ {
		k := portKey{proto: req.Proto, ip: ip, port: uint16(p)}
		if h, taken := r.conflict(k); taken {
			if start == end {
				return PortBinding{}, errdefs.Conflict(fmt.Errorf("Bind for %s:%d failed: port is already allocated", h.ip, h.port))
			}
			continue
		}
		_, f, err := bindHostPort(k)
		if err != nil {
			if start == end || !errors.Is(err, unix.EADDRINUSE) {
				return PortBinding{}, err
			}
			continue
		}
		b.HostPort = k.port
		r[k] = f
		return b, nil
	}
	return PortBinding{}, errdefs.Conflict(fmt.Errorf("Bind for %s:%d-%d failed: all ports are allocated", ip, start, end))
}

// reserveAll reserves every request, or none.
func (r reservations) reserveAll(reqs []PortRequest) ([]PortBinding, error) {
	var out []PortBinding
	for _, req := range reqs {
		b, err := r.reserve(req)
		if err != nil {
			r.release(out)
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// restore takes the host ports of bindings made by an earlier engined
// again; a port something else took meanwhile is logged and skipped
// (its DNAT still forwards to the container, which keeps answering).
func (r reservations) restore(log *slog.Logger, containerID string, bs []PortBinding) {
	for _, b := range bs {
		k := b.key()
		if _, ok := r[k]; ok {
			continue
		}
		if _, f, err := bindHostPort(k); err != nil {
			log.Warn("published port: cannot reserve its host port again", "container", short(containerID), "port", k.String(), "err", err)
		} else {
			r[k] = f
		}
	}
}

// release closes the sockets of bindings.
func (r reservations) release(bs []PortBinding) {
	for _, b := range bs {
		k := b.key()
		if f, ok := r[k]; ok {
			f.Close()
			delete(r, k)
		}
	}
}

// bindHostPort binds (and for TCP, listens on) k's address and port; port
// 0 lets the kernel pick one from ip_local_port_range. The socket drops
// every packet (a filter attached before the bind): traffic reaching it
// instead of the DNAT (before the rules are in, or after they went) is
// dropped, so clients retry rather than hang in an accept queue nobody
// serves. It is close-on-exec: shims must never inherit it.
func bindHostPort(k portKey) (uint16, *os.File, error) {
	typ := unix.SOCK_STREAM
	if k.proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("socket for host port %s: %w", k, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if typ == unix.SOCK_STREAM {
		// As dockerd: TIME_WAIT connections of an earlier user of the
		// port do not keep it; the listen below still makes it ours alone.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return 0, nil, fmt.Errorf("host port %s: SO_REUSEADDR: %w", k, err)
		}
	}
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
		return 0, nil, fmt.Errorf("host port %s: socket filter: %w", k, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(k.port), Addr: k.ip.As4()}); err != nil {
		return 0, nil, bindError(k, err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 1); err != nil {
			return 0, nil, bindError(k, err)
		}
	}
	port := k.port
	if port == 0 {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return 0, nil, fmt.Errorf("host port %s: getsockname: %w", k, err)
		}
		port = uint16(sa.(*unix.SockaddrInet4).Port)
	}
	ok = true
	return port, os.NewFile(uintptr(fd), fmt.Sprintf("host port %s:%d/%s", k.ip, port, k.proto)), nil
}

// bindError is dockerd's wording for a port the kernel refused (another
// process has it, or the address is not the host's).
func bindError(k portKey, err error) error {
	what := fmt.Errorf("failed to bind host port %s: %w", k, err)
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return errdefs.Conflict(what)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return errdefs.InvalidArgument(what)
	}
	return what
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// reservePorts takes the host ports an endpoint asks for; an error
// names the container as dockerd's does.
func (m *Manager) reservePorts(n *Network, ep *Endpoint, reqs []PortRequest) ([]PortBinding, error) {
	if len(reqs) == 0 || n.Internal {
		// dockerd publishes nothing on an internal network: nothing
		// leaves it, nothing gets in.
		return nil, nil
	}
	bs, err := m.ports.reserveAll(reqs)
	if err != nil {
		name := short(ep.ContainerID)
		if m.cfg.ContainerName != nil {
			name = cmpOr(m.cfg.ContainerName(ep.ContainerID), name)
		}
		return nil, fmt.Errorf("driver failed programming external connectivity on endpoint %s (%s): %w", name, ep.ID, err)
	}
	return bs, nil
}

// portComment names an endpoint's container in its rules.
func (m *Manager) portComment(ep *Endpoint) string {
	name := ""
	if m.cfg.ContainerName != nil {
		name = m.cfg.ContainerName(ep.ContainerID)
	}
	return elementComment(name, ep.ContainerID)
}

// restorePorts, at start, holds the host ports of every stored endpoint
// again. The endpoints of containers that stopped while engined was
// down are released afterwards, by the container service's reconcile.
func (m *Manager) restorePorts(eps []*Endpoint) {
	for _, ep := range eps {
		m.ports.restore(m.log, ep.ContainerID, ep.Ports)
	}
}

// portElements are the DNAT map elements of every stored endpoint's
// published ports: what a rewrite of the table puts back.
func (m *Manager) portElements() ([]*knftables.Element, error) {
	eps, err := m.allEndpoints()
	if err != nil {
		return nil, err
	}
	var out []*knftables.Element
	for _, ep := range eps {
		for _, b := range ep.Ports {
			out = append(out, portElement(ep, b, m.portComment(ep)))
		}
	}
	return out, nil
}

func (m *Manager) allEndpoints() ([]*Endpoint, error) {
	var eps []*Endpoint
	err := m.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		eps, err = endpointsIn(tx.Bucket(store.BucketNetworks), "")
		return err
	})
	return eps, err
}

// routeLocalnet lets the host's 127.0.0.1 traffic to published ports be
// routed out of a bridge (DNATed in the output hook, masqueraded in
// postrouting); raw-prerouting drops what containers send to 127/8.
func routeLocalnet(n *Network) error {
	if n.Internal {
		return nil
	}
	p := "/proc/sys/net/ipv4/conf/" + n.Bridge + "/route_localnet"
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("route_localnet on %s: %w", n.Bridge, err)
	}
	return nil
}
