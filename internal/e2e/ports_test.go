package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// freeHostPort is a port the kernel says is free now, for proto "tcp" or
// "udp": the tests never use fixed ports.
func freeHostPort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hostAddr is one of the host's own non-loopback addresses (that of the
// default route's interface, else of any physical one), not a bridge's.
func hostAddr(t *testing.T) string {
	t.Helper()
	var names []string
	if out, err := exec.Command("ip", "-4", "route", "show", "default").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			for i := range f[:len(f)-1] {
				if f[i] == "dev" {
					names = append(names, f[i+1])
				}
			}
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if _, err := os.Stat("/sys/class/net/" + i.Name + "/device"); err == nil {
			names = append(names, i.Name)
		}
	}
	for _, name := range names {
		i, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String()
			}
		}
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}

// canListen says whether a process other than engined could take the
// port now.
func canListen(proto, addr string) bool {
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	l, err := net.Listen("tcp4", addr)
	if err == nil {
		l.Close()
	}
	return err == nil
}

// portElements are the lines of the test engined's table that publish
// host port port.
func portElements(t *testing.T, n testNet, port int) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(nftTable(t, n), ",", "\n"), "\n") {
		if strings.Contains(l, " . "+strconv.Itoa(port)+" ") && strings.Contains(l, " : ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// -p host:container: the host reaches the container through 127.0.0.1
// and through its other addresses; inspect, ps and docker port show the
// binding; a second container on the port, and a port another process
// holds, are refused with dockerd's errors and leave nothing behind; stop
// releases the port at once and start takes it again; rm removes it.
func TestPortPublish(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	port := freeHostPort(t, "tcp")
	p := strconv.Itoa(port)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "web", "-p", p+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	for _, addr := range []string{"127.0.0.1", hostAddr(t), n.Gateway} {
		if got, err := hostGetWhenUp(t, "http://"+addr+":"+p+"/hostname"); err != nil || got != id[:12]+"\n" {
			t.Errorf("GET %s:%s from the host: %q, %v", addr, p, got, err)
		}
	}
	if out := mustDocker(t, e.Host, "port", "web"); out != "80/tcp -> 0.0.0.0:"+p+"\n" {
		t.Errorf("docker port web: %q", out)
	}
	if out := mustDocker(t, e.Host, "port", "web", "80"); out != "0.0.0.0:"+p+"\n" {
		t.Errorf("docker port web 80: %q", out)
	}
	if got := inspectField(t, e.Host, "web", "{{json .NetworkSettings.Ports}}"); got != `{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"`+p+`"}]}` {
		t.Errorf("NetworkSettings.Ports: %s", got)
	}
	if got := inspectField(t, e.Host, "web", "{{json .HostConfig.PortBindings}} {{json .Config.ExposedPorts}}"); got != `{"80/tcp":[{"HostIp":"","HostPort":"`+p+`"}]} {"80/tcp":{}}` {
		t.Errorf("HostConfig.PortBindings and Config.ExposedPorts: %s", got)
	}
	if got := strings.TrimSpace(mustDocker(t, e.Host, "ps", "--format", "{{.Ports}}")); got != "0.0.0.0:"+p+"->80/tcp" {
		t.Errorf("docker ps Ports: %q", got)
	}
	mustDocker(t, e.Host, "run", "-d", "--name", "plain", "--expose", "81", "busybox", "sleep", "600")
	for filter, want := range map[string]string{"publish=" + p: "web", "publish=" + p + "/tcp": "web", "publish=" + p + "/udp": "",
		"expose=80": "web", "expose=81": "plain", "expose=79-81/tcp": "plain\nweb", "publish=80": ""} {
		if got := strings.TrimSpace(mustDocker(t, e.Host, "ps", "--filter", filter, "--format", "{{.Names}}")); got != want && got != strings.Join(reverse(strings.Split(want, "\n")), "\n") {
			t.Errorf("docker ps --filter %s: %q, want %q", filter, got, want)
		}
	}
	if out, err := docker(t, e.Host, "ps", "--filter", "publish=a:b"); err == nil || !strings.Contains(out, "should not contain ':'") {
		t.Errorf("ps --filter publish=a:b: %v\n%s", err, out)
	}
	mustDocker(t, e.Host, "rm", "-f", "plain")
	_, _, body := e.get("/containers/json")
	var list []struct{ Ports []map[string]any }
	json.Unmarshal([]byte(body), &list)
	if len(list) != 1 || len(list[0].Ports) != 1 || list[0].Ports[0]["IP"] != "0.0.0.0" || list[0].Ports[0]["PublicPort"] != float64(port) ||
		list[0].Ports[0]["PrivatePort"] != float64(80) || list[0].Ports[0]["Type"] != "tcp" {
		t.Errorf("GET /containers/json Ports: %s", body)
	}
	if els := portElements(t, n, port); len(els) != 1 || !strings.Contains(els[0], "web "+id[:12]) {
		t.Errorf("rules for port %d: %q, want one naming web", port, els)
	}

	// The same host port again: refused, the container not running,
	// nothing of it left (no veth, no rule, the port still web's).
	out, err := docker(t, e.Host, "run", "-d", "--name", "web2", "-p", p+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	if err == nil || !strings.Contains(out, "Bind for 0.0.0.0:"+p+" failed: port is already allocated") {
		t.Errorf("a second -p %s: %v\n%s", p, err, out)
	}
	if code, _, body := e.do(http.MethodPost, "/containers/web2/start"); code != http.StatusConflict || !strings.Contains(body, "port is already allocated") {
		t.Errorf("POST /containers/web2/start: %d %s, want 409", code, body)
	}
	if st := inspectField(t, e.Host, "web2", "{{.State.Status}} {{.State.Running}} {{json .NetworkSettings.Ports}}"); st != "created false {}" {
		t.Errorf("web2 after the refused start: %q", st)
	}
	if ports := settledBridgePorts(t, n, 1); len(ports) != 1 {
		t.Errorf("veths after the refused start: %v, want web's only", ports)
	}
	if els := portElements(t, n, port); len(els) != 1 || strings.Contains(strings.Join(els, "\n"), "web2") {
		t.Errorf("rules for port %d after the refused start: %q", port, els)
	}
	mustDocker(t, e.Host, "rm", "web2")

	// A port a plain process holds is refused too.
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	held := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	out, err = docker(t, e.Host, "run", "-d", "--name", "web3", "-p", held+":80", "busybox", "sleep", "600")
	l.Close()
	if err == nil || !strings.Contains(out, "failed to bind host port 0.0.0.0:"+held+"/tcp: address already in use") {
		t.Errorf("-p of a port another process listens on: %v\n%s", err, out)
	}
	mustDocker(t, e.Host, "rm", "-f", "web3")

	// Engined holds the port: nobody else can listen on it.
	if canListen("tcp", "0.0.0.0:"+p) {
		t.Errorf("another process could listen on the published port %s", p)
	}
	// stop releases it at once; start takes it again.
	mustDocker(t, e.Host, "stop", "-t", "0", "web")
	if !canListen("tcp", "0.0.0.0:"+p) {
		t.Errorf("the port of a stopped container is still held")
	}
	if els := portElements(t, n, port); len(els) != 0 {
		t.Errorf("rules of a stopped container: %q", els)
	}
	if got := inspectField(t, e.Host, "web", "{{json .NetworkSettings.Ports}}"); got != "{}" {
		t.Errorf("NetworkSettings.Ports of a stopped container: %s, want {}", got)
	}
	if got := mustDocker(t, e.Host, "ps", "-a", "--format", "{{.Ports}}"); strings.TrimSpace(got) != "" {
		t.Errorf("docker ps -a Ports of a stopped container: %q", got)
	}
	mustDocker(t, e.Host, "start", "web")
	if got, err := hostGetWhenUp(t, "http://127.0.0.1:"+p+"/hostname"); err != nil || got != id[:12]+"\n" {
		t.Errorf("after stop and start: %q, %v", got, err)
	}
	mustDocker(t, e.Host, "rm", "-f", "web")
	if !canListen("tcp", "0.0.0.0:"+p) {
		t.Errorf("the port of a removed container is still held")
	}
	if els := portElements(t, n, port); len(els) != 0 {
		t.Errorf("rules of a removed container: %q", els)
	}
}

// -P publishes every exposed port (--expose, and -p's) on an ephemeral
// port from ip_local_port_range; 127.0.0.1 bindings answer on loopback
// only; ranges give a free port of the range; UDP is published too.
func TestPortPublishAllLoopbackRangeUDP(t *testing.T) {
	e := runEngine(t)
	lo, hi := localPortRange(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "all", "--expose", "80", "--expose", "81/udp", "-P", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	out := mustDocker(t, e.Host, "port", "all")
	var tcpPort int
	for _, want := range []string{"80/tcp", "81/udp"} {
		var got int
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, want+" -> 0.0.0.0:") {
				got, _ = strconv.Atoi(strings.TrimPrefix(l, want+" -> 0.0.0.0:"))
			}
		}
		if got < lo || got > hi {
			t.Errorf("-P: %s on %d, want a port in %d-%d:\n%s", want, got, lo, hi, out)
		}
		if want == "80/tcp" {
			tcpPort = got
		}
	}
	id := inspectField(t, e.Host, "all", "{{.Id}}")
	if got, err := hostGetWhenUp(t, fmt.Sprintf("http://127.0.0.1:%d/hostname", tcpPort)); err != nil || got != id[:12]+"\n" {
		t.Errorf("-P port from the host: %q, %v", got, err)
	}

	// 127.0.0.1: answers on loopback, not on the host's other addresses.
	lp := strconv.Itoa(freeHostPort(t, "tcp"))
	mustDocker(t, e.Host, "run", "-d", "--name", "local", "-p", "127.0.0.1:"+lp+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	lid := inspectField(t, e.Host, "local", "{{.Id}}")
	if got, err := hostGetWhenUp(t, "http://127.0.0.1:"+lp+"/hostname"); err != nil || got != lid[:12]+"\n" {
		t.Errorf("127.0.0.1 binding from the host: %q, %v", got, err)
	}
	if got, err := hostGet(t, "http://"+hostAddr(t)+":"+lp+"/hostname"); err == nil {
		t.Errorf("127.0.0.1 binding answered on %s: %q", hostAddr(t), got)
	}
	if out := mustDocker(t, e.Host, "port", "local"); out != "80/tcp -> 127.0.0.1:"+lp+"\n" {
		t.Errorf("docker port local: %q", out)
	}
	// The same port on another address of the host is free.
	if !canListen("tcp", hostAddr(t)+":"+lp) {
		t.Errorf("a 127.0.0.1 binding holds the port on %s too", hostAddr(t))
	}

	// A range: the first free port of it.
	a := freeHostPort(t, "tcp")
	r := fmt.Sprintf("127.0.0.1:%d-%d:80", a, a+20)
	mustDocker(t, e.Host, "run", "-d", "--name", "r1", "-p", r, "busybox", "sleep", "600")
	mustDocker(t, e.Host, "run", "-d", "--name", "r2", "-p", r, "busybox", "sleep", "600")
	p1, p2 := mustDocker(t, e.Host, "port", "r1", "80"), mustDocker(t, e.Host, "port", "r2", "80")
	var n1, n2 int
	fmt.Sscanf(p1, "127.0.0.1:%d", &n1)
	fmt.Sscanf(p2, "127.0.0.1:%d", &n2)
	if n1 < a || n1 > a+20 || n2 < a || n2 > a+20 || n1 == n2 {
		t.Errorf("two containers on the range %s: %q and %q", r, p1, p2)
	}

	// UDP: a datagram to the host port reaches the container and the
	// answer comes back.
	bin := buildUDPEcho(t)
	up := strconv.Itoa(freeHostPort(t, "udp"))
	mustDocker(t, e.Host, "run", "-d", "--name", "echo", "-p", up+":5353/udp", "-v", bin+":/udpecho:ro", "busybox", "/udpecho", "5353")
	eid := inspectField(t, e.Host, "echo", "{{.Id}}")
	if out := mustDocker(t, e.Host, "port", "echo"); out != "5353/udp -> 0.0.0.0:"+up+"\n" {
		t.Errorf("docker port echo: %q", out)
	}
	for _, addr := range []string{"127.0.0.1", hostAddr(t)} {
		if got := udpAsk(t, addr+":"+up, "ping"); got != eid[:12]+" ping" {
			t.Errorf("UDP to %s:%s: %q", addr, up, got)
		}
	}
	if canListen("udp", "0.0.0.0:"+up) {
		t.Errorf("another process could bind the published UDP port %s", up)
	}
}

// udpAsk sends msg to addr until an answer comes (the server may not be
// up yet), within a bound.
func udpAsk(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got string
	poll(30*time.Second, func() bool {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		got = string(buf[:n])
		return err == nil
	})
	return got
}

func localPortRange(t *testing.T) (int, int) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi int
	fmt.Sscan(string(b), &lo, &hi)
	return lo, hi
}

// forwardOn enables IPv4 forwarding for packets coming in on one
// interface only, as --ip-forward (dockerd's default) does for all: the
// test engineds leave the host's setting alone.
func forwardOn(t *testing.T, iface string) {
	t.Helper()
	p := "/proc/sys/net/ipv4/conf/" + iface + "/forwarding"
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(p, old, 0o644) })
}

