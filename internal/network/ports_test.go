package network

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"sigs.k8s.io/knftables"

	"github.com/engined/engined/internal/errdefs"
)

// The layout of published ports: fixed chains and rules, one map
// element per port; a rewrite of the table keeps the elements; a
// delete of what is not there is no error.
func TestFirewallPublishedPorts(t *testing.T) {
	policy := "accept"
	f, own, _ := fakeFirewall(&policy)
	ctx := context.Background()
	if err := f.sync(ctx, []*Network{defNet, inNet}); err != nil {
		t.Fatal(err)
	}
	web := &Endpoint{ID: "e1", ContainerID: "c1c1c1c1c1c1c1c1", IPAddress: "172.17.0.2", Ports: []PortBinding{
		{Proto: "tcp", ContainerPort: 80, HostIP: "0.0.0.0", HostPort: 8080},
		{Proto: "udp", ContainerPort: 53, HostIP: "127.0.0.1", HostPort: 5353},
	}}
	if err := f.addPorts(ctx, web, elementComment("web", web.ContainerID)); err != nil {
		t.Fatal(err)
	}
	dump := own.Dump()
	for _, want := range []string{
		`add map ip engined host-ports { type inet_proto . inet_service : ipv4_addr . inet_service ;`,
		`add map ip engined addr-ports { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ;`,
		`add rule ip engined published dnat ip to ip daddr . meta l4proto . th dport map @addr-ports`,
		`add rule ip engined published dnat ip to meta l4proto . th dport map @host-ports`,
		`add chain ip engined prerouting { type nat hook prerouting priority -100 ; }`,
		`add rule ip engined prerouting ip daddr != 127.0.0.0/8 fib daddr type local jump published`,
		`add chain ip engined output { type nat hook output priority -100 ; }`,
		`add rule ip engined output fib daddr type local jump published`,
		`add rule ip engined raw-prerouting iifname "engined0" ip daddr 127.0.0.0/8 drop`,
		`add rule ip engined postrouting oifname "engined0" ip saddr 127.0.0.0/8 masquerade`,
		`add rule ip engined postrouting oifname "engined0" ip saddr 172.17.0.0/16 ct status dnat masquerade`,
		`add element ip engined host-ports { tcp . 8080 comment "web c1c1c1c1c1c1" : 172.17.0.2 . 80 }`,
		`add element ip engined addr-ports { 127.0.0.1 . udp . 5353 comment "web c1c1c1c1c1c1" : 172.17.0.2 . 53 }`,
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("missing %q in:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, `"br-333333333333" ip daddr 127.0.0.0/8`) || strings.Contains(dump, `oifname "br-333333333333" ip saddr`) {
		t.Errorf("rules for published ports on an internal network:\n%s", dump)
	}
	// A network change rewrites the table and puts back the published
	// ports.
	f.published = func() ([]*knftables.Element, error) {
		return []*knftables.Element{portElement(web, web.Ports[0], "web")}, nil
	}
	if err := f.sync(ctx, []*Network{defNet, appNet}); err != nil {
		t.Fatal(err)
	}
	if els, _ := own.ListElements(ctx, "map", mapHostPorts); len(els) != 1 {
		t.Errorf("host-ports after a rewrite of the table: %d elements, want 1:\n%s", len(els), own.Dump())
	}
	if err := f.deletePorts(ctx, web); err != nil {
		t.Fatal(err)
	}
	if err := f.deletePorts(ctx, web); err != nil {
		t.Errorf("deleting ports that are gone: %v", err)
	}
	if dump := own.Dump(); strings.Contains(dump, "add element") {
		t.Errorf("elements left after deletePorts:\n%s", dump)
	}
}

// Reservations hold the host port: a second reservation of it is a
// conflict in dockerd's words, so is a port another process holds; a
// range gives its first free port; 0 an ephemeral one from
// ip_local_port_range; release frees the port for anyone.
func TestPortReservations(t *testing.T) {
	r := reservations{}
	defer func() {
		for _, f := range r {
			f.Close()
		}
	}()
	b, err := r.reserve(PortRequest{Proto: "tcp", ContainerPort: 80, HostIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := localPortRange(t)
	if b.HostPort < lo || b.HostPort > hi || b.HostIP != "127.0.0.1" {
		t.Errorf("ephemeral binding %+v, want a port in %d-%d", b, lo, hi)
	}
	port := b.HostPort
	// The kernel refuses the port to others.
	if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(port))); err == nil {
		l.Close()
		t.Errorf("another process could listen on the reserved port %d", port)
	}
	for _, ip := range []string{"127.0.0.1", ""} {
		_, err = r.reserve(PortRequest{Proto: "tcp", ContainerPort: 81, HostIP: ip, HostPortStart: port})
		if !(errdefs.Code(err) == codes.FailedPrecondition) || !strings.Contains(err.Error(), "Bind for 127.0.0.1:"+strconv.Itoa(int(port))+" failed: port is already allocated") {
			t.Errorf("second reservation on %q: %v", ip, err)
		}
	}
	// udp is another port.
	if _, err := r.reserve(PortRequest{Proto: "udp", ContainerPort: 53, HostIP: "127.0.0.1", HostPortStart: port}); err != nil {
		t.Errorf("udp on a port tcp has: %v", err)
	}
	// A range: its first free port.
	got, err := r.reserve(PortRequest{Proto: "tcp", ContainerPort: 82, HostIP: "127.0.0.1", HostPortStart: port, HostPortEnd: port + 1})
	if err != nil || got.HostPort != port+1 {
		t.Errorf("range %d-%d: %+v, %v", port, port+1, got, err)
	}
	// A port some other process holds.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other := uint16(l.Addr().(*net.TCPAddr).Port)
	_, err = r.reserve(PortRequest{Proto: "tcp", ContainerPort: 80, HostIP: "127.0.0.1", HostPortStart: other})
	if !(errdefs.Code(err) == codes.FailedPrecondition) || !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a port another process listens on: %v", err)
	}
	// Not an address of the host's.
	if _, err := r.reserve(PortRequest{Proto: "tcp", ContainerPort: 80, HostIP: "203.0.113.254", HostPortStart: 8080}); errdefs.Code(err) != codes.InvalidArgument {
		t.Errorf("a foreign address: %v", err)
	}
	r.release([]PortBinding{b})
	l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatalf("released port %d: %v", port, err)
	}
	l2.Close()
}

func localPortRange(t *testing.T) (uint16, uint16) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	return uint16(lo), uint16(hi)
}
