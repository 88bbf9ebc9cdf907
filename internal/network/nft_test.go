package network

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

func fakeFirewall(policy *string) (*firewall, *knftables.Fake, *knftables.Fake) {
	own := knftables.NewFake(knftables.IPv4Family, "engined")
	filter := knftables.NewFake(knftables.IPv4Family, foreignTable)
	tx := filter.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: foreignChain, Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(knftables.ForwardHook),
		Priority: knftables.PtrTo(knftables.FilterPriority)})
	tx.Add(&knftables.Rule{Chain: foreignChain, Rule: "iifname \"docker0\" accept", Comment: knftables.PtrTo("dockerd's")})
	filter.Run(context.Background(), tx)
	f := &firewall{table: "engined", masq: true, nft: own,
		foreignPolicy: func(context.Context) (string, bool) { return *policy, *policy != "" },
		foreign:       func() (knftables.Interface, error) { return filter, nil }}
	return f, own, filter
}

var (
	defNet = &Network{ID: "1111111111111111", Name: "bridge", Driver: "bridge", Bridge: "engined0", Subnet: "172.17.0.0/16"}
	appNet = &Network{ID: "2222222222222222", Name: "app", Driver: "bridge", Bridge: "br-222222222222", Subnet: "172.18.0.0/16"}
	inNet  = &Network{ID: "3333333333333333", Name: "inner", Driver: "bridge", Bridge: "br-333333333333", Subnet: "172.19.0.0/16", Internal: true}
)

