package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveOnGateway runs an HTTP server on the test bridge's gateway
// address (the host side of the bridge) and returns its address.
func serveOnGateway(t *testing.T, n testNet, body string) string {
	t.Helper()
	l, err := net.Listen("tcp", n.Gateway+":0")
	if err != nil {
		t.Fatalf("listen on the bridge's gateway: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// hostGet fetches a URL from the host (outside any container).
func hostGet(t *testing.T, url string) (string, error) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// bridgePorts are the veths on the test engined's bridge.
func bridgePorts(t *testing.T, n testNet) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", n.Bridge).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show master %s: %v\n%s", n.Bridge, err, out)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return names
}

// settledBridgePorts are the veths on the bridge once there are want of
// them: an ended container's veth is deleted in the background (the
// kernel takes tens of milliseconds to unregister one), so a count taken
// right after an rm or a stop would race it. Past the deadline, what is
// there then.
func settledBridgePorts(t *testing.T, n testNet, want int) []string {
	t.Helper()
	var ports []string
	poll(10*time.Second, func() bool { ports = bridgePorts(t, n); return len(ports) == want })
	return ports
}

// nftTable is engined's table, once its start has written it (in the
// background, after reattaching its containers).
func nftTable(t *testing.T, n testNet) string {
	t.Helper()
	var out []byte
	var err error
	if !poll(30*time.Second, func() bool {
		out, err = exec.Command("nft", "list", "table", "ip", n.Table).CombinedOutput()
		return err == nil
	}) {
		t.Fatalf("nft list table ip %s: %v\n%s", n.Table, err, out)
	}
	return string(out)
}

// A container on the default bridge gets eth0 with the first address
// of the bridge's subnet and reaches the host through the gateway;
// inspect shows dockerd's NetworkSettings; two containers reach each
// other (ICC) and the host reaches them.
func TestBridgeNetwork(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	addr := serveOnGateway(t, n, "hello from the host\n")
	prefix := strings.TrimSuffix(n.Gateway, "1")

	out := mustDocker(t, e.Host, "run", "--rm", "busybox", "sh", "-c",
		"ip -o -4 addr show eth0; ip route; ping -c 1 -W 5 "+n.Gateway+" >/dev/null && echo ping-ok; timeout 10 wget -qO- http://"+addr+"/")
	mustContain(t, "run on the bridge", out, "inet "+prefix+"2/24", "default via "+n.Gateway+" dev eth0", "ping-ok", "hello from the host")

	// --network none is still loopback only.
	out = mustDocker(t, e.Host, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "ip -o link")
	if strings.Contains(out, "eth0") || !strings.Contains(out, "lo:") {
		t.Errorf("--network none: want lo only:\n%s", out)
	}

	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "web", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	ip := inspectField(t, e.Host, "web", "{{.NetworkSettings.IPAddress}}")
	if ip != prefix+"2" {
		t.Errorf("first container's address %q, want %s2 (the first free one)", ip, prefix)
	}
	m := e.inspectJSON(id)
	ns := m["NetworkSettings"].(map[string]any)
	br := ns["Networks"].(map[string]any)["bridge"].(map[string]any)
	mac, _ := ns["MacAddress"].(string)
	hw, err := net.ParseMAC(mac)
	if err != nil || hw[0]&2 == 0 || hw[0]&1 != 0 {
		t.Errorf("MacAddress %q is not a locally administered unicast address", mac)
	}
	for k, want := range map[string]any{"Gateway": n.Gateway, "IPAddress": ip, "IPPrefixLen": float64(24)} {
		if ns[k] != want || br[k] != want {
			t.Errorf("NetworkSettings.%s = %v, Networks.bridge.%s = %v; want %v", k, ns[k], k, br[k], want)
		}
	}
	if br["MacAddress"] != mac || br["NetworkID"] == "" || br["EndpointID"] == "" || ns["EndpointID"] != br["EndpointID"] {
		t.Errorf("Networks.bridge: %v", br)
	}
	if key, _ := ns["SandboxKey"].(string); key == "" {
		t.Errorf("SandboxKey empty: %v", ns)
	}
	if mode := m["HostConfig"].(map[string]any)["NetworkMode"]; mode != "bridge" {
		t.Errorf("HostConfig.NetworkMode %v, want bridge", mode)
	}
	hosts := mustDocker(t, e.Host, "exec", "web", "cat", "/etc/hosts")
	mustContain(t, "/etc/hosts", hosts, ip+"\t"+id[:12]+"\n")

	// The host reaches the container, and so does another container.
	if got, err := hostGetWhenUp(t, "http://"+ip+"/hostname"); err != nil || got != id[:12]+"\n" {
		t.Errorf("host to container: %q, %v", got, err)
	}
	out = mustDocker(t, e.Host, "run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; timeout 10 wget -qO- http://"+ip+"/hostname")
	mustContain(t, "container to container", out, "inet "+prefix+"3/24", id[:12])

	rules := nftTable(t, n)
	mustContain(t, "nft table", rules, "ip saddr "+n.Subnet+` oifname != "`+n.Bridge+`" masquerade`,
		`iifname "`+n.Bridge+`" accept`, "hook postrouting", "hook forward")

	mustDocker(t, e.Host, "rm", "-f", "web")
	if ports := settledBridgePorts(t, n, 0); len(ports) != 0 {
		t.Errorf("veths left on %s after rm -f: %v", n.Bridge, ports)
	}
	// A stopped container keeps its network, without an address.
	mustDocker(t, e.Host, "run", "--name", "done", "busybox", "true")
	if got := inspectField(t, e.Host, "done", "{{.NetworkSettings.IPAddress}}|{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"); got != "|bridge" {
		t.Errorf("stopped container: %q, want |bridge", got)
	}
}

// Fifty run/rm cycles with up to five containers alive at once: no two
// live containers share an address, released addresses come back, and
// nothing is left behind (veths, rules, allocations).
func TestBridgeCyclesLeakNothing(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	rulesBefore := nftTable(t, n)
	type live struct{ id, ip string }
	var alive []live
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		if len(alive) == 5 {
			mustDocker(t, e.Host, "rm", "-f", alive[0].id)
			alive = alive[1:]
		}
		id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "600"))
		ip := inspectField(t, e.Host, id, "{{.NetworkSettings.IPAddress}}")
		if ip == "" {
			t.Fatalf("cycle %d: no address", i)
		}
		for _, a := range alive {
			if a.ip == ip {
				t.Fatalf("cycle %d: %s has %s, which %s has too", i, id[:12], ip, a.id[:12])
			}
		}
		seen[ip] = true
		alive = append(alive, live{id, ip})
	}
	// Five alive at a time and first-free allocation: six addresses at most.
	if len(seen) > 6 {
		t.Errorf("%d distinct addresses over the cycles, want at most 6 (released ones reused): %v", len(seen), seen)
	}
	for _, a := range alive {
		mustDocker(t, e.Host, "rm", "-f", a.id)
	}
	if ports := settledBridgePorts(t, n, 0); len(ports) != 0 {
		t.Errorf("veths left: %v", ports)
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); strings.Contains(string(out), "tmp") {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, ": tmp") {
				t.Errorf("temporary veth peer left on the host: %s", l)
			}
		}
	}
	if after := nftTable(t, n); after != rulesBefore {
		t.Errorf("nft table changed over the cycles:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}
	// Every address is free again: the next container gets the first.
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "600"))
	if ip := inspectField(t, e.Host, id, "{{.NetworkSettings.IPAddress}}"); ip != strings.TrimSuffix(n.Gateway, "1")+"2" {
		t.Errorf("after the cycles the next address is %s, want the subnet's first", ip)
	}
}