// Hairpin: containers reach a published port through the host's
// address and the bridge's gateway, their own port included.
func TestPortHairpin(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	forwardOn(t, n.Bridge)
	p := strconv.Itoa(freeHostPort(t, "tcp"))
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "web", "-p", p+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	if _, err := hostGetWhenUp(t, "http://127.0.0.1:"+p+"/"); err != nil {
		t.Fatalf("web is not up: %v", err)
	}
	for _, addr := range []string{hostAddr(t), n.Gateway} {
		url := "http://" + addr + ":" + p + "/hostname"
		out := mustDocker(t, e.Host, "run", "--rm", "busybox", "sh", "-c", "timeout 10 wget -qO- "+url)
		mustContain(t, "another container to "+url, out, id[:12])
		out = mustDocker(t, e.Host, "exec", "web", "sh", "-c", "timeout 10 wget -qO- "+url)
		mustContain(t, "web to its own "+url, out, id[:12])
	}
}

// Other hosts reach published ports (prerouting DNAT, forwarded into
// the bridge), on the address they came to and on the host's others,
// also where the iptables FORWARD chain drops by default (as dockerd
// leaves it); a 127.0.0.1 binding is not theirs to reach. The other host
// is a network namespace behind a veth, with forwarding on for that veth
// and the bridge only.
func TestPortFromAnotherHost(t *testing.T) {
	dropping := false
	if exec.Command("nft", "list", "table", "ip", "filter").Run() != nil {
		if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) == "0" {
			// As TestBridgeForwardDropPolicy: with forwarding off on the
			// host, a FORWARD chain that drops changes nothing for others.
			if out, err := exec.Command("nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }").CombinedOutput(); err != nil {
				t.Fatalf("make the FORWARD chain: %v\n%s", err, out)
			}
			t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", "filter").Run() })
			dropping = true
		}
	}
	t.Logf("iptables FORWARD chain dropping by default: %v", dropping)
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	subnet, id := freeSubnet()
	prefix := strings.TrimSuffix(subnet, "0/24")
	ns, hv := "peer"+id, "hp"+id
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run(); exec.Command("ip", "link", "del", hv).Run() })
	for _, c := range []string{
		"ip netns add " + ns,
		"ip link add " + hv + " type veth peer name eth0 netns " + ns,
		"ip addr add " + prefix + "1/24 dev " + hv, "ip link set " + hv + " up",
		"ip -n " + ns + " addr add " + prefix + "2/24 dev eth0", "ip -n " + ns + " link set eth0 up", "ip -n " + ns + " link set lo up",
		"ip -n " + ns + " route add default via " + prefix + "1",
	} {
		if out, err := exec.Command("sh", "-c", c).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
	}
	forwardOn(t, hv)
	forwardOn(t, n.Bridge)
	p, lp := strconv.Itoa(freeHostPort(t, "tcp")), strconv.Itoa(freeHostPort(t, "tcp"))
	wid := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "web", "-p", p+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	mustDocker(t, e.Host, "run", "-d", "--name", "local", "-p", "127.0.0.1:"+lp+":80", "-p", prefix+"1:"+lp+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc")
	if _, err := hostGetWhenUp(t, "http://127.0.0.1:"+p+"/"); err != nil {
		t.Fatalf("web is not up: %v", err)
	}
	peerGet := func(url string) (string, error) {
		out, err := exec.Command("ip", "netns", "exec", ns, "busybox", "timeout", "10", "busybox", "wget", "-qO-", url).CombinedOutput()
		return string(out), err
	}
	for _, addr := range []string{prefix + "1", hostAddr(t)} {
		if got, err := peerGet("http://" + addr + ":" + p + "/hostname"); err != nil || got != wid[:12]+"\n" {
			t.Errorf("another host to %s:%s: %q, %v", addr, p, got, err)
		}
	}
	// local publishes lp on 127.0.0.1 and on the peer's side of the host:
	// the peer reaches the one and not the other (its own 127.0.0.1 is
	// not the host's; the host's other addresses do not have the port).
	if _, err := peerGet("http://" + prefix + "1:" + lp + "/hostname"); err != nil {
		t.Errorf("another host to a binding on the address it reaches: %v", err)
	}
	if got, err := peerGet("http://" + hostAddr(t) + ":" + lp + "/hostname"); err == nil {
		t.Errorf("another host reached %s:%s, which is published on 127.0.0.1 and %s1 only: %q", hostAddr(t), lp, prefix, got)
	}
	if dropping {
		if hs := foreignRuleHandles(n.Table); len(hs) != 3 {
			t.Errorf("engined's accepts in the dropping FORWARD chain: %d, want 3", len(hs))
		}
	}
}

