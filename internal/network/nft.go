package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/knftables"
)

// firewall keeps engined's nftables table (family ip) in step with the
// networks: the whole table is rewritten in one transaction, so traffic
// never sees it half made.
//
//	table ip engined {
//	  chain forward { type filter hook forward priority filter; policy accept;
//	    iifname "engined0" accept
//	    oifname "engined0" ct state established,related accept }
//	  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//	    ip saddr 172.17.0.0/16 oifname != "engined0" masquerade }
//	}
//
// Where another table's forward chain drops by default (the iptables
// filter FORWARD chain dockerd leaves at DROP), the same two accepts per
// bridge are inserted at its top, with comments naming engined's table,
// and removed with the networks.
type firewall struct {
	table string
	masq  bool
	nft   knftables.Interface
	// foreignPolicy reads the iptables FORWARD chain's policy (ok false:
	// no such chain); foreign reaches that chain's table.
	foreignPolicy func(ctx context.Context) (policy string, ok bool)
	foreign       func() (knftables.Interface, error)
	// published, if set, gives the map elements of every published
	// port, which each rewrite of the table puts back in the same
	// transaction (ports_nft.go).
	published func() ([]*knftables.Element, error)

	// started is closed once start's rewrite ended (nil: the firewall
	// was handed out ready); startErr is why it could not write the
	// table. launch runs start's rewrite once; after stop it does not.
	started  chan struct{}
	startErr error
	launch   func()
	launched atomic.Bool
	stopped  atomic.Bool
	// nets are the bridge networks a rewrite is for, read when it runs.
	nets func() ([]*Network, error)
	// retry serialises the writes that follow a failed start; recovered
	// is set once one of them wrote the table.
	retry     sync.Mutex
	recovered bool
	// connect makes the knftables handle of engined's table (knftables'
	// probe runs nft twice).
	connect func() (knftables.Interface, error)
}

func newFirewall(table string, masq bool) (*firewall, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("the nft command (Debian package nftables) is needed: %w", err)
	}
	return &firewall{table: table, masq: masq,
		connect:       func() (knftables.Interface, error) { return knftables.New(knftables.IPv4Family, table) },
		foreignPolicy: func(ctx context.Context) (string, bool) { return chainPolicy(ctx, foreignTable, foreignChain) },
		foreign:       func() (knftables.Interface, error) { return knftables.New(knftables.IPv4Family, foreignTable) },
	}, nil
}

// start prepares the table's first rewrite, for the networks nets gives
// then, which runs in the background at the first of launch and ready:
// the rules engined wrote before it restarted are still in the kernel
// meanwhile, and the nft processes (knftables' probe, the rewrite, the
// foreign chain's policy) were most of engined's start, and then slowed
// its reattaching to the shims.
func (f *firewall) start(ctx context.Context, nets func() ([]*Network, error), log *slog.Logger) {
	f.started, f.nets = make(chan struct{}), nets
	f.launch = sync.OnceFunc(func() {
		f.launched.Store(true)
		if f.stopped.Load() {
			f.startErr = errors.New("nftables: engined is stopping")
			close(f.started)
			return
		}
		go func() {
			defer close(f.started)
			if err := f.connectAndRewrite(ctx); err != nil {
				f.startErr = fmt.Errorf("nftables: engined's table could not be written at start: %w", err)
				if ctx.Err() != nil || f.stopped.Load() {
					// engined stopped it; the rules of before are still in
					// the kernel, and the next start writes the table.
					log.Debug("firewall: the start's rewrite ended with engined", "err", err)
					return
				}
				log.Error("firewall", "err", f.startErr)
			}
		}()
	})
}

func (f *firewall) connectAndRewrite(ctx context.Context) error {
	nft, err := f.connect()
	if err != nil {
		return err
	}
	nets, err := f.nets()
	if err != nil {
		return err
	}
	f.nft = nft
	return f.rewrite(ctx, nets)
}

// stop waits for start's rewrite if it was launched, and keeps a later
// launch from starting one.
func (f *firewall) stop() {
	f.stopped.Store(true)
	if f.launched.Load() {
		<-f.started
	}
}

// ready waits for start's rewrite, launching it if need be. If it could
// not write the table (nft failed, perhaps only for a moment), ready
// tries again, so a change fails only while nft does.
func (f *firewall) ready(ctx context.Context) error {
	if f.started == nil {
		return nil
	}
	f.launch()
	select {
	case <-f.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.startErr == nil {
		return nil
	}
	f.retry.Lock()
	defer f.retry.Unlock()
	if f.recovered {
		return nil
	}
	if f.stopped.Load() {
		return f.startErr
	}
	if err := f.connectAndRewrite(ctx); err != nil {
		return fmt.Errorf("%w (and again now: %v)", f.startErr, err)
	}
	f.recovered = true
	return nil
}

// sync rewrites the table for nets, in one transaction.
func (f *firewall) sync(ctx context.Context, nets []*Network) error {
	if err := f.ready(ctx); err != nil {
		return err
	}
	return f.rewrite(ctx, nets)
}

func (f *firewall) rewrite(ctx context.Context, nets []*Network) error {
	tx := f.nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("engined: container networks")})
	// Flushing the table empties its chains, whatever an older engined
	// put there; they are refilled below in the same transaction.
	tx.Flush(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "forward", Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(knftables.ForwardHook),
		Priority: knftables.PtrTo(knftables.FilterPriority)})
	tx.Add(&knftables.Chain{Name: "postrouting", Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(knftables.PostroutingHook),
		Priority: knftables.PtrTo(knftables.SNATPriority)})
	if err := f.addPortChains(tx); err != nil {
		return err
	}
	// Every network's rules for traffic into it come before any
	// network's accept of what leaves it: that accept would take another
	// network's traffic before its drop.
	for _, n := range nets {
		for _, r := range forwardRules(n) {
			if !strings.HasPrefix(r, "iifname") {
				tx.Add(&knftables.Rule{Chain: "forward", Rule: r, Comment: knftables.PtrTo("net " + n.ID[:12])})
			}
		}
	}
	for _, n := range nets {
		for _, r := range forwardRules(n) {
			if strings.HasPrefix(r, "iifname") {
				tx.Add(&knftables.Rule{Chain: "forward", Rule: r, Comment: knftables.PtrTo("net " + n.ID[:12])})
			}
		}
	}
	for _, n := range nets {
		addPortRules(tx, n)
		if f.masq && !n.Internal && n.masquerade() {
			tx.Add(&knftables.Rule{Chain: "postrouting",
				Rule:    knftables.Concat("ip saddr", n.Subnet, "oifname !=", quote(n.Bridge), "masquerade"),
				Comment: knftables.PtrTo("net " + n.ID[:12])})
		}
	}
	if err := f.nft.Run(ctx, tx); err != nil {
		return err
	}
	return f.syncForeignForward(ctx, nets)
}

