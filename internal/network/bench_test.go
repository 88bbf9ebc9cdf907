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
// address, link state and default route) plus Detach (the veth and the
// records gone); attach-ns/op is Attach alone, detach-ns/op Detach alone.
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
	st, err := store.Open(b.TempDir(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	gw, id := benchSubnet(b)
	cfg := Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Bridge: "bb" + id, BIP: gw.String(),
		Table: "engined_b" + id, IPMasq: true, ICC: true}
	m, err := New(ctx, cfg)
	// Registered even when New failed half way: whatever it made goes.
	b.Cleanup(func() { removeBenchNetwork(b, m, cfg) })
	if err != nil {
		b.Fatal(err)
	}

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

// newNetns is a new, empty network namespace (the handle keeps it; its
// close frees it), made on a locked thread that goes back to its own.
func newNetns(b *testing.B) netns.NsHandle {
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
func benchSubnet(b *testing.B) (netip.Prefix, string) {
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
func removeBenchNetwork(b *testing.B, m *Manager, cfg Config) {
	ctx := context.Background()
	var errs []error
	if m != nil {
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