// A container cannot reach the host's loopback services through its
// bridge (route_localnet is on there, for the host's 127.0.0.1 traffic
// to published ports): a privileged container that routes 127.0.0.1 to
// the gateway sends UDP datagrams to a host listener on 127.0.0.1, and
// none arrives, while those to a listener on the gateway do.
func TestPortRemoteLoopback(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	bin := buildUDPEcho(t)
	listen := func(addr string) (string, <-chan string) {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ch := make(chan string, 100)
		go func() {
			buf := make([]byte, 1500)
			for {
				k, _, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				ch <- string(buf[:k])
			}
		}()
		return c.LocalAddr().String(), ch
	}
	loAddr, lo := listen("127.0.0.1:0")
	gwAddr, gw := listen(n.Gateway + ":0")
	script := `ip route del table local local 127.0.0.1 dev lo; ip route del table local local 127.0.0.0/8 dev lo
ip route add 127.0.0.1/32 via ` + n.Gateway + ` dev eth0
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet; echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
ip route get 127.0.0.1
/udpecho send ` + gwAddr + ` control
/udpecho send ` + loAddr + ` loopback`
	out := mustDocker(t, e.Host, "run", "--rm", "--privileged", "-v", bin+":/udpecho:ro", "busybox", "sh", "-c", script)
	mustContain(t, "the crafted route", out, "127.0.0.1 via "+n.Gateway)
	select {
	case m := <-gw:
		if m != "control" {
			t.Errorf("the gateway listener got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no datagram reached the gateway listener: the probe does not work\n%s", out)
	}
	// The sends are done when docker run returns: whatever got through
	// is queued by now.
	if poll(time.Second, func() bool { return len(lo) > 0 }) {
		t.Errorf("a container reached the host's 127.0.0.1 (%s): %q", loAddr, <-lo)
	}
}

// buildUDPEcho builds testdata/udpecho static, to bind-mount into
// busybox containers.
func buildUDPEcho(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "udpecho")
	build := exec.Command("go", "build", "-o", bin, "./testdata/udpecho")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build udpecho: %v\n%s", err, out)
	}
	return bin
}