// A running container keeps its address and connectivity while engined
// is down (SIGKILLed) and after it starts again; a container that exited while
// engined was down has its endpoint released at the next start.
func TestBridgeSurvivesEngineRestart(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	mustDocker(t, e.Host, "run", "-d", "--name", "web", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	mustDocker(t, e.Host, "run", "-d", "--name", "doomed", "busybox", "sleep", "600")
	ip := inspectField(t, e.Host, "web", "{{.NetworkSettings.IPAddress}}")
	doomedIP := inspectField(t, e.Host, "doomed", "{{.NetworkSettings.IPAddress}}")
	var pid int
	fmt.Sscan(inspectField(t, e.Host, "doomed", "{{.State.Pid}}"), &pid)
	url := "http://" + ip + "/hostname"
	want, err := hostGetWhenUp(t, url)
	if err != nil {
		t.Fatalf("before the restart: %v", err)
	}

	// SIGKILL: nothing is cleaned up on the way out.
	e.cmd.Process.Kill()
	<-e.done
	if got, err := hostGet(t, url); err != nil || got != want {
		t.Errorf("while engined is down: %q, %v", got, err)
	}
	// The doomed container ends while engined is down, and a veth that
	// belongs to no endpoint appears on the bridge (as an engined killed
	// mid-attach would leave one).
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	stray := "vs" + n.Bridge[2:]
	t.Cleanup(func() { exec.Command("ip", "link", "del", stray).Run() })
	if out, err := exec.Command("sh", "-c", "ip link add "+stray+" type veth peer name "+stray+"p && ip link set "+stray+" master "+n.Bridge).CombinedOutput(); err != nil {
		t.Fatalf("make a stray veth: %v\n%s", err, out)
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	if got, err := hostGet(t, url); err != nil || got != want {
		t.Errorf("after the restart: %q, %v", got, err)
	}
	if got := inspectField(t, e2.Host, "web", "{{.NetworkSettings.IPAddress}}"); got != ip {
		t.Errorf("address after the restart %q, want %s", got, ip)
	}
	waitInspect(t, e2.Host, "doomed", "{{.State.Status}}", func(s string) bool { return s == "exited" })
	// web's address is still taken, doomed's is free again.
	id := strings.TrimSpace(mustDocker(t, e2.Host, "run", "-d", "busybox", "sleep", "600"))
	if got := inspectField(t, e2.Host, id, "{{.NetworkSettings.IPAddress}}"); got != doomedIP {
		t.Errorf("new container after the restart got %s, want %s (released by the exited one; %s is web's)", got, doomedIP, ip)
	}
	ports := settledBridgePorts(t, n, 2)
	if slices.Contains(ports, stray) {
		t.Errorf("the stray veth %s is still on the bridge after the restart", stray)
	}
	if len(ports) != 2 {
		t.Errorf("veths on the bridge after the restart: %v, want web's and the new container's", ports)
	}
}

// Where the iptables filter FORWARD chain drops by default (as dockerd
// leaves it), engined inserts the accepts its bridge needs, once, and
// none where the policy is accept. The chain is made for the test only
// when the host has none, and removed after.
func TestBridgeForwardDropPolicy(t *testing.T) {
	if err := exec.Command("nft", "list", "table", "ip", "filter").Run(); err == nil {
		t.Skip("the host has an ip filter table: its FORWARD policy is not the test's to change")
	}
	if b, _ := exec.Command("cat", "/proc/sys/net/ipv4/ip_forward").Output(); strings.TrimSpace(string(b)) != "0" {
		// With forwarding off, a FORWARD chain that drops changes nothing
		// for anyone else on this host while the test runs.
		t.Skip("IPv4 forwarding is on: a FORWARD drop policy would affect other traffic")
	}
	if out, err := exec.Command("nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }").CombinedOutput(); err != nil {
		t.Fatalf("make the FORWARD chain: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", "filter").Run() })
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	if !poll(30*time.Second, func() bool { return len(foreignRuleHandles(n.Table)) == 3 }) {
		out, _ := exec.Command("nft", "list", "chain", "ip", "filter", "FORWARD").Output()
		t.Fatalf("engined's rules in FORWARD: %d, want 3:\n%s", len(foreignRuleHandles(n.Table)), out)
	}
	out, _ := exec.Command("nft", "list", "chain", "ip", "filter", "FORWARD").Output()
	mustContain(t, "FORWARD", string(out), `iifname "`+n.Bridge+`" accept`, `oifname "`+n.Bridge+`" ct state established,related accept`,
		`oifname "`+n.Bridge+`" ct status dnat accept`)
	e.stop()
	startEnginedAt(t, e.DataRoot, e.ExecRoot).stop()
	if hs := foreignRuleHandles(n.Table); len(hs) != 3 {
		t.Errorf("after a restart: %d rules, want the same 3", len(hs))
	}
	// Policy accept: engined's accepts go.
	exec.Command("nft", "add chain ip filter FORWARD { policy accept; }").Run()
	// The start rewrites the rules in the background, once it has
	// reattached its containers.
	startEnginedAt(t, e.DataRoot, e.ExecRoot)
	waitFor(t, "policy accept: engined's rules in FORWARD removed", func() bool { return len(foreignRuleHandles(n.Table)) == 0 })
}

// userNet creates a user-defined network with a subnet and bridge of
// the test's own, removed at the test's end if the test did not.
func userNet(t *testing.T, e *engined, name string, extra ...string) (subnet, gateway, bridge string) {
	t.Helper()
	subnet, id := freeSubnet()
	gateway = strings.TrimSuffix(subnet, "0/24") + "1"
	bridge = "eu" + id
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	mustDocker(t, e.Host, append(append([]string{"network", "create", "--subnet", subnet, "--gateway", gateway,
		"-o", "com.docker.network.bridge.name=" + bridge}, extra...), name)...)
	return subnet, gateway, bridge
}

// docker network create/ls/inspect/rm and --network NAME, with dockerd's
// errors: duplicate name 409, predefined 403, in use 403.
func TestUserDefinedNetworks(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	ls := mustDocker(t, e.Host, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
	mustContain(t, "network ls", ls, "bridge bridge local\n", "host host local\n", "none null local\n")

	events := networkEvents(t, e)
	subnet, gw, bridge := userNet(t, e, "app", "--label", "tier=back")
	if out, err := docker(t, e.Host, "network", "create", "app"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("duplicate network name: %v\n%s", err, out)
	}
	got := inspectNet(t, e, "app", "{{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Labels.tier}} {{.Internal}}")
	if want := "bridge " + subnet + " " + gw + " back false"; got != want {
		t.Errorf("network inspect app: %q, want %q", got, want)
	}
	if out := mustDocker(t, e.Host, "network", "ls", "--filter", "label=tier=back", "--format", "{{.Name}}"); out != "app\n" {
		t.Errorf("network ls --filter label=tier=back: %q", out)
	}

	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--network", "app", "--name", "db", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	ip := inspectField(t, e.Host, "db", "{{.NetworkSettings.Networks.app.IPAddress}}")
	prefix := strings.TrimSuffix(gw, "1")
	if ip != prefix+"2" {
		t.Errorf("db's address on app: %q, want %s2", ip, prefix)
	}
	if top := inspectField(t, e.Host, "db", "{{.NetworkSettings.IPAddress}}|{{.HostConfig.NetworkMode}}"); top != "|app" {
		t.Errorf("top-level IPAddress and NetworkMode of a user network's container: %q, want |app (the top level is the default bridge's)", top)
	}
	if got := inspectNet(t, e, "app", "{{range $id, $c := .Containers}}{{$id}} {{$c.Name}} {{$c.IPv4Address}}{{end}}"); got != id+" db "+ip+"/24" {
		t.Errorf("network inspect app Containers: %q", got)
	}
	if _, err := hostGetWhenUp(t, "http://"+ip+"/hostname"); err != nil {
		t.Fatalf("db's server: %v", err)
	}
	out := mustDocker(t, e.Host, "run", "--rm", "--network", "app", "busybox", "sh", "-c", "ip route; timeout 10 wget -qO- http://"+ip+"/hostname")
	mustContain(t, "a peer on app", out, "default via "+gw, id[:12])
	if ports := settledBridgePorts(t, testNet{Bridge: bridge}, 1); len(ports) != 1 {
		t.Errorf("veths on %s: %v, want db's", bridge, ports)
	}
	mustContain(t, "nft table", nftTable(t, n), "ip saddr "+subnet+` oifname != "`+bridge+`" masquerade`)

	for _, c := range []struct{ args, want string }{
		{"network rm app", "has active endpoints"},
		{"network rm bridge", "pre-defined network and cannot be removed"},
		{"network rm nosuch", "not found"},
		{"run --rm --network nosuch busybox true", "network nosuch not found"},
		{"network create --ipv6 v6", "IPv6"},
		{"network create -d overlay ov", "not supported"},
		{"network create --subnet " + subnet + " clash", "overlaps"},
		{"network connect app db", "already exists in network app"},
		{"network connect nosuch db", "network nosuch not found"},
	} {
		if out, err := docker(t, e.Host, strings.Fields(c.args)...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: want an error with %q: %v\n%s", c.args, c.want, err, out)
		}
	}
	mustDocker(t, e.Host, "rm", "-f", "db")
	mustDocker(t, e.Host, "network", "rm", "app")
	if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
		t.Errorf("bridge %s left after network rm", bridge)
	}
	if rules := nftTable(t, n); strings.Contains(rules, bridge) {
		t.Errorf("rules of the removed network left:\n%s", rules)
	}

	var evs []string
	for len(evs) == 0 || evs[len(evs)-1] != "destroy app" {
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatalf("the events stream ended; evs %q", evs)
			}
			if m.Actor.Attributes["name"] == "app" {
				evs = append(evs, strings.TrimSpace(m.Action+" app "+m.Actor.Attributes["container"]))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("network events: %q, want them to end with destroy app", evs)
		}
	}
	if want := []string{"create app", "connect app " + id, "disconnect app " + id, "destroy app"}; !containsInOrder(strings.Join(evs, "\n"), want) {
		t.Errorf("network events %q, want %q in order", evs, want)
	}

	// --internal: no route out, and forwarding off the bridge dropped.
	_, _, ibr := userNet(t, e, "inner", "--internal")
	out = mustDocker(t, e.Host, "run", "--rm", "--network", "inner", "busybox", "sh", "-c", "ip route")
	if strings.Contains(out, "default") {
		t.Errorf("a container on an internal network has a default route:\n%s", out)
	}
	mustContain(t, "nft table", nftTable(t, n), `iifname "`+ibr+`" oifname != "`+ibr+`" drop`)
	if strings.Contains(nftTable(t, n), `oifname != "`+ibr+`" masquerade`) {
		t.Errorf("an internal network is masqueraded")
	}
	// Networks are kept across restarts.
	e.stop()
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	if got := inspectNet(t, e2, "inner", "{{.Internal}}"); got != "true" {
		t.Errorf("after a restart: inner Internal=%q", got)
	}
	mustDocker(t, e2.Host, "network", "rm", "inner")
}

