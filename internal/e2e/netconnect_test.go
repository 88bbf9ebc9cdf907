package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// docker network connect and disconnect: hot-plugged into a running
// container (a new ethN, reachable at once; the default route moves to
// the network that remains), recorded for a created one (joined at its
// start), with dockerd's errors for what cannot be; inspect and network
// inspect follow; nothing is left behind.
func TestNetworkConnectDisconnect(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	s1, _ := freeSubnet()
	s2, _ := freeSubnet()
	mustDocker(t, e.Host, "network", "create", "--subnet", s1, "one")
	mustDocker(t, e.Host, "network", "create", "--subnet", s2, "two")
	// Forwarding on for both bridges, as engined's default --ip-forward
	// has it: the networks must be isolated by rules, not by a host that
	// routes nothing.
	for _, net := range []string{"one", "two"} {
		enableForwarding(t, "br-"+strings.TrimSpace(mustDocker(t, e.Host, "network", "inspect", "-f", "{{.Id}}", net))[:12])
	}
	gw1 := strings.TrimSuffix(s1, "0/24") + "1"
	gw2 := strings.TrimSuffix(s2, "0/24") + "1"

	mustDocker(t, e.Host, "run", "-d", "--name", "web", "--network", "one", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	mustDocker(t, e.Host, "run", "-d", "--name", "peer", "--network", "two", "busybox", "sleep", "600")
	webTwo := strings.TrimSuffix(s2, "0/24") + "3" // peer has .2
	// Not on a common network: peer cannot reach web.
	if out, err := docker(t, e.Host, "exec", "peer", "sh", "-c", "timeout 3 wget -qO- http://"+strings.TrimSuffix(s1, "0/24")+"2/hostname"); err == nil {
		t.Fatalf("peer reached web across networks: %s", out)
	}

	mustDocker(t, e.Host, "network", "connect", "--alias", "www", "--ip", webTwo, "two", "web")
	out := mustDocker(t, e.Host, "exec", "web", "sh", "-c", "ip -o -4 addr; ip route")
	mustContain(t, "after connect", out, "eth0", "eth1", "inet "+webTwo+"/24", "default via "+gw1+" dev eth0")
	out = mustDocker(t, e.Host, "exec", "peer", "sh", "-c", "timeout 10 wget -qO- http://"+webTwo+"/hostname")
	webID := inspectField(t, e.Host, "web", "{{.Id}}")
	mustContain(t, "peer to web over the connected network", out, webID[:12])
	mustContain(t, "web's /etc/hosts", mustDocker(t, e.Host, "exec", "web", "sh", "-c", "cat /etc/hosts"), webTwo+"\t"+webID[:12])
	if got := inspectField(t, e.Host, "web", `{{(index .NetworkSettings.Networks "two").IPAddress}} {{(index .NetworkSettings.Networks "two").Aliases}} {{(index .NetworkSettings.Networks "two").IPAMConfig.IPv4Address}}`); got != webTwo+" [www] "+webTwo {
		t.Errorf("inspect after connect: %q", got)
	}
	var netInspect []map[string]any
	json.Unmarshal([]byte(mustDocker(t, e.Host, "network", "inspect", "two")), &netInspect)
	if c, _ := netInspect[0]["Containers"].(map[string]any); c[webID] == nil {
		t.Errorf("network inspect two: web missing from Containers: %v", netInspect[0]["Containers"])
	}

	// Dockerd's errors.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "connect", "two", "web"}, "already exists in network two"},
		{[]string{"network", "connect", "nonet", "web"}, "not found"},
		{[]string{"network", "connect", "host", "web"}, "cannot connect container to host network"},
		{[]string{"network", "connect", "bridge", "nocontainer"}, "No such container"},
		{[]string{"network", "disconnect", "bridge", "web"}, "is not connected to the network bridge"},
		{[]string{"network", "connect", "--ip", "10.0.0.1", "bridge", "web"}, "user specified IP address is supported on user defined networks only"},
		{[]string{"network", "connect", "--alias", "x", "bridge", "web"}, "network-scoped aliases are only supported for user-defined networks"},
	} {
		out, err := docker(t, e.Host, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: err %v, want %q in:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
	// A network with an endpoint is not removed.
	if out, err := docker(t, e.Host, "network", "rm", "two"); err == nil || !strings.Contains(out, "active endpoints") {
		t.Errorf("network rm of a network in use: %v\n%s", err, out)
	}

	// Disconnecting the network of the default route: the remaining one
	// gives it.
	mustDocker(t, e.Host, "network", "disconnect", "one", "web")
	out = mustDocker(t, e.Host, "exec", "web", "sh", "-c", "ip -o link; ip route")
	if strings.Contains(out, "eth0") {
		t.Errorf("eth0 still in web after disconnecting one:\n%s", out)
	}
	mustContain(t, "route after disconnect", out, "default via "+gw2+" dev eth1")
	if got := inspectField(t, e.Host, "web", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"); got != "two" {
		t.Errorf("networks after disconnect: %q", got)
	}
	mustContain(t, "hosts after disconnect", mustDocker(t, e.Host, "exec", "web", "sh", "-c", "cat /etc/hosts"), webTwo+"\t"+webID[:12])

	// A created container: connect is recorded, joined at start, in
	// order (the mode's network is eth0).
	mustDocker(t, e.Host, "create", "--name", "late", "--network", "one", "busybox", "sleep", "600")
	mustDocker(t, e.Host, "network", "connect", "two", "late")
	mustDocker(t, e.Host, "network", "connect", "bridge", "late")
	if got := inspectField(t, e.Host, "late", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"); got != "bridge one two" {
		t.Errorf("created container's networks: %q", got)
	}
	oneID := strings.TrimSpace(mustDocker(t, e.Host, "network", "inspect", "-f", "{{.Id}}", "one"))
	if got := inspectField(t, e.Host, "late", `{{(index .NetworkSettings.Networks "one").NetworkID}}`); got != oneID {
		t.Errorf("created container's NetworkID %q, want %s", got, oneID)
	}
	mustDocker(t, e.Host, "network", "disconnect", "bridge", "late")
	mustDocker(t, e.Host, "start", "late")
	out = mustDocker(t, e.Host, "exec", "late", "sh", "-c", "ip -o -4 addr")
	mustContain(t, "late's interfaces", out, "eth0", "inet "+strings.TrimSuffix(s1, "0/24"), "eth1", "inet "+strings.TrimSuffix(s2, "0/24"))
	if strings.Contains(out, "eth2") || strings.Contains(out, strings.TrimSuffix(n.Subnet, "0/24")) {
		t.Errorf("late is on the default bridge it was disconnected from:\n%s", out)
	}
	// Stop and start again: the same networks.
	mustDocker(t, e.Host, "restart", "-t", "0", "late")
	mustContain(t, "late after restart", mustDocker(t, e.Host, "exec", "late", "sh", "-c", "ip -o -4 addr"), "eth0", "eth1")

	// Several networks at create (API >= 1.44's EndpointsConfig).
	code, body := e.postJSON("/v1.51/containers/create?name=multi", `{"Image":"busybox","Cmd":["sleep","600"],
		"HostConfig":{"NetworkMode":"one"},
		"NetworkingConfig":{"EndpointsConfig":{"one":{},"two":{"Aliases":["m2"]}}}}`)
	if code != http.StatusCreated {
		t.Fatalf("create on two networks: %d %s", code, body)
	}
	mustDocker(t, e.Host, "start", "multi")
	mustContain(t, "multi's interfaces", mustDocker(t, e.Host, "exec", "multi", "sh", "-c", "ip -o -4 addr"), "eth0", "eth1")

	// Removal leaves no veth, and prune takes the networks nobody is on.
	for _, c := range []string{"web", "peer", "late", "multi"} {
		mustDocker(t, e.Host, "rm", "-f", c)
	}
	out = mustDocker(t, e.Host, "network", "prune", "-f")
	mustContain(t, "network prune", out, "one", "two")
	if out := mustDocker(t, e.Host, "network", "ls", "--format", "{{.Name}}"); strings.Join(strings.Fields(out), " ") != "bridge host none" {
		t.Errorf("networks left after prune:\n%s", out)
	}
	if ports := settledBridgePorts(t, n, 0); len(ports) != 0 {
		t.Errorf("veths left on the default bridge: %v", ports)
	}
}

// --network container:<name> shares the other container's network
// namespace, hostname and /etc/hosts; dockerd's conflicting options are
// refused; the other container must run.
func TestNetworkContainerMode(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "web", "busybox", "sh", "-c", "exec httpd -f -p 8080 -h /etc")
	webIP := inspectField(t, e.Host, "web", "{{.NetworkSettings.IPAddress}}")
	webID := inspectField(t, e.Host, "web", "{{.Id}}")
	out := mustDocker(t, e.Host, "run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
		"ip -o -4 addr; hostname; grep "+webIP+" /etc/hosts; timeout 10 wget -qO- http://127.0.0.1:8080/hostname")
	mustContain(t, "container: mode", out, "inet "+webIP+"/", webID[:12]+"\n", webIP+"\t"+webID[:12], webID[:12])

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-h", "x"}, "conflicting options: hostname and the network mode"},
		{[]string{"--dns", "1.1.1.1"}, "conflicting options: dns and the network mode"},
		{[]string{"--add-host", "a:1.2.3.4"}, "conflicting options: custom host-to-IP mapping and the network mode"},
		{[]string{"--link", "web"}, "container type network can't be used with links"},
		{[]string{"--mac-address", "02:00:00:00:00:01"}, "conflicting options: mac-address and the network mode"},
	} {
		args := append(append([]string{"run", "--rm", "--network", "container:web"}, c.args...), "busybox", "true")
		if out, err := docker(t, e.Host, args...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: err %v, want %q in:\n%s", strings.Join(args, " "), err, c.want, out)
		}
	}
	mustDocker(t, e.Host, "create", "--name", "idle", "busybox", "true")
	if out, err := docker(t, e.Host, "run", "--rm", "--network", "container:idle", "busybox", "true"); err == nil || !strings.Contains(out, "non running container") {
		t.Errorf("joining a container that does not run: %v\n%s", err, out)
	}
	if out, err := docker(t, e.Host, "network", "connect", "bridge", mustDocker(t, e.Host, "create", "--network", "container:web", "busybox", "true")[:12]); err == nil ||
		!strings.Contains(out, "cannot be connected to any other network") {
		t.Errorf("connect of a container: mode container: %v\n%s", err, out)
	}
}

