package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testNet is one test engined's default bridge network: an interface,
// a subnet and an nftables table of its own, so engineds of parallel
// tests (and other people's on this host) never share one. A restart
// on the same roots reuses it; the test's end removes it.
type testNet struct {
	Bridge  string
	Subnet  string // 10.x.y.0/24
	Gateway string // 10.x.y.1
	Table   string
}

func (n testNet) args() []string {
	return []string{"--bridge", n.Bridge, "--bip", n.Gateway + "/24", "--nft-table", n.Table,
		// Nothing here needs routing off the host; the machine's
		// forwarding setting stays as it is.
		"--ip-forward=false"}
}

var (
	netMu    sync.Mutex
	netTaken = map[string]bool{}
)

// netFor is the test network of the engined whose roots are under base.
func netFor(t *testing.T, base string) testNet {
	t.Helper()
	netMu.Lock()
	defer netMu.Unlock()
	file := filepath.Join(base, "net.json")
	var n testNet
	if b, err := os.ReadFile(file); err == nil && json.Unmarshal(b, &n) == nil {
		return n
	}
	subnet, id := freeSubnetLocked()
	n = testNet{Bridge: "et" + id, Subnet: subnet, Gateway: strings.TrimSuffix(subnet, "0/24") + "1", Table: "engined_t" + id}
	data, _ := json.Marshal(n)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered before the engined's own cleanup, so it runs after it.
	t.Cleanup(func() { n.remove(t) })
	return n
}

// freeSubnet is a 10.x.y.0/24 no route on the host covers and no other
// test has, with a random id for names.
func freeSubnet() (subnet, id string) {
	netMu.Lock()
	defer netMu.Unlock()
	return freeSubnetLocked()
}

func freeSubnetLocked() (subnet, id string) {
	routes, _ := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	var routed []*net.IPNet
	for _, f := range strings.Fields(string(routes)) {
		if _, p, err := net.ParseCIDR(f); err == nil {
			routed = append(routed, p)
		}
	}
	for {
		b := make([]byte, 5)
		rand.Read(b)
		subnet := fmt.Sprintf("10.%d.%d.0/24", 100+int(b[0])%150, b[1])
		_, p, _ := net.ParseCIDR(subnet)
		if netTaken[subnet] || slices.ContainsFunc(routed, func(r *net.IPNet) bool { return r.Contains(p.IP) || p.Contains(r.IP) }) {
			continue
		}
		netTaken[subnet] = true
		return subnet, hex.EncodeToString(b[2:])
	}
}

// remove deletes the bridge, the table and engined's rules in the
// iptables FORWARD chain, if it added any.
func (n testNet) remove(t *testing.T) {
	// The table names every bridge of the engined, user networks' too
	// (a test, or the REST fuzzer, may leave some).
	rules, _ := exec.Command("nft", "list", "table", "ip", n.Table).Output()
	for _, m := range bridgeRE.FindAllStringSubmatch(string(rules), -1) {
		exec.Command("ip", "link", "del", m[1]).Run()
	}
	exec.Command("ip", "link", "del", n.Bridge).Run()
	exec.Command("nft", "delete", "table", "ip", n.Table).Run()
	for _, h := range foreignRuleHandles(n.Table) {
		exec.Command("nft", "delete", "rule", "ip", "filter", "FORWARD", "handle", h).Run()
	}
}

var bridgeRE = regexp.MustCompile(`iifname "([^"]+)"`)

var handleRE = regexp.MustCompile(`# handle (\d+)`)

// foreignRuleHandles are the handles of the rules engined with this
// table put into the iptables filter FORWARD chain.
func foreignRuleHandles(table string) []string {
	out, err := exec.Command("nft", "-a", "list", "chain", "ip", "filter", "FORWARD").Output()
	if err != nil {
		return nil
	}
	var hs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `comment "engined `+table+` `) {
			if m := handleRE.FindStringSubmatch(l); m != nil {
				hs = append(hs, m[1])
			}
		}
	}
	return hs
}

// withTestNet adds a test network's flags to engined's arguments unless
// they name a bridge of their own.
func withTestNet(t *testing.T, base string, args []string) []string {
	if slices.Contains(args, "--bridge") || slices.Contains(args, "-b") {
		return args
	}
	return append(args, netFor(t, base).args()...)
}
