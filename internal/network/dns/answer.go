package dns

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// TTL of every answer the resolver gives itself, as dockerd's.
const TTL = 600

// table is the records indexed for answers; it is replaced whole at
// each reload and never changed, so queries read it without locks.
type table struct {
	sandboxes map[string]*scope // by container ID
}

// scope is what one container can see: its networks, in the order of
// its endpoints, and where other names go.
type scope struct {
	nets      []*netNames
	upstreams []Upstream
}

// netNames are one network's names and addresses.
type netNames struct {
	name    string                  // the network's name, lower case
	ptrName string                  // as given, for reverse answers
	addrs   map[string][]netip.Addr // lower-case name -> addresses, endpoint order
	ptr     map[netip.Addr]string   // address -> its endpoint's first name
}

func newTable(r *Records) *table {
	nets := map[string]*netNames{}
	for _, n := range r.Networks {
		nets[n.ID] = &netNames{name: strings.ToLower(n.Name), ptrName: n.Name, addrs: map[string][]netip.Addr{}, ptr: map[netip.Addr]string{}}
	}
	onNets := map[string][]*netNames{}
	for _, ep := range r.Endpoints {
		n := nets[ep.NetworkID]
		if n == nil {
			continue
		}
		if !slices.Contains(onNets[ep.ContainerID], n) {
			onNets[ep.ContainerID] = append(onNets[ep.ContainerID], n)
		}
		ip, err := netip.ParseAddr(ep.IPv4)
		if err != nil {
			continue
		}
		for i, name := range ep.Names {
			k := strings.ToLower(name)
			if !slices.Contains(n.addrs[k], ip) {
				n.addrs[k] = append(n.addrs[k], ip)
			}
			if i == 0 {
				n.ptr[ip] = name
			}
		}
	}
	t := &table{sandboxes: map[string]*scope{}}
	for _, sb := range r.Sandboxes {
		t.sandboxes[sb.ContainerID] = &scope{nets: onNets[sb.ContainerID], upstreams: sb.Upstreams}
	}
	return t
}

// lookup finds a name as dockerd's sandbox does: "a.b.c" is a.b.c on
// any of the container's networks, then a.b on network c, then a on
// network b.c. Every address the name has on the networks the container
// shares with it is an answer. known: the name exists there.
func (s *scope) lookup(qname string) (addrs []netip.Addr, known bool) {
	name := strings.ToLower(strings.TrimSuffix(qname, "."))
	if name == "" {
		return nil, false
	}
	try := func(host, network string) bool {
		for _, n := range s.nets {
			if network != "" && n.name != network {
				continue
			}
			for _, a := range n.addrs[host] {
				if !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
		}
		return len(addrs) > 0
	}
	if try(name, "") {
		return addrs, true
	}
	for i := strings.LastIndexByte(name, '.'); i > 0; i = strings.LastIndexByte(name[:i], '.') {
		if try(name[:i], name[i+1:]) {
			return addrs, true
		}
	}
	return nil, false
}

// reverse is the name of a container address on one of the scope's
// networks: name.network, as dockerd's.
func (s *scope) reverse(addr netip.Addr) (string, bool) {
	for _, n := range s.nets {
		if name, ok := n.ptr[addr]; ok {
			return name + "." + n.ptrName, true
		}
	}
	return "", false
}

// answer is the resolver's own reply to q from the container whose
// scope is s, or nil when q is for the upstream servers.
func (s *scope) answer(q *dns.Msg) *dns.Msg {
	if len(q.Question) != 1 {
		m := reply(q)
		m.Rcode = dns.RcodeFormatError
		return m
	}
	question := q.Question[0]
	if question.Qclass != dns.ClassINET {
		return nil
	}
	if question.Qtype == dns.TypePTR {
		addr, ok := ptrAddr(question.Name)
		if !ok {
			return nil
		}
		name, ok := s.reverse(addr)
		if !ok {
			return nil
		}
		m := reply(q)
		m.Answer = []dns.RR{&dns.PTR{Hdr: header(question.Name, dns.TypePTR), Ptr: dns.Fqdn(name)}}
		return m
	}
	addrs, known := s.lookup(question.Name)
	if !known {
		return nil
	}
	// A name of a container: its IPv4 addresses for A; for anything
	// else (AAAA: engined's networks are IPv4 only) an empty NOERROR,
	// so clients do not go on to other servers or search domains.
	m := reply(q)
	if question.Qtype == dns.TypeA {
		if len(addrs) > 1 {
			// dockerd shuffles too: clients take the first address.
			rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		}
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{Hdr: header(question.Name, dns.TypeA), A: net.IP(a.AsSlice())})
		}
	}
	return m
}

func reply(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	return m
}

func header(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

// ptrAddr reads an IPv4 reverse name (4.3.2.1.in-addr.arpa.).
func ptrAddr(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(strings.ToLower(dns.Fqdn(name)), ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	slices.Reverse(parts)
	a, err := netip.ParseAddr(strings.Join(parts, "."))
	return a, err == nil && a.Is4()
}