// --link on the default bridge: the linked container's address in
// /etc/hosts under its alias, dockerd's variables, inspect's form; a
// link to a missing container is a 400 (not a 404 the CLI would take
// for a missing image and pull).
func TestLinks(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "db", "-e", "SECRET=s3", "--expose", "5432", "busybox", "sleep", "600")
	dbIP := inspectField(t, e.Host, "db", "{{.NetworkSettings.IPAddress}}")
	dbID := inspectField(t, e.Host, "db", "{{.Id}}")
	out := mustDocker(t, e.Host, "run", "--name", "app", "--link", "db:store", "busybox", "sh", "-c", "cat /etc/hosts; env; ping -c1 -W5 store >/dev/null && echo ping-ok")
	mustContain(t, "linked container", out, dbIP+"\tstore "+dbID[:12]+" db\n", "STORE_NAME=/app/store", "STORE_PORT=tcp://"+dbIP+":5432",
		"STORE_PORT_5432_TCP_ADDR="+dbIP, "STORE_ENV_SECRET=s3", "ping-ok")
	if got := inspectField(t, e.Host, "app", "{{json .HostConfig.Links}}"); got != `["/db:/app/store"]` {
		t.Errorf("HostConfig.Links %s", got)
	}
	code, body := e.postJSON("/v1.51/containers/create", `{"Image":"busybox","HostConfig":{"Links":["nosuch:x"]}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "could not get container for nosuch") {
		t.Errorf("link to a missing container: %d %s", code, body)
	}
	mustDocker(t, e.Host, "stop", "-t", "0", "db")
	if out, err := docker(t, e.Host, "start", "app"); err == nil || !strings.Contains(out, "Cannot link to a non running container") {
		t.Errorf("start linked to a stopped container: %v\n%s", err, out)
	}
}

// --icc=false: containers on the default bridge reach the host but not
// each other; a user network with enable_icc=false likewise, one
// without it is unaffected. --default-address-pool: networks without a
// subnet get theirs from it. The default bridge shows dockerd's options.
func TestICCAndAddressPools(t *testing.T) {
	pool, _ := freeSubnet() // a /24, split into /26s
	e := runEngine(t, "--icc=false", "--default-address-pool", "base="+pool+",size=26")
	n := netFor(t, filepath.Dir(e.DataRoot))
	addr := serveOnGateway(t, n, "host\n")
	mustDocker(t, e.Host, "run", "-d", "--name", "srv-a", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	aIP := inspectField(t, e.Host, "srv-a", "{{.NetworkSettings.IPAddress}}")
	out, err := docker(t, e.Host, "run", "--rm", "busybox", "sh", "-c", "timeout 10 wget -qO- http://"+addr+"/; timeout 3 wget -qO- http://"+aIP+"/hostname && echo reached-a")
	if err == nil || strings.Contains(out, "reached-a") || !strings.Contains(out, "host") {
		t.Errorf("--icc=false on the default bridge: %v\n%s", err, out)
	}
	var br []map[string]any
	json.Unmarshal([]byte(mustDocker(t, e.Host, "network", "inspect", "bridge")), &br)
	o, _ := br[0]["Options"].(map[string]any)
	if o["com.docker.network.bridge.enable_icc"] != "false" || o["com.docker.network.bridge.name"] != n.Bridge || o["com.docker.network.driver.mtu"] != "1500" {
		t.Errorf("default bridge options: %v", o)
	}

	base := strings.TrimSuffix(pool, "0/24")
	mustDocker(t, e.Host, "network", "create", "open")
	mustDocker(t, e.Host, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "closed")
	for net, want := range map[string]string{"open": base + "0/26", "closed": base + "64/26"} {
		if got := strings.TrimSpace(mustDocker(t, e.Host, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", net)); got != want {
			t.Errorf("network %s subnet %s, want %s (from the address pool)", net, got, want)
		}
	}
	for _, net := range []string{"open", "closed"} {
		mustDocker(t, e.Host, "run", "-d", "--name", "srv-"+net, "--network", net, "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
		ip := inspectField(t, e.Host, "srv-"+net, "{{(index .NetworkSettings.Networks \""+net+"\").IPAddress}}")
		out, err := docker(t, e.Host, "run", "--rm", "--network", net, "busybox", "sh", "-c", "timeout 5 wget -qO- http://"+ip+"/hostname")
		if reached := err == nil; reached != (net == "open") {
			t.Errorf("network %s: container to container reached=%v (%v)\n%s", net, reached, err, out)
		}
	}
	if out, err := docker(t, e.Host, "network", "create", "-o", "com.docker.network.bridge.enable_icc=maybe", "bad"); err == nil || !strings.Contains(out, "enable_icc") {
		t.Errorf("bad option value accepted: %v\n%s", err, out)
	}
	if out, err := docker(t, e.Host, "network", "create", "-o", "com.docker.network.bridge.nope=1", "bad"); err == nil || !strings.Contains(out, "not supported") {
		t.Errorf("unknown option accepted: %v\n%s", err, out)
	}
}

// The official Go client decodes every network response: create (with
// IPAM, labels, options), list with filters, inspect, connect and
// disconnect, prune, remove; its errors carry dockerd's codes.
func TestMobyClientNetworks(t *testing.T) {
	e := runEngine(t)
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	subnet, _ := freeSubnet()
	pfx := netip.MustParsePrefix(subnet)
	gw := netip.MustParseAddr(strings.TrimSuffix(subnet, "0/24") + "1")
	rng := netip.MustParsePrefix(strings.TrimSuffix(subnet, "0/24") + "128/25")
	aux := netip.MustParseAddr(strings.TrimSuffix(subnet, "0/24") + "130")
	created, err := c.NetworkCreate(ctx, "gonet", client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{"team": "core"},
		Options: map[string]string{"com.docker.network.bridge.enable_icc": "true"},
		IPAM:    &network.IPAM{Config: []network.IPAMConfig{{Subnet: pfx, Gateway: gw, IPRange: rng, AuxAddress: map[string]netip.Addr{"r": aux}}}}})
	if err != nil || created.ID == "" {
		t.Fatalf("NetworkCreate: %+v, %v", created, err)
	}
	if _, err := c.NetworkCreate(ctx, "gonet", client.NetworkCreateOptions{}); !cerrdefs.IsConflict(err) {
		t.Errorf("duplicate NetworkCreate: %v, want a conflict", err)
	}
	list, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", "team=core")})
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != created.ID {
		t.Fatalf("NetworkList label=team=core: %+v, %v", list, err)
	}
	if l, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("dangling", "true")}); err != nil || len(l.Items) != 1 || l.Items[0].Name != "gonet" {
		t.Errorf("NetworkList dangling=true: %+v, %v", l, err)
	}
	if l, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("type", "builtin")}); err != nil || len(l.Items) != 3 {
		t.Errorf("NetworkList type=builtin: %d networks, %v", len(l.Items), err)
	}

	ctr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "goctr", Config: &container.Config{Image: "busybox", Cmd: []string{"sleep", "600"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerStart(ctx, ctr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr(strings.TrimSuffix(subnet, "0/24") + "140")
	if _, err := c.NetworkConnect(ctx, "gonet", client.NetworkConnectOptions{Container: "goctr",
		EndpointConfig: &network.EndpointSettings{Aliases: []string{"goalias"}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: want}}}); err != nil {
		t.Fatalf("NetworkConnect: %v", err)
	}
	in, err := c.NetworkInspect(ctx, "gonet", client.NetworkInspectOptions{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	ipam := in.Network.IPAM.Config
	if len(ipam) != 1 || ipam[0].Subnet != pfx || ipam[0].Gateway != gw || ipam[0].IPRange != rng || ipam[0].AuxAddress["r"] != aux ||
		in.Network.Labels["team"] != "core" || in.Network.Scope != "local" {
		t.Errorf("NetworkInspect: %+v", in.Network)
	}
	if ep, ok := in.Network.Containers[ctr.ID]; !ok || ep.IPv4Address.Addr() != want || ep.Name != "goctr" {
		t.Errorf("NetworkInspect Containers: %+v", in.Network.Containers)
	}
	ci, err := c.ContainerInspect(ctx, "goctr", client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if es := ci.Container.NetworkSettings.Networks["gonet"]; es == nil || es.IPAddress != want || !slices.Contains(es.Aliases, "goalias") {
		t.Errorf("ContainerInspect Networks[gonet]: %+v", es)
	}
	if _, err := c.NetworkRemove(ctx, "gonet", client.NetworkRemoveOptions{}); !cerrdefs.IsPermissionDenied(err) {
		t.Errorf("NetworkRemove in use: %v, want forbidden", err)
	}
	if _, err := c.NetworkRemove(ctx, "bridge", client.NetworkRemoveOptions{}); !cerrdefs.IsPermissionDenied(err) {
		t.Errorf("NetworkRemove bridge: %v, want forbidden", err)
	}
	if _, err := c.NetworkDisconnect(ctx, "gonet", client.NetworkDisconnectOptions{Container: "goctr"}); err != nil {
		t.Fatalf("NetworkDisconnect: %v", err)
	}
	if _, err := c.NetworkInspect(ctx, "nosuchnet", client.NetworkInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("NetworkInspect missing: %v, want not found", err)
	}
	pr, err := c.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: make(client.Filters).Add("label", "team=core")})
	if err != nil || !slices.Contains(pr.Report.NetworksDeleted, "gonet") {
		t.Errorf("NetworkPrune: %+v, %v", pr, err)
	}
}

// A thousand create/start/wait/remove cycles on a user network, four
// clients at a time, with a published port each: afterwards engined has
// no more fds than after the first cycles, and no veth, rule, endpoint,
// host port or namespace mount is left.
func TestNetworkCyclesLeakNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand containers")
	}
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	subnet, _ := freeSubnet()
	mustDocker(t, e.Host, "network", "create", "--subnet", subnet, "cycles")
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	cycle := func() error {
		cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{Image: "busybox", Cmd: []string{"true"}, ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}},
			HostConfig: &container.HostConfig{NetworkMode: "cycles",
				PortBindings: network.PortMap{network.MustParsePort("80/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1")}}}},
		})
		if err != nil {
			return err
		}
		wait := c.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
		if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
			return err
		}
		select {
		case r := <-wait.Result:
			if r.StatusCode != 0 {
				return fmt.Errorf("exit %d", r.StatusCode)
			}
		case err := <-wait.Error:
			return err
		}
		_, err = c.ContainerRemove(ctx, cr.ID, client.ContainerRemoveOptions{Force: true})
		return err
	}
	run := func(total int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, total)
		jobs := make(chan int, total)
		for i := 0; i < total; i++ {
			jobs <- i
		}
		close(jobs)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					if err := cycle(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("cycle: %v", err)
		}
	}
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", e.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	run(40) // warm: the shim pool, the store, the HTTP connections
	rulesBefore, fdsBefore := nftTable(t, n), fds()
	run(1000)
	if after := fds(); after > fdsBefore+8 {
		t.Errorf("engined's fds grew from %d to %d over 1000 cycles", fdsBefore, after)
	}
	if after := nftTable(t, n); after != rulesBefore {
		t.Errorf("nft table changed over the cycles:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}
	var nets []map[string]any
	json.Unmarshal([]byte(mustDocker(t, e.Host, "network", "inspect", "cycles")), &nets)
	if len(nets) != 1 || len(nets[0]["Containers"].(map[string]any)) != 0 {
		t.Errorf("endpoints left on the network: %v", nets)
	}
	br := strings.TrimSpace(mustDocker(t, e.Host, "network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "cycles"))
	if br == "" {
		br = "br-" + nets[0]["Id"].(string)[:12]
	}
	if ports := settledBridgePorts(t, testNet{Bridge: br}, 0); len(ports) != 0 {
		t.Errorf("veths left on %s: %v", br, ports)
	}
	if out, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(out), e.ExecRoot+"/") && strings.Contains(string(out), "nsfs") {
		t.Errorf("namespace mounts left under %s", e.ExecRoot)
	}
	if ps := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-aq")); ps != "" {
		t.Errorf("containers left: %s", ps)
	}
}

// enableForwarding turns IPv4 forwarding on for packets that come in
// on one interface (the host's other interfaces keep their setting) and
// back to what it was after the test.
func enableForwarding(t *testing.T, ifname string) {
	t.Helper()
	knob := "/proc/sys/net/ipv4/conf/" + ifname + "/forwarding"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knob, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
}