// Published ports answer while engined is SIGKILLed and down and after
// it restarts (no failed request over a bounded loop); the restarted
// engined holds the port again; a container that died while it was down
// has its port and rules released.
func TestPortSurvivesEnginedKill(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	port, doomedPort := freeHostPort(t, "tcp"), freeHostPort(t, "tcp")
	p, dp := strconv.Itoa(port), strconv.Itoa(doomedPort)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--name", "web", "-p", p+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	mustDocker(t, e.Host, "run", "-d", "--name", "doomed", "-p", dp+":80", "busybox", "sleep", "600")
	var pid int
	fmt.Sscan(inspectField(t, e.Host, "doomed", "{{.State.Pid}}"), &pid)
	url := "http://127.0.0.1:" + p + "/hostname"
	if got, err := hostGetWhenUp(t, url); err != nil || got != id[:12]+"\n" {
		t.Fatalf("before the kill: %q, %v", got, err)
	}

	loop := startHTTPLoop(url, id[:12]+"\n")
	loop.atLeastMore(t, "requests before the kill", 20)
	e.cmd.Process.Kill()
	<-e.done
	loop.atLeastMore(t, "requests while engined is down", 50)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill doomed's process: %v", err)
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	loop.atLeastMore(t, "requests after the restart", 50)
	loop.end(t, "across the kill and the restart")

	// The port is engined's again.
	out, err := docker(t, e2.Host, "run", "-d", "--name", "web2", "-p", p+":80", "busybox", "sleep", "600")
	if err == nil || !strings.Contains(out, "Bind for 0.0.0.0:"+p+" failed: port is already allocated") {
		t.Errorf("-p %s after the restart: %v\n%s", p, err, out)
	}
	if canListen("tcp", "0.0.0.0:"+p) {
		t.Errorf("after the restart another process could listen on web's port")
	}
	// doomed died while engined was down: its port and rules go.
	waitInspect(t, e2.Host, "doomed", "{{.State.Status}}", func(s string) bool { return s == "exited" })
	waitFor(t, "doomed's port released", func() bool { return canListen("tcp", "0.0.0.0:"+dp) && len(portElements(t, n, doomedPort)) == 0 })
	if els := portElements(t, n, port); len(els) != 1 {
		t.Errorf("web's rules after the restart: %q", els)
	}
	if got := inspectField(t, e2.Host, "web", "{{json .NetworkSettings.Ports}}"); got != `{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"`+p+`"}]}` {
		t.Errorf("web's Ports after the restart: %s", got)
	}
}