func TestFirewallRuleLayout(t *testing.T) {
	policy := "accept"
	f, own, filter := fakeFirewall(&policy)
	ctx := context.Background()
	if err := f.sync(ctx, []*Network{defNet, appNet, inNet}); err != nil {
		t.Fatal(err)
	}
	dump := own.Dump()
	for _, want := range []string{
		`add chain ip engined forward { type filter hook forward priority 0 ; }`,
		`add chain ip engined postrouting { type nat hook postrouting priority 100 ; }`,
		`add rule ip engined forward iifname "engined0" accept comment "net 111111111111"`,
		`add rule ip engined forward oifname "engined0" ct state established,related accept`,
		`add rule ip engined postrouting ip saddr 172.17.0.0/16 oifname != "engined0" masquerade`,
		`add rule ip engined postrouting ip saddr 172.18.0.0/16 oifname != "br-222222222222" masquerade`,
		`add rule ip engined forward iifname "br-333333333333" oifname != "br-333333333333" drop`,
		`add rule ip engined forward oifname "br-333333333333" iifname != "br-333333333333" drop`,
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("missing %q in:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "172.19.0.0/16") {
		t.Errorf("an internal network is masqueraded:\n%s", dump)
	}
	// Into a network: replies, published ports and its own traffic, then
	// a drop (isolation from other networks), before the accept of what
	// leaves it, which would take another network's traffic first.
	drop := strings.Index(dump, `add rule ip engined forward oifname "br-222222222222" drop`)
	out := strings.Index(dump, `add rule ip engined forward iifname "br-222222222222" accept`)
	dnat := strings.Index(dump, `add rule ip engined forward oifname "br-222222222222" ct status dnat accept`)
	defOut := strings.Index(dump, `add rule ip engined forward iifname "engined0" accept`)
	if drop < 0 || out < 0 || dnat < 0 || !(dnat < drop && drop < out) || defOut < drop {
		t.Errorf("isolation rules of app missing or out of order:\n%s", dump)
	}
	if strings.Contains(filter.Dump(), "engined ") {
		t.Errorf("policy accept: engined's rules in FORWARD:\n%s", filter.Dump())
	}

	// The table is rewritten whole: a removed network's rules go.
	if err := f.sync(ctx, []*Network{defNet}); err != nil {
		t.Fatal(err)
	}
	if dump := own.Dump(); strings.Contains(dump, "br-222222222222") || strings.Contains(dump, "br-333333333333") {
		t.Errorf("rules of removed networks left:\n%s", dump)
	}
}

func TestFirewallForwardDropPolicy(t *testing.T) {
	policy := "drop"
	f, _, filter := fakeFirewall(&policy)
	ctx := context.Background()
	for i := 0; i < 2; i++ { // a second sync adds nothing
		if err := f.sync(ctx, []*Network{defNet, appNet, inNet}); err != nil {
			t.Fatal(err)
		}
	}
	rules, _ := filter.ListRules(ctx, foreignChain)
	var ours []string
	for _, r := range rules {
		if r.Comment != nil && strings.HasPrefix(*r.Comment, "engined engined ") {
			ours = append(ours, *r.Comment)
		}
	}
	// Three per bridge that reaches out, one (within the bridge) for an
	// internal network; dockerd's rule stays.
	if len(ours) != 7 || len(rules) != 8 {
		t.Fatalf("FORWARD rules: ours %q of %d:\n%s", ours, len(rules), filter.Dump())
	}
	dump := filter.Dump()
	for _, want := range []string{`iifname "engined0" accept`, `oifname "br-222222222222" ct state established,related accept`,
		`iifname "br-333333333333" oifname "br-333333333333" accept`, `iifname "docker0" accept comment "dockerd's"`,
		`oifname "engined0" ct status dnat accept`} {
		if !strings.Contains(dump, want) {
			t.Errorf("missing %q in:\n%s", want, dump)
		}
	}
	// A network removed: its accepts go; the policy back to accept: all go.
	f.sync(ctx, []*Network{defNet})
	if rules, _ := filter.ListRules(ctx, foreignChain); len(rules) != 4 {
		t.Errorf("after removing two networks: %d rules, want dockerd's and engined0's three:\n%s", len(rules), filter.Dump())
	}
	policy = "accept"
	f.sync(ctx, []*Network{defNet})
	if rules, _ := filter.ListRules(ctx, foreignChain); len(rules) != 1 {
		t.Errorf("policy accept: %d rules, want dockerd's only:\n%s", len(rules), filter.Dump())
	}
}

// The start's rewrite waits for its first need (or WriteRules), runs
// once, and comes before the change that waited for it; if nft cannot
// be used, every change says so instead of engined refusing to start.
func TestFirewallStart(t *testing.T) {
	ctx := context.Background()
	policy := ""
	f, own, _ := fakeFirewall(&policy)
	f.nft = nil
	connects := 0
	f.connect = func() (knftables.Interface, error) { connects++; return own, nil }
	f.start(ctx, func() ([]*Network, error) { return []*Network{defNet}, nil }, slog.Default())
	if connects != 0 {
		t.Fatal("the start's rewrite ran before anything needed it")
	}
	ep := &Endpoint{ContainerID: "c1", NetworkID: defNet.ID, IPAddress: "172.17.0.2",
		Ports: []PortBinding{{Proto: "tcp", ContainerPort: 80, HostIP: "0.0.0.0", HostPort: 8080}}}
	if err := f.addPorts(ctx, ep, "c1"); err != nil {
		t.Fatal(err)
	}
	if connects != 1 {
		t.Fatalf("%d connects, want 1", connects)
	}
	dump := own.Dump()
	if !strings.Contains(dump, `iifname "engined0" accept`) || !strings.Contains(dump, "8080") {
		t.Fatalf("the start's rules or the port are missing:\n%s", dump)
	}
	if err := f.sync(ctx, []*Network{defNet, appNet}); err != nil || connects != 1 {
		t.Fatalf("sync: %v, %d connects", err, connects)
	}

	// nft fails at the start, and goes on failing: every change says so;
	// once it works again, the next change writes the table.
	broken, fixed, _ := fakeFirewall(&policy)
	nftErr := errors.New("nft: Operation not permitted")
	broken.connect = func() (knftables.Interface, error) { return nil, nftErr }
	broken.start(ctx, func() ([]*Network, error) { return []*Network{defNet}, nil }, slog.Default())
	for what, err := range map[string]error{
		"sync":     broken.sync(ctx, []*Network{defNet}),
		"addPorts": broken.addPorts(ctx, ep, "c1"),
		"ready":    broken.ready(ctx),
	} {
		if err == nil || !strings.Contains(err.Error(), "could not be written at start") || !strings.Contains(err.Error(), "not permitted") {
			t.Errorf("%s after a failed start: %v", what, err)
		}
	}
	broken.connect = func() (knftables.Interface, error) { return fixed, nil }
	if err := broken.addPorts(ctx, ep, "c1"); err != nil {
		t.Fatalf("a change once nft works again: %v", err)
	}
	if dump := fixed.Dump(); !strings.Contains(dump, `iifname "engined0" accept`) || !strings.Contains(dump, "8080") {
		t.Errorf("the table after nft works again:\n%s", dump)
	}

	// After stop, nothing launches a rewrite.
	late, _, _ := fakeFirewall(&policy)
	late.connect = func() (knftables.Interface, error) { t.Error("a rewrite after stop"); return nil, nftErr }
	late.start(ctx, func() ([]*Network, error) { return nil, nil }, slog.Default())
	late.stop()
	if err := late.ready(ctx); err == nil {
		t.Error("ready after stop: no error")
	}
}