func inspectNet(t *testing.T, e *engined, name, format string) string {
	t.Helper()
	return strings.TrimSpace(mustDocker(t, e.Host, "network", "inspect", "-f", format, name))
}

// A network never takes over, nor deletes, an interface that exists.
func TestNetworkCreateRefusesExistingInterface(t *testing.T) {
	e := startEngined(t)
	out, err := docker(t, e.Host, "network", "create", "-o", "com.docker.network.bridge.name=lo", "takeover")
	if err == nil || !strings.Contains(out, "exists already") {
		t.Errorf("network on lo: %v\n%s", err, out)
	}
	if err := exec.Command("ip", "link", "show", "lo").Run(); err != nil {
		t.Fatalf("lo is gone: %v", err)
	}
	if out := mustDocker(t, e.Host, "network", "ls", "--format", "{{.Name}}", "--filter", "name=takeover"); out != "" {
		t.Errorf("a refused network is listed: %q", out)
	}
}

type eventMsg struct {
	Type, Action string
	Actor        struct {
		ID         string
		Attributes map[string]string
	}
}

// networkEvents streams engined's network events; the stream is
// subscribed when this returns (engined answers once it is).
func networkEvents(t *testing.T, e *engined) <-chan eventMsg {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://engined/events?filters="+url.QueryEscape(`{"type":["network"]}`), nil)
	c := &http.Client{Transport: unixClient(e.Sock).Transport}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan eventMsg, 100)
	go func() {
		defer close(ch)
		dec := json.NewDecoder(resp.Body)
		for {
			var m eventMsg
			if dec.Decode(&m) != nil {
				return
			}
			ch <- m
		}
	}()
	return ch
}