// forwardRules are a network's rules in engined's forward chain: an
// internal network's traffic stays on its bridge; into another network
// only replies and published ports are forwarded (networks are isolated
// from each other and from routed traffic, as dockerd's are), and out
// of it everything.
func forwardRules(n *Network) []string {
	br := quote(n.Bridge)
	if n.Internal {
		return []string{
			knftables.Concat("iifname", br, "oifname !=", br, "drop"),
			knftables.Concat("oifname", br, "iifname !=", br, "drop"),
		}
	}
	return []string{
		knftables.Concat("oifname", br, "ct state established,related accept"),
		knftables.Concat("oifname", br, "ct status dnat accept"),
		knftables.Concat("oifname", br, "iifname", br, "accept"),
		knftables.Concat("oifname", br, "drop"),
		knftables.Concat("iifname", br, "accept"),
	}
}

// forwardAccepts are the accepts a network needs in a forward chain
// that drops by default.
func forwardAccepts(n *Network) []string {
	bridge := n.Bridge
	if n.Internal {
		return []string{knftables.Concat("iifname", quote(bridge), "oifname", quote(bridge), "accept")}
	}
	return []string{
		knftables.Concat("iifname", quote(bridge), "accept"),
		knftables.Concat("oifname", quote(bridge), "ct state established,related accept"),
		// Published ports: connections from other hosts, DNATed to a
		// container (see ports_nft.go).
		knftables.Concat("oifname", quote(bridge), "ct status dnat accept"),
	}
}

func quote(s string) string { return `"` + s + `"` }

// foreignForward is the iptables (nft backend) filter FORWARD chain.
const foreignTable, foreignChain = "filter", "FORWARD"

// syncForeignForward makes engined's accepts in the iptables FORWARD
// chain exactly those its bridges need if that chain's policy is drop,
// and none otherwise.
func (f *firewall) syncForeignForward(ctx context.Context, nets []*Network) error {
	policy, ok := f.foreignPolicy(ctx)
	if !ok {
		return nil // no such chain: nothing can drop our traffic there
	}
	other, err := f.foreign()
	if err != nil {
		return err
	}
	rules, err := other.ListRules(ctx, foreignChain)
	if err != nil {
		return err
	}
	mark := "engined " + f.table + " "
	want := map[string]bool{}
	if policy == "drop" {
		for _, n := range nets {
			for i := range forwardAccepts(n) {
				want[fmt.Sprintf("%s%s %d", mark, n.Bridge, i)] = true
			}
		}
	}
	tx := other.NewTransaction()
	have := map[string]bool{}
	for _, r := range rules {
		if r.Comment == nil || !strings.HasPrefix(*r.Comment, mark) {
			continue
		}
		if want[*r.Comment] && !have[*r.Comment] {
			have[*r.Comment] = true
			continue
		}
		tx.Delete(&knftables.Rule{Chain: foreignChain, Handle: r.Handle})
	}
	names := make([]*Network, len(nets))
	copy(names, nets)
	sort.Slice(names, func(i, j int) bool { return names[i].Bridge < names[j].Bridge })
	if policy == "drop" {
		for _, n := range names {
			for i, r := range forwardAccepts(n) {
				c := fmt.Sprintf("%s%s %d", mark, n.Bridge, i)
				if !have[c] {
					tx.Insert(&knftables.Rule{Chain: foreignChain, Rule: r, Comment: knftables.PtrTo(c)})
				}
			}
		}
	}
	if tx.NumOperations() == 0 {
		return nil
	}
	return other.Run(ctx, tx)
}

// chainPolicy reads a base chain's policy with `nft -j list chain`.
func chainPolicy(ctx context.Context, table, chain string) (string, bool) {
	out, err := exec.CommandContext(ctx, "nft", "-j", "list", "chain", "ip", table, chain).Output()
	if err != nil {
		return "", false
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if json.Unmarshal(out, &doc) != nil {
		return "", false
	}
	for _, o := range doc.Nftables {
		if raw, ok := o["chain"]; ok {
			var c struct {
				Policy string `json:"policy"`
			}
			json.Unmarshal(raw, &c)
			return c.Policy, true
		}
	}
	return "", false
}
