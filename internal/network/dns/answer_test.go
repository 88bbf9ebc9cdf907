package dns

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// Three containers: web on front and back, db on back, solo on front;
// web and db share the alias "svc" on back.
func testRecords(upstream string) *Records {
	return &Records{
		Networks: []Network{{ID: "n-front", Name: "front"}, {ID: "n-back", Name: "Back"}},
		Endpoints: []Endpoint{
			{ContainerID: "web", NetworkID: "n-front", Names: []string{"web", "webid", "webhost"}, IPv4: "10.1.0.2"},
			{ContainerID: "web", NetworkID: "n-back", Names: []string{"web", "svc", "webid", "webhost"}, IPv4: "10.2.0.2"},
			{ContainerID: "db", NetworkID: "n-back", Names: []string{"db", "svc", "dbid"}, IPv4: "10.2.0.3"},
			{ContainerID: "solo", NetworkID: "n-front", Names: []string{"solo"}, IPv4: "10.1.0.3"},
		},
		Sandboxes: []Sandbox{
			{ContainerID: "web", Upstreams: []Upstream{{Addr: upstream, HostNS: true}}},
			{ContainerID: "db", Upstreams: []Upstream{{Addr: upstream, HostNS: true}}},
			{ContainerID: "solo", Upstreams: []Upstream{{Addr: upstream, HostNS: true}}},
		},
	}
}

// listenPair is a UDP and a TCP socket on one loopback port (a client
// has one address for both); a port free for UDP may be taken for TCP,
// so it tries again.
func listenPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
		if try == 100 {
			t.Fatal(err)
		}
	}
}

// serveAs runs the resolver's query path for one container on a
// loopback port, as its sockets in the container's namespace would.
func serveAs(t *testing.T, r *Resolver, id string) string {
	t.Helper()
	pc, l := listenPair(t)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { r.serve(context.Background(), id, netns.None(), w, q) })
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// upstream answers example.org. A 192.0.2.1 and 50 A records for
// big.example.org., truncating over UDP as a server does.
func upstream(t *testing.T) string {
	t.Helper()
	pc, l := listenPair(t)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch q.Question[0].Name {
		case "example.org.":
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(192, 0, 2, 1)})
		case "big.example.org.":
			for i := 0; i < 50; i++ {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "big.example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(192, 0, 2, byte(i))})
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		if w.LocalAddr().Network() == "udp" {
			m.Truncate(dns.MinMsgSize)
		}
		w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

func newTestResolver(t *testing.T) *Resolver {
	t.Helper()
	r := &Resolver{log: slog.New(slog.DiscardHandler), ctx: context.Background()}
	r.table.Store(newTable(testRecords(upstream(t))))
	return r
}

func query(t *testing.T, addr, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	m, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", dns.TypeToString[qtype], name, proto, err)
	}
	return m
}

func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
			if a.Hdr.Ttl != TTL {
				out = append(out, "bad ttl")
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestAnswersAreScopedToSharedNetworks(t *testing.T) {
	r := newTestResolver(t)
	web, db, solo := serveAs(t, r, "web"), serveAs(t, r, "db"), serveAs(t, r, "solo")
	for _, c := range []struct {
		from, name string
		want       []string // nil: NXDOMAIN (forwarded; the upstream does not know it)
	}{
		{web, "db", []string{"10.2.0.3"}},
		{web, "DB.", []string{"10.2.0.3"}},
		{web, "db.back", []string{"10.2.0.3"}},
		{web, "db.front", nil},
		{web, "solo", []string{"10.1.0.3"}},
		{web, "svc", []string{"10.2.0.2", "10.2.0.3"}},
		{db, "web", []string{"10.2.0.2"}}, // only its address on back
		{db, "webhost", []string{"10.2.0.2"}},
		{db, "solo", nil}, // never across networks
		{solo, "web", []string{"10.1.0.2"}},
		{solo, "db", nil},
		{solo, "svc", nil},
		{web, "web", []string{"10.1.0.2", "10.2.0.2"}}, // every shared network
		{web, "web.front", []string{"10.1.0.2"}},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			m := query(t, c.from, proto, c.name, dns.TypeA)
			switch {
			case c.want == nil && m.Rcode != dns.RcodeNameError:
				t.Errorf("%s from %s over %s: %v, want NXDOMAIN", c.name, c.from, proto, m)
			case c.want != nil && (m.Rcode != dns.RcodeSuccess || !slices.Equal(addrs(m), c.want)):
				t.Errorf("%s from %s over %s: %s %v, want %v", c.name, c.from, proto, dns.RcodeToString[m.Rcode], addrs(m), c.want)
			}
		}
	}
}