// Restarting a container (docker restart, stop/start, a restart policy)
// attaches it again: an address, eth0, its /etc/hosts line.
func TestBridgeContainerRestarts(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	prefix := strings.TrimSuffix(n.Gateway, "1")
	mustDocker(t, e.Host, "run", "-d", "--name", "web", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	check := func(when string) {
		t.Helper()
		ip := inspectField(t, e.Host, "web", "{{.NetworkSettings.IPAddress}}")
		if !strings.HasPrefix(ip, prefix) {
			t.Fatalf("%s: address %q", when, ip)
		}
		id := inspectField(t, e.Host, "web", "{{.Id}}")
		if got, err := hostGetWhenUp(t, "http://"+ip+"/hostname"); err != nil || got != id[:12]+"\n" {
			t.Errorf("%s: host to container: %q, %v", when, got, err)
		}
		mustContain(t, when+": /etc/hosts", mustDocker(t, e.Host, "exec", "web", "cat", "/etc/hosts"), ip+"\t"+id[:12]+"\n")
		if ports := settledBridgePorts(t, n, 1); len(ports) != 1 {
			t.Errorf("%s: veths %v, want one", when, ports)
		}
	}
	check("first start")
	for i := 0; i < 3; i++ {
		mustDocker(t, e.Host, "restart", "-t", "0", "web")
		check(fmt.Sprintf("restart %d", i))
	}
	mustDocker(t, e.Host, "stop", "-t", "0", "web")
	if ports := settledBridgePorts(t, n, 0); len(ports) != 0 {
		t.Errorf("stopped: veths %v", ports)
	}
	mustDocker(t, e.Host, "start", "web")
	check("stop and start")

	// A restart policy brings the container back, attached each time.
	mustDocker(t, e.Host, "run", "-d", "--name", "flappy", "--restart", "always", "busybox", "sh", "-c", "ip -o -4 addr show eth0 >> /etc/hostname.log; exit 1")
	waitInspect(t, e.Host, "flappy", "{{.RestartCount}}", atLeast(3))
	mustDocker(t, e.Host, "rm", "-f", "flappy")
	if ports := settledBridgePorts(t, n, 1); len(ports) != 1 {
		t.Errorf("after the flapping container's removal: veths %v, want web's", ports)
	}
}

// hostGetWhenUp is hostGet once the server in the container listens: a
// refused connection (the address answers, nothing listens yet) is tried
// again, within a bound.
func hostGetWhenUp(t *testing.T, url string) (string, error) {
	t.Helper()
	var got string
	var err error
	poll(30*time.Second, func() bool {
		got, err = hostGet(t, url)
		return err == nil || !errors.Is(err, syscall.ECONNREFUSED)
	})
	return got, err
}

// --ip and --mac-address: the endpoint gets them; a taken address is a
// conflict; --ip on the default bridge is refused, as dockerd does.
func TestEndpointAddressAndMAC(t *testing.T) {
	e := runEngine(t)
	_, gw, _ := userNet(t, e, "app")
	ip := strings.TrimSuffix(gw, "1") + "50"
	mustDocker(t, e.Host, "run", "-d", "--name", "fixed", "--network", "app", "--ip", ip, "--mac-address", "02:42:0a:00:00:99", "busybox", "sleep", "600")
	out := mustDocker(t, e.Host, "exec", "fixed", "sh", "-c", "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address")
	mustContain(t, "--ip and --mac-address", out, "inet "+ip+"/24", "02:42:0a:00:00:99")
	if got := inspectField(t, e.Host, "fixed", "{{.NetworkSettings.Networks.app.IPAddress}} {{.NetworkSettings.Networks.app.MacAddress}}"); got != ip+" 02:42:0a:00:00:99" {
		t.Errorf("inspect: %q", got)
	}
	for _, c := range []struct{ args, want string }{
		{"run --rm --network app --ip " + ip + " busybox true", "Address already in use"},
		{"run --rm --network app --ip " + gw + " busybox true", "Address already in use"},
		{"run --rm --network app --ip 10.0.0.7 busybox true", "no configured subnet"},
		{"run --rm --ip " + ip + " busybox true", "user defined networks only"},
		{"run --rm --mac-address 01:00:00:00:00:01 busybox true", "multicast"},
		{"run --rm --network none --mac-address 02:00:00:00:00:01 busybox true", "conflicting options"},
	} {
		if out, err := docker(t, e.Host, strings.Fields(c.args)...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: want an error with %q: %v\n%s", c.args, c.want, err, out)
		}
	}
	// The default bridge takes --mac-address too; a restart keeps both.
	out = mustDocker(t, e.Host, "run", "--rm", "--mac-address", "02:42:0a:00:00:98", "busybox", "cat", "/sys/class/net/eth0/address")
	mustContain(t, "--mac-address on the default bridge", out, "02:42:0a:00:00:98")
	mustDocker(t, e.Host, "restart", "-t", "0", "fixed")
	mustContain(t, "after a restart", mustDocker(t, e.Host, "exec", "fixed", "sh", "-c", "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address"), "inet "+ip+"/24", "02:42:0a:00:00:99")
}
