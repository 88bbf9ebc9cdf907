package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	bolt "go.etcd.io/bbolt"
	"sigs.k8s.io/knftables"

	"github.com/engined/engined/internal/store"
)

// BenchmarkAttach is the engine's side of giving one container its
// endpoint on the default bridge, with real parts: a manager on a bbolt
// store of its own, with a bridge, a subnet and an nftables table of its
// own (so it runs beside any engined on the host), and a fresh network
// namespace per iteration standing for the container's (made outside the
// timer: in engined the shim's create makes it). ns/op is Attach (the
// address allocation, the records, the veth pair into the namespace, its
// address, link state and default route) plus Detach (the records gone
// and the veth set down; its deletion goes on in the background, as for
// an ended container, and overlaps the next iterations: BenchmarkAttachParts
// times it); attach-ns/op is Attach alone, detach-ns/op Detach alone.
//
//	sudo go test -run '^$' -bench Attach -benchtime 200x ./internal/network
func BenchmarkAttach(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("BenchmarkAttach needs root: it makes a bridge, veths, network namespaces and an nftables table")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("BenchmarkAttach needs the nft command (Debian package nftables)")
	}
	ctx := context.Background()
	m := benchManager(b)
	var attach, detach time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := newNetns(b)
		containerID := newID()
		b.StartTimer()
		t0 := time.Now()
		ep, err := m.Attach(ctx, containerID, "/proc/self/fd/"+strconv.Itoa(int(ns)), AttachRequest{})
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Detach(ctx, containerID); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		b.StopTimer()
		attach, detach = attach+t1.Sub(t0), detach+t2.Sub(t1)
		if ep.IfName != "eth0" || ep.IPAddress == "" {
			b.Fatalf("endpoint %+v: want eth0 with an address", ep)
		}
		ns.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(attach.Nanoseconds())/float64(b.N), "attach-ns/op")
	b.ReportMetric(float64(detach.Nanoseconds())/float64(b.N), "detach-ns/op")
}

// BenchmarkAttachParts times the parts Attach and Detach are made of, on
// the same kind of manager: one bbolt transaction writing an endpoint
// record (Attach makes two, Detach one; each ends with an fsync), the
// veth pair plugged into a fresh namespace with its address and routes
// (plugVeth: the netlink calls), and the host veth's deletion (the
// kernel unregistering both ends while the namespace is alive, as in a
// disconnect of a running container).
func BenchmarkAttachParts(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("BenchmarkAttachParts needs root: it makes a bridge, veths, network namespaces and an nftables table")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("BenchmarkAttachParts needs the nft command (Debian package nftables)")
	}
	m := benchManager(b)
	n, err := m.DefaultNetwork()
	if err != nil {
		b.Fatal(err)
	}
	gw, _ := netip.ParseAddr(n.Gateway)
	var put, plug, del time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := newNetns(b)
		epID := newID()
		ep := &Endpoint{ID: epID, ContainerID: newID(), NetworkID: n.ID, NetworkName: n.Name, IPAddress: gw.Next().String(),
			IPPrefixLen: 24, Gateway: n.Gateway, MacAddress: randomMAC().String(), HostVeth: hostVethName(epID), IfName: "eth0"}
		b.StartTimer()
		t0 := time.Now()
		if err := m.cfg.Store.Update(func(tx *bolt.Tx) error {
			return putJSON(tx.Bucket(store.BucketNetworks), "bench/"+epID, ep)
		}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := plugVeth(n, ep, "/proc/self/fd/"+strconv.Itoa(int(ns)), 1500); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := deleteLink(ep.HostVeth); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		b.StopTimer()
		put, plug, del = put+t1.Sub(t0), plug+t2.Sub(t1), del+t3.Sub(t2)
		m.cfg.Store.Update(func(tx *bolt.Tx) error { return tx.Bucket(store.BucketNetworks).Delete([]byte("bench/" + epID)) })
		ns.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(put.Nanoseconds())/float64(b.N), "store-tx-ns/op")
	b.ReportMetric(float64(plug.Nanoseconds())/float64(b.N), "plugveth-ns/op")
	b.ReportMetric(float64(del.Nanoseconds())/float64(b.N), "vethdel-ns/op")
}

// benchManager is a manager on a store of its own, with a bridge, a
// subnet and a table no one else has, all removed at the benchmark's end.
func benchManager(b testing.TB) *Manager {
	st, err := store.Open(b.TempDir(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	gw, id := benchSubnet(b)
	cfg := Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Bridge: "bb" + id, BIP: gw.String(),
		Table: "engined_b" + id, IPMasq: true, ICC: true}
	m, err := New(context.Background(), cfg)
	// Registered even when New failed half way: whatever it made goes.
	b.Cleanup(func() { removeBenchNetwork(b, m, cfg) })
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// newNetns is a new, empty network namespace (the handle keeps it; its
// close frees it), made on a locked thread that goes back to its own.
func newNetns(b testing.TB) netns.NsHandle {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		b.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace: it must not run
		// anything else. Locked and not unlocked, it ends with its
		// goroutine.
		runtime.LockOSThread()
		b.Fatal(err)
	}
	return ns
}

// benchSubnet is a gateway address (10.x.y.1/24) in a subnet nothing on
// the host routes, with a random id for the bridge's and table's names.
func benchSubnet(b testing.TB) (netip.Prefix, string) {
	routed, err := routedPrefixes("")
	if err != nil {
		b.Fatal(err)
	}
	for {
		r := make([]byte, 4)
		rand.Read(r)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100 + r[0]%150, r[1], 0}), 24)
		if slices.ContainsFunc(routed, func(q netip.Prefix) bool { return q.Overlaps(p) }) {
			continue
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100 + r[0]%150, r[1], 1}), 24), hex.EncodeToString(r[2:])
	}
}

// removeBenchNetwork deletes what the benchmark's manager made: its
// accepts in the iptables FORWARD chain (if that drops), its table, its
// bridge and any veth left on it.
func removeBenchNetwork(b testing.TB, m *Manager, cfg Config) {
	ctx := context.Background()
	var errs []error
	if m != nil {
		// The firewall's start (in the background) has ended before Close
		// stops what is still starting: a benchmark that never waited for
		// it (plugVeth alone) would otherwise find it cancelled.
		if err := m.fw.ready(ctx); err != nil {
			b.Fatal(err)
		}
		m.Close() // the veths being deleted first
		// No networks: engined's accepts in a foreign chain go.
		if err := m.fw.syncForeignForward(ctx, nil); err != nil {
			errs = append(errs, err)
		}
		tx := m.fw.nft.NewTransaction()
		tx.Delete(&knftables.Table{})
		if err := m.fw.nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
			errs = append(errs, err)
		}
	} else if out, err := exec.Command("nft", "list", "table", "ip", cfg.Table).CombinedOutput(); err == nil {
		errs = append(errs, fmt.Errorf("table %s left by a failed New:\n%s", cfg.Table, out))
		exec.Command("nft", "delete", "table", "ip", cfg.Table).Run()
	}
	for _, port := range bridgePorts(cfg.Bridge) {
		errs = append(errs, fmt.Errorf("veth %s left on the bridge", port))
		deleteLink(port)
	}
	if err := deleteLink(cfg.Bridge); err != nil {
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil {
			b.Error(err)
		}
	}
}