// 100 run/rm cycles publishing the same host port: each run gets it at
// once, and no rule, veth or held port is left.
func TestPortCyclesLeakNothing(t *testing.T) {
	e := runEngine(t)
	n := netFor(t, filepath.Dir(e.DataRoot))
	before := nftTable(t, n)
	p := strconv.Itoa(freeHostPort(t, "tcp"))
	for i := 0; i < 100; i++ {
		id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "-p", p+":80", "-p", "127.0.0.1::81", "busybox", "sleep", "600"))
		mustDocker(t, e.Host, "rm", "-f", id)
	}
	if after := nftTable(t, n); after != before {
		t.Errorf("nft table changed over the cycles:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ports := settledBridgePorts(t, n, 0); len(ports) != 0 {
		t.Errorf("veths left: %v", ports)
	}
	if !canListen("tcp", "0.0.0.0:"+p) {
		t.Errorf("port %s still held after the cycles", p)
	}
	// engined holds no socket of a removed container's.
	pid := e.cmd.Process.Pid
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	sockets := 0
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	if sockets > 40 {
		t.Errorf("engined has %d sockets open after 100 cycles: host ports leak", sockets)
	}
}

// Bad port specifications are 400s naming the problem; -p with the
// host's network is discarded with dockerd's warning; with another
// container's network it is dockerd's conflict.
func TestPortValidation(t *testing.T) {
	e := runEngine(t)
	for _, c := range []struct{ bindings, want string }{
		{`{"80/tcp":[{"HostPort":"abc"}]}`, `invalid port specification: \"abc\"`},
		{`{"80/tcp":[{"HostPort":"90-80"}]}`, `invalid port specification: \"90-80\"`},
		{`{"80/tcp":[{"HostPort":"70000"}]}`, `invalid port specification: \"70000\"`},
		{`{"80/sctp":[{"HostPort":"8080"}]}`, `sctp`},
		{`{"80/tcp":[{"HostIp":"::1","HostPort":"8080"}]}`, `IPv4 addresses only`},
	} {
		body := `{"Image":"busybox","Cmd":["true"],"HostConfig":{"PortBindings":` + c.bindings + `}}`
		resp, out := e.post(t, "/containers/create", "application/json", strings.NewReader(body))
		if code := resp.StatusCode; code != http.StatusBadRequest || !strings.Contains(out, c.want) {
			t.Errorf("PortBindings %s: %d %s, want 400 with %q", c.bindings, resp.StatusCode, out, c.want)
		}
	}
	if resp, out := e.post(t, "/containers/create", "application/json", strings.NewReader(`{"Image":"busybox","ExposedPorts":{"80/foo":{}}}`)); resp.StatusCode != http.StatusBadRequest || !strings.Contains(out, "invalid proto: foo") {
		t.Errorf("ExposedPorts 80/foo: %d %s", resp.StatusCode, out)
	}
	out, err := docker(t, e.Host, "run", "--rm", "--network", "host", "-p", "8080:80", "busybox", "true")
	if err != nil || !strings.Contains(out, "Published ports are discarded when using host network mode") {
		t.Errorf("-p with --network host: %v\n%s", err, out)
	}
	mustDocker(t, e.Host, "run", "-d", "--name", "base", "busybox", "sleep", "600")
	for _, args := range [][]string{{"-p", "8080:80"}, {"-P"}} {
		out, err = docker(t, e.Host, append(append([]string{"create", "--network", "container:base"}, args...), "busybox", "true")...)
		if err == nil || !strings.Contains(out, "conflicting options: port publishing and the container type network mode") {
			t.Errorf("%v with --network container:base: %v\n%s", args, err, out)
		}
	}
	// -p with --network none publishes nothing.
	mustDocker(t, e.Host, "run", "-d", "--name", "none", "--network", "none", "-p", "80", "busybox", "sleep", "600")
	if got := inspectField(t, e.Host, "none", "{{json .NetworkSettings.Ports}}"); got != "{}" {
		t.Errorf("--network none -p 80: Ports %s", got)
	}
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// httpLoop GETs a URL from the host, one new connection per request,
// until ended (at most 100,000 times), counting answers and failures.
type httpLoop struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startHTTPLoop(url, want string) *httpLoop {
	l := &httpLoop{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for i := 0; i < 100000; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			resp, err := c.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != want {
					err = fmt.Errorf("answer %q", b)
				}
			}
			if err != nil {
				l.failed.Add(1)
				l.lastErr.Store(err.Error())
			} else {
				l.ok.Add(1)
			}
		}
	}()
	return l
}

// atLeastMore waits for k more answered requests.
func (l *httpLoop) atLeastMore(t *testing.T, what string, k int64) {
	t.Helper()
	base := l.ok.Load()
	waitFor(t, what, func() bool { return l.ok.Load() >= base+k })
}

// end stops the loop, prints its counts and fails the test if a request
// failed.
func (l *httpLoop) end(t *testing.T, when string) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("requests %s: %d answered, %d failed", when, l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		t.Errorf("%d of %d requests failed %s (last: %v)", l.failed.Load(), l.failed.Load()+l.ok.Load(), when, l.lastErr.Load())
	}
}