func TestAAAAOfAKnownNameIsEmpty(t *testing.T) {
	r := newTestResolver(t)
	web := serveAs(t, r, "web")
	m := query(t, web, "udp", "db", dns.TypeAAAA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA db: %v, want an empty NOERROR", m)
	}
	m = query(t, web, "udp", "db", dns.TypeMX)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("MX db: %v, want an empty NOERROR", m)
	}
	// Unknown here: forwarded.
	if m := query(t, serveAs(t, r, "solo"), "udp", "db", dns.TypeAAAA); m.Rcode != dns.RcodeNameError {
		t.Errorf("AAAA db from solo: %v, want the upstream's NXDOMAIN", m)
	}
}

func TestPTR(t *testing.T) {
	r := newTestResolver(t)
	web, solo := serveAs(t, r, "web"), serveAs(t, r, "solo")
	m := query(t, web, "udp", "3.0.2.10.in-addr.arpa", dns.TypePTR)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "db.Back." || m.Answer[0].Header().Ttl != TTL {
		t.Errorf("PTR of db's address: %v", m)
	}
	// The first name of the endpoint, on the network of the address.
	m = query(t, web, "tcp", "2.0.1.10.in-addr.arpa.", dns.TypePTR)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "web.front." {
		t.Errorf("PTR of web's front address: %v", m)
	}
	// db's address is not on a network solo is on: forwarded.
	if m := query(t, solo, "udp", "3.0.2.10.in-addr.arpa", dns.TypePTR); m.Rcode != dns.RcodeNameError {
		t.Errorf("PTR of db's address from solo: %v, want the upstream's NXDOMAIN", m)
	}
}

func TestForwarding(t *testing.T) {
	r := newTestResolver(t)
	web := serveAs(t, r, "web")
	m := query(t, web, "udp", "example.org", dns.TypeA)
	if got := strings.Join(func() []string {
		var s []string
		for _, rr := range m.Answer {
			s = append(s, rr.(*dns.A).A.String())
		}
		return s
	}(), ","); got != "192.0.2.1" {
		t.Errorf("example.org: %v", m)
	}
	// Too big for UDP: truncated, so the client asks over TCP, which
	// the resolver forwards over TCP.
	m = query(t, web, "udp", "big.example.org", dns.TypeA)
	if !m.Truncated || len(m.Answer) >= 50 {
		t.Errorf("big over UDP: truncated %v with %d answers", m.Truncated, len(m.Answer))
	}
	m = query(t, web, "tcp", "big.example.org", dns.TypeA)
	if m.Truncated || len(m.Answer) != 50 {
		t.Errorf("big over TCP: truncated %v with %d answers", m.Truncated, len(m.Answer))
	}
}

func TestNoUpstreamIsServfail(t *testing.T) {
	r := &Resolver{log: slog.New(slog.DiscardHandler), ctx: context.Background()}
	recs := testRecords("")
	recs.Sandboxes[0].Upstreams = nil
	r.table.Store(newTable(recs))
	if m := query(t, serveAs(t, r, "web"), "udp", "example.org", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("no upstream: %v, want SERVFAIL", m)
	}
	// Its own names still answer.
	if m := query(t, serveAs(t, r, "web"), "udp", "db", dns.TypeA); !slices.Equal(addrs(m), []string{"10.2.0.3"}) {
		t.Errorf("db with no upstream: %v", m)
	}
}

func TestPtrAddr(t *testing.T) {
	for in, want := range map[string]string{"4.3.2.1.in-addr.arpa.": "1.2.3.4", "4.3.2.1.IN-ADDR.ARPA": "1.2.3.4", "3.2.1.in-addr.arpa.": "", "x.3.2.1.in-addr.arpa.": "", "1.0.0.0.ip6.arpa.": ""} {
		a, ok := ptrAddr(in)
		if got := a.String(); (want == "" && ok) || (want != "" && got != want) {
			t.Errorf("ptrAddr(%q) = %s %v, want %q", in, got, ok, want)
		}
	}
}
