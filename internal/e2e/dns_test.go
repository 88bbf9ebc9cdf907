package e2e

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// upstreamDNS is a DNS server on the host standing in for the host's
// resolvers: it answers A queries for the names it was given and
// NXDOMAIN for the rest, on a loopback address of its own at port 53
// (resolv.conf has no ports), over UDP and TCP. It counts queries per
// transport, so a test can see the resolver's TCP fallback.
type upstreamDNS struct {
	Addr    string // 127.x.y.z
	records map[string][]string
	udp     *dns.Server
	tcp     *dns.Server
}

func startUpstreamDNS(t *testing.T, records map[string][]string) *upstreamDNS {
	t.Helper()
	return startUpstreamDNSAt(t, "", records)
}

// startUpstreamDNSAt is startUpstreamDNS on addr:53 ("": a random
// loopback address).
func startUpstreamDNSAt(t *testing.T, at string, records map[string][]string) *upstreamDNS {
	t.Helper()
	u := &upstreamDNS{records: records}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		ips, ok := u.records[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		if q.Question[0].Qtype == dns.TypeA {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A: net.ParseIP(ip)})
			}
		}
		if w.LocalAddr().Network() == "udp" {
			size := dns.MinMsgSize
			if o := q.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			m.Truncate(size)
		}
		w.WriteMsg(m)
	})
	for try := 0; ; try++ {
		var b [3]byte
		rand.Read(b[:])
		addr := fmt.Sprintf("127.%d.%d.%d", 1+b[0]%250, b[1], 1+b[2]%250)
		if at != "" {
			addr = at
		}
		pc, err := net.ListenPacket("udp4", addr+":53")
		if err != nil {
			if try > 20 || at != "" {
				t.Fatalf("listen udp %s:53: %v", addr, err)
			}
			continue
		}
		l, err := net.Listen("tcp4", addr+":53")
		if err != nil {
			pc.Close()
			if try > 20 || at != "" {
				t.Fatalf("listen tcp %s:53: %v", addr, err)
			}
			continue
		}
		u.Addr = addr
		u.udp = &dns.Server{PacketConn: pc, Handler: h}
		u.tcp = &dns.Server{Listener: l, Handler: h}
		break
	}
	go u.udp.ActivateAndServe()
	go u.tcp.ActivateAndServe()
	t.Cleanup(func() { u.udp.Shutdown(); u.tcp.Shutdown() })
	return u
}

// dnsEngine is runEngine with the host's resolv.conf replaced by one
// naming up as the only nameserver, with an option of the host's that
// containers on user networks must keep. (No search domain: busybox's
// nslookup then only asks for NAME.DOMAIN, never NAME, with dockerd as
// with engined.)
func dnsEngine(t *testing.T, up *upstreamDNS) (*engined, string) {
	t.Helper()
	reg := startRegistry(t)
	pushFixtures(t, reg)
	dataRoot, execRoot := newRoots(t)
	resolv := filepath.Join(filepath.Dir(dataRoot), "host-resolv.conf")
	if err := os.WriteFile(resolv, []byte("# the test's host file\nnameserver "+up.Addr+"\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startEnginedAt(t, dataRoot, execRoot, "--registry-mirror", "http://"+reg.Addr, "--host-resolv-conf", resolv)
	mustDocker(t, e.Host, "pull", "busybox")
	return e, resolv
}

// resolverPid is the pid of the test engined's resolver process.
func resolverPid(t *testing.T, e *engined) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.ExecRoot, "dns", "resolver.pid"))
	if err != nil {
		t.Fatalf("resolver pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("resolver pid file: %q", b)
	}
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// lookup runs busybox nslookup in a new container on network.
func lookup(t *testing.T, e *engined, network, name string) (string, error) {
	t.Helper()
	return docker(t, e.Host, "run", "--rm", "--network", network, "busybox", "sh", "-c", "nslookup "+name)
}

func mustResolve(t *testing.T, e *engined, network, name, ip string) {
	t.Helper()
	out, err := lookup(t, e, network, name)
	if err != nil || !strings.Contains(out, "Address: "+ip+"\n") {
		t.Errorf("nslookup %s on %s: want %s: %v\n%s", name, network, ip, err, out)
	}
}

// queryIn sends one query to 127.0.0.11:53 from inside the network
// namespace of the container whose init is pid, over proto.
func queryIn(t *testing.T, pid int, proto, name string, qtype uint16, edns bool) (*dns.Msg, error) {
	t.Helper()
	type result struct {
		m   *dns.Msg
		err error
	}
	res := make(chan result, 1)
	go func() {
		// The thread stays in the container's namespace and ends with
		// this goroutine (it is never unlocked).
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			res <- result{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			res <- result{err: err}
			return
		}
		c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), qtype)
		if edns {
			q.SetEdns0(4096, false)
		}
		m, _, err := c.Exchange(q, "127.0.0.11:53")
		res <- result{m, err}
	}()
	r := <-res
	return r.m, r.err
}

func containerPid(t *testing.T, e *engined, name string) int {
	t.Helper()
	pid, err := strconv.Atoi(inspectField(t, e.Host, name, "{{.State.Pid}}"))
	if err != nil || pid <= 0 {
		t.Fatalf("pid of %s: %q", name, inspectField(t, e.Host, name, "{{.State.Pid}}"))
	}
	return pid
}

// On a user-defined network, containers find each other by name, alias,
// short id and hostname through 127.0.0.11; names are scoped to the
// networks a container shares; PTR gives name.network; AAAA is empty;
// other names go to the host's resolvers (over UDP, and TCP when the
// answer is too big); resolv.conf is dockerd's; removing a container
// removes its names.
func TestDNSUserNetwork(t *testing.T) {
	big := []string{}
	for i := 1; i <= 60; i++ {
		big = append(big, fmt.Sprintf("192.0.2.%d", i))
	}
	up := startUpstreamDNS(t, map[string][]string{"external.example.": {"198.51.100.7"}, "big.example.": big})
	e, resolv := dnsEngine(t, up)
	userNet(t, e, "app")
	userNet(t, e, "other")

	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "db", "--network-alias", "database",
		"--hostname", "dbhost", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	ip := inspectField(t, e.Host, "db", "{{.NetworkSettings.Networks.app.IPAddress}}")

	// inspect: Aliases as given, DNSNames in dockerd's order.
	if got := inspectField(t, e.Host, "db", "{{json .NetworkSettings.Networks.app.Aliases}} {{json .NetworkSettings.Networks.app.DNSNames}}"); got != `["database"] ["db","database","`+id[:12]+`","dbhost"]` {
		t.Errorf("Aliases DNSNames: %s", got)
	}

	// Before API 1.45, Aliases also had the short id and the hostname.
	if code, _, body := e.get("/v1.44/containers/db/json"); code != 200 {
		t.Errorf("inspect at 1.44: %d %s", code, body)
	} else {
		var old struct {
			NetworkSettings struct {
				Networks map[string]struct{ Aliases []string }
			}
		}
		json.Unmarshal([]byte(body), &old)
		if got := fmt.Sprint(old.NetworkSettings.Networks["app"].Aliases); got != "[database "+id[:12]+" dbhost]" {
			t.Errorf("Aliases at API 1.44: %s", got)
		}
	}

	out := mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "sh", "-c", "nslookup db && timeout 10 wget -qO- http://db/hostname")
	mustContain(t, "nslookup db; wget http://db/hostname", out, "Address: "+ip+"\n", "dbhost\n")
	for _, name := range []string{"database", id[:12], "dbhost", "DB", "db.app", "database.app."} {
		mustResolve(t, e, "app", name, ip)
	}
	// Not across networks: a container on another network, or on the
	// default bridge, does not know db.
	for _, n := range []string{"other", "bridge"} {
		if out, err := lookup(t, e, n, "db"); err == nil || strings.Contains(out, ip) {
			t.Errorf("nslookup db on %s: want a failure: %v\n%s", n, err, out)
		}
	}
	if out, err := lookup(t, e, "app", "db.other"); err == nil || strings.Contains(out, ip) {
		t.Errorf("nslookup db.other on app: want a failure: %v\n%s", err, out)
	}

	// An --internal network's containers resolve each other, and
	// nothing outside: their queries are not forwarded.
	userNet(t, e, "priv", "--internal")
	mustDocker(t, e.Host, "run", "-d", "--net", "priv", "--name", "vault", "busybox", "sleep", "600")
	mustResolve(t, e, "priv", "vault", inspectField(t, e.Host, "vault", "{{.NetworkSettings.Networks.priv.IPAddress}}"))
	if out, err := lookup(t, e, "priv", "external.example"); err == nil || strings.Contains(out, "198.51.100.7") {
		t.Errorf("nslookup external.example on an internal network: want a failure: %v\n%s", err, out)
	}

	// Reverse lookup.
	out = mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "sh", "-c", "nslookup "+ip)
	mustContain(t, "nslookup "+ip, out, "db.app")

	// Forwarded to the host's resolvers (from the host's namespace: the
	// upstream is on the host's loopback).
	mustResolve(t, e, "app", "external.example", "198.51.100.7")
	if out, err := lookup(t, e, "app", "nonexistent.example"); err == nil || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("nslookup nonexistent.example: want NXDOMAIN: %v\n%s", err, out)
	}

	// --dns servers are queried from the container's namespace, as
	// dockerd does: one on the default bridge's gateway, which the
	// container reaches through its own network's gateway.
	gw := netFor(t, filepath.Dir(e.DataRoot)).Gateway
	startUpstreamDNSAt(t, gw, map[string][]string{"viadns.example.": {"198.51.100.9"}})
	out = mustDocker(t, e.Host, "run", "--rm", "--net", "app", "--dns", gw, "busybox", "sh", "-c", "nslookup viadns.example")
	mustContain(t, "nslookup through --dns", out, "Address: 198.51.100.9\n")
	if out, err := lookup(t, e, "app", "viadns.example"); err == nil {
		t.Errorf("viadns.example without --dns: want a failure (the host's upstream does not know it):\n%s", out)
	}

	// dockerd's resolv.conf for the internal resolver.
	got := mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "cat", "/etc/resolv.conf")
	want := "# Generated by Docker Engine.\n# This file can be edited; Docker Engine will not make further changes once it\n# has been modified.\n\n" +
		"nameserver 127.0.0.11\noptions edns0 ndots:0\n\n" +
		"# Based on host file: '" + resolv + "' (internal resolver)\n# ExtServers: [host(" + up.Addr + ")]\n# Overrides: []\n# Option ndots from: internal\n"
	if got != want {
		t.Errorf("resolv.conf on a user network:\n%s\nwant:\n%s", got, want)
	}
	// --dns servers are the resolver's upstreams, not resolv.conf lines.
	got = mustDocker(t, e.Host, "run", "--rm", "--net", "app", "--dns", "192.0.2.53", "--dns-search", "corp.test", "--dns-option", "timeout:2",
		"busybox", "cat", "/etc/resolv.conf")
	want = "# Generated by Docker Engine.\n# This file can be edited; Docker Engine will not make further changes once it\n# has been modified.\n\n" +
		"nameserver 127.0.0.11\nsearch corp.test\noptions timeout:2 ndots:0\n\n" +
		"# Based on host file: '" + resolv + "' (internal resolver)\n# ExtServers: [192.0.2.53]\n# Overrides: [nameservers search options]\n# Option ndots from: internal\n"
	if got != want {
		t.Errorf("resolv.conf with --dns, --dns-search, --dns-option:\n%s\nwant:\n%s", got, want)
	}
	// The default bridge keeps the host's file (no loopback servers).
	got = mustDocker(t, e.Host, "run", "--rm", "busybox", "cat", "/etc/resolv.conf")
	if strings.Contains(got, "127.0.0.11") || strings.Contains(got, up.Addr) || !strings.Contains(got, "options edns0") {
		t.Errorf("resolv.conf on the default bridge:\n%s", got)
	}

	// From inside db's namespace with a real client: AAAA is empty
	// NOERROR, TTL 600, TCP works, and a big forwarded answer comes
	// truncated over UDP and whole over TCP.
	pid := containerPid(t, e, "db")
	m, err := queryIn(t, pid, "udp", "database", dns.TypeAAAA, false)
	if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA database: %v %v", m, err)
	}
	m, err = queryIn(t, pid, "tcp", "db", dns.TypeA, false)
	if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != ip || m.Answer[0].Header().Ttl != 600 {
		t.Errorf("A db over TCP: %v %v", m, err)
	}
	m, err = queryIn(t, pid, "udp", "big.example", dns.TypeA, false)
	if err != nil || !m.Truncated || len(m.Answer) >= len(big) {
		t.Errorf("A big.example over UDP: want a truncated answer: %v %v", m, err)
	}
	m, err = queryIn(t, pid, "tcp", "big.example", dns.TypeA, false)
	if err != nil || m.Truncated || len(m.Answer) != len(big) {
		t.Errorf("A big.example over TCP: want all %d: %v %v", len(big), m, err)
	}
	// db's own processes can still bind port 53: the resolver's sockets
	// are on other ports, reached through a DNAT in the container.
	// (httpd without -f binds, then goes to the background: its exit
	// status says whether the bind worked.)
	mustDocker(t, e.Host, "exec", "db", "sh", "-c", "httpd -p 127.0.0.11:53 -h /etc")

	// A rename changes the name on the DNS (and in DNSNames), as
	// dockerd's.
	mustDocker(t, e.Host, "rename", "db", "db2")
	mustResolve(t, e, "app", "db2", ip)
	if out, err := lookup(t, e, "app", "db"); err == nil || strings.Contains(out, ip) {
		t.Errorf("nslookup db after the rename: want a failure: %v\n%s", err, out)
	}
	if got := inspectField(t, e.Host, "db2", "{{json .NetworkSettings.Networks.app.DNSNames}}"); got != `["db2","database","`+id[:12]+`","dbhost"]` {
		t.Errorf("DNSNames after the rename: %s", got)
	}

	// Removing the container removes its names.
	mustDocker(t, e.Host, "rm", "-f", "db2")
	if out, err := lookup(t, e, "app", "db"); err == nil || strings.Contains(out, ip) {
		t.Errorf("nslookup db after rm: want a failure: %v\n%s", err, out)
	}
}

// Resolution keeps working while engined is SIGKILLed, down and
// restarted (a container looping lookups counts zero failures), a name
// added after the restart resolves, and a resolver SIGKILLed is back at
// engined's next start.
func TestDNSSurvivesEngineRestart(t *testing.T) {
	up := startUpstreamDNS(t, nil)
	e, _ := dnsEngine(t, up)
	userNet(t, e, "app")
	mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "db", "busybox", "sleep", "600")
	ip := inspectField(t, e.Host, "db", "{{.NetworkSettings.Networks.app.IPAddress}}")
	// A bounded loop: it prints one line per lookup and a summary.
	loop := `ok=0; fail=0; i=0; while [ $i -lt 300 ]; do i=$((i+1)); if nslookup db >/dev/null 2>&1; then ok=$((ok+1)); echo ok $ok; else fail=$((fail+1)); echo FAIL $fail; fi; sleep 0.05; done; echo "done ok=$ok fail=$fail"`
	mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "looper", "busybox", "sh", "-c", loop)
	logs := func(h string) string { out, _ := docker(t, h, "logs", "looper"); return out }
	count := func(s string) int { return strings.Count(s, "ok ") }
	waitFor(t, "first lookups", func() bool { return count(logs(e.Host)) >= 5 })

	resolver := resolverPid(t, e)
	logPath := inspectField(t, e.Host, "looper", "{{.LogPath}}")
	e.cmd.Process.Kill()
	<-e.done
	// The looper keeps resolving while engined is down.
	lines := 0
	n := 0
	waitFor(t, "lookups while engined is down", func() bool {
		out, err := os.ReadFile(logPath)
		if err != nil {
			return false
		}
		if n == 0 {
			lines = strings.Count(string(out), "\n")
		}
		n++
		return strings.Count(string(out), "\n") >= lines+20
	})
	if !alive(resolver) {
		t.Fatalf("the resolver died with engined")
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--host-resolv-conf", filepath.Join(filepath.Dir(e.DataRoot), "host-resolv.conf"))
	if got := resolverPid(t, e2); got != resolver {
		t.Errorf("engined's restart replaced the live resolver %d with %d", resolver, got)
	}
	// A name added after the restart resolves.
	mustDocker(t, e2.Host, "run", "-d", "--net", "app", "--name", "late", "busybox", "sleep", "600")
	mustResolve(t, e2, "app", "late", inspectField(t, e2.Host, "late", "{{.NetworkSettings.Networks.app.IPAddress}}"))
	mustResolve(t, e2, "app", "db", ip)

	// (300 lookups, 50 ms apart, take 20-30 s.)
	if !poll(90*time.Second, func() bool { return strings.Contains(logs(e2.Host), "done ") }) {
		t.Fatalf("the lookup loop did not end:\n%s", tail(logs(e2.Host), 10))
	}
	out := logs(e2.Host)
	if !strings.Contains(out, "done ok=300 fail=0") {
		t.Errorf("lookups across engined's SIGKILL and restart:\n%s", tail(out, 30))
	}

	// The resolver SIGKILLed together with engined: while both are down
	// the DNAT in each container leads to a closed port (lookups fail
	// at once, they do not hang); engined's next start starts a new
	// resolver, which opens new sockets and points the DNAT at them.
	resolver = resolverPid(t, e2)
	pid := containerPid(t, e2, "db")
	e2.cmd.Process.Kill()
	<-e2.done
	syscall.Kill(resolver, syscall.SIGKILL)
	waitFor(t, "the resolver to die", func() bool { return !alive(resolver) || isZombie(resolver) })
	if m, err := queryIn(t, pid, "udp", "late", dns.TypeA, false); err == nil && len(m.Answer) > 0 {
		t.Errorf("with engined and the resolver down, late still resolves: %v", m)
	}
	e3 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--host-resolv-conf", filepath.Join(filepath.Dir(e.DataRoot), "host-resolv.conf"))
	if got := resolverPid(t, e3); got == resolver || !alive(got) {
		t.Errorf("resolver after engined's start: pid %d (the killed one was %d)", got, resolver)
	}
	if m, err := queryIn(t, pid, "udp", "late", dns.TypeA, false); err != nil || len(m.Answer) != 1 {
		t.Errorf("late from db after engined's restart: %v %v", m, err)
	}

	// The resolver SIGKILLed alone, engined running: engined starts a
	// new one at once (it watches the resolver), which takes the ports
	// the DNAT in the container names again.
	dnat := func() string {
		out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "nft", "list", "table", "ip", "engined_dns").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table ip engined_dns in db: %v\n%s", err, out)
		}
		return string(out)
	}
	before := dnat()
	mustContain(t, "the DNAT in db", before, "ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:", "ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:",
		"udp sport", "snat to 127.0.0.11:53")
	resolver = resolverPid(t, e3)
	syscall.Kill(resolver, syscall.SIGKILL)
	waitFor(t, "a new resolver", func() bool {
		b, err := os.ReadFile(filepath.Join(e3.ExecRoot, "dns", "resolver.pid"))
		p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && p != resolver && p > 0 && alive(p)
	})
	waitFor(t, "late to resolve through the new resolver", func() bool {
		m, err := queryIn(t, pid, "udp", "late", dns.TypeA, false)
		return err == nil && len(m.Answer) == 1
	})
	if after := dnat(); after != before {
		t.Errorf("the new resolver rewrote the DNAT:\n%s\nwas:\n%s", after, before)
	}

	// engined stopped cleanly (SIGTERM): the resolver goes on.
	resolver = resolverPid(t, e3)
	e3.stop()
	if !alive(resolver) {
		t.Fatalf("the resolver stopped with engined")
	}
	if m, err := queryIn(t, pid, "tcp", "late", dns.TypeA, false); err != nil || len(m.Answer) != 1 {
		t.Errorf("late from db after engined's stop: %v %v", m, err)
	}
	// An engined that runs at the test's end removes its containers.
	startEnginedAt(t, e.DataRoot, e.ExecRoot, "--host-resolv-conf", filepath.Join(filepath.Dir(e.DataRoot), "host-resolv.conf"))
}

// engined's own --dns (dockerd's daemon option) is what containers
// without --dns get: on the default bridge a nameserver line, on a user
// network the embedded DNS's upstream, queried from the container's
// namespace (dockerd's treats it as a container's --dns).
func TestDNSEngineDefaults(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	dataRoot, execRoot := newRoots(t)
	gw := netFor(t, filepath.Dir(dataRoot)).Gateway
	e := startEnginedAt(t, dataRoot, execRoot, "--registry-mirror", "http://"+reg.Addr, "--dns", gw, "--dns-search", "corp.test")
	mustDocker(t, e.Host, "pull", "busybox")
	startUpstreamDNSAt(t, gw, map[string][]string{"viadns.example.": {"198.51.100.9"}})
	userNet(t, e, "app")

	got := mustDocker(t, e.Host, "run", "--rm", "busybox", "cat", "/etc/resolv.conf")
	mustContain(t, "resolv.conf on the default bridge", got, "nameserver "+gw+"\n", "search corp.test\n")
	got = mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "cat", "/etc/resolv.conf")
	mustContain(t, "resolv.conf on a user network", got, "nameserver 127.0.0.11\n", "search corp.test\n", "# ExtServers: ["+gw+"]\n",
		"# Overrides: [nameservers search]\n")
	out := mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "sh", "-c", "nslookup viadns.example.")
	mustContain(t, "nslookup through engined's --dns", out, "Address: 198.51.100.9\n")
}

// 100 run/rm cycles on a user network leave the resolver with the file
// descriptors it had (its sockets in each container hold that
// container's network namespace).
func TestDNSNoLeaks(t *testing.T) {
	up := startUpstreamDNS(t, nil)
	e, _ := dnsEngine(t, up)
	userNet(t, e, "app")
	mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "db", "busybox", "sleep", "600")
	pid := resolverPid(t, e)
	before := fds(t, pid)
	for i := 0; i < 100; i++ {
		mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "true")
	}
	// The measure sees a sandbox: one more running container holds two
	// sockets and its namespace.
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--net", "app", "busybox", "sleep", "600"))
	if during := fds(t, pid); len(during) != len(before)+3 {
		t.Errorf("resolver fds with one more container: %d, want %d+3:\n%v", len(during), len(before), during)
	}
	mustDocker(t, e.Host, "rm", "-f", id)
	if got := resolverPid(t, e); got != pid {
		t.Fatalf("the resolver changed (%d, was %d)", got, pid)
	}
	after := fds(t, pid)
	if len(after) != len(before) {
		t.Errorf("resolver fds: %d before, %d after 100 cycles:\nbefore %v\nafter %v", len(before), len(after), before, after)
	}
	mustResolve(t, e, "app", "db", inspectField(t, e.Host, "db", "{{.NetworkSettings.Networks.app.IPAddress}}"))
}

func fds(t *testing.T, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, regexp.MustCompile(`\[\d+\]`).ReplaceAllString(l, "[]"))
	}
	return out
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDNSMeasure prints the resolver's RSS and the latency of queries
// it answers itself and of forwarded ones (ENGINED_DNS_MEASURE=1; the
// numbers are in internal/network/dns's package comment).
func TestDNSMeasure(t *testing.T) {
	if os.Getenv("ENGINED_DNS_MEASURE") == "" {
		t.Skip("set ENGINED_DNS_MEASURE=1 to measure")
	}
	up := startUpstreamDNS(t, map[string][]string{"external.example.": {"198.51.100.7"}})
	e, _ := dnsEngine(t, up)
	userNet(t, e, "app")
	mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "db", "busybox", "sleep", "600")
	pid := containerPid(t, e, "db")
	rss := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", resolverPid(t, e)))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
			}
		}
		return "?"
	}
	t.Logf("resolver RSS with 1 sandbox: %s", rss())
	for _, c := range []struct{ proto, name string }{{"udp", "db"}, {"tcp", "db"}, {"udp", "external.example"}} {
		const n = 2000
		type result struct {
			d   time.Duration
			err error
		}
		res := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			ns, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				res <- result{err: err}
				return
			}
			defer ns.Close()
			if err := netns.Set(ns); err != nil {
				res <- result{err: err}
				return
			}
			cl := &dns.Client{Net: c.proto, Timeout: 5 * time.Second}
			q := new(dns.Msg)
			q.SetQuestion(dns.Fqdn(c.name), dns.TypeA)
			start := time.Now()
			for i := 0; i < n; i++ {
				if m, _, err := cl.Exchange(q, "127.0.0.11:53"); err != nil || len(m.Answer) != 1 {
					res <- result{err: fmt.Errorf("query %d: %v %v", i, m, err)}
					return
				}
			}
			res <- result{d: time.Since(start) / n}
		}()
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Logf("%s %s: %v per query (sequential, new client socket each)", c.proto, c.name, r.d)
	}
	t.Logf("resolver RSS after the queries: %s", rss())
	for i := 0; i < 50; i++ {
		mustDocker(t, e.Host, "run", "-d", "--net", "app", "busybox", "sleep", "600")
	}
	t.Logf("resolver RSS with 51 sandboxes: %s", rss())
	var took, written []string
	for _, l := range strings.Split(e.out.String(), "\n") {
		if strings.Contains(l, "dns records applied") {
			if i := strings.Index(l, "took="); i >= 0 {
				took = append(took, l[i+5:])
			}
			if i := strings.Index(l, "written="); i >= 0 {
				written = append(written, strings.Fields(l[i+8:])[0])
			}
		}
	}
	t.Logf("engined's records from bbolt + file written, per attach: %v", written)
	t.Logf("engined's whole share (records, file, reload, ack) per attach: %v", took)
	rlog, _ := os.ReadFile(filepath.Join(e.ExecRoot, "dns", "resolver.log"))
	var opened []string
	for _, l := range strings.Split(string(rlog), "\n") {
		if strings.Contains(l, "sandbox opened") {
			if i := strings.Index(l, "took="); i >= 0 {
				opened = append(opened, l[i+5:])
			}
		}
	}
	t.Logf("resolver's sandbox open (sockets, DNAT, servers): %v", opened)
}

// A container started on the default bridge and then connected to a
// user network resolves the names on it: its resolv.conf becomes the
// embedded DNS's, as dockerd's does when it starts the resolver at the
// connect; a created container connected before its start too. Back on
// the default bridge only, it has the default bridge's servers again
// (dockerd's 8.8.8.8 and 8.8.4.4: the test host's only server is on
// loopback). A file the user changed is left alone.
func TestDNSAfterConnect(t *testing.T) {
	up := startUpstreamDNS(t, map[string][]string{"external.example.": {"198.51.100.7"}})
	e, _ := dnsEngine(t, up)
	userNet(t, e, "app")
	mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "db", "busybox", "sleep", "600")
	ip := inspectField(t, e.Host, "db", "{{.NetworkSettings.Networks.app.IPAddress}}")
	const bridgeServers = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"

	mustDocker(t, e.Host, "run", "-d", "--name", "late", "busybox", "sleep", "600")
	waitExec(t, e.Host, "late", "true")
	if out := mustDocker(t, e.Host, "exec", "late", "sh", "-c", "cat /etc/resolv.conf"); !strings.Contains(out, bridgeServers) || strings.Contains(out, "127.0.0.11") {
		t.Errorf("resolv.conf on the default bridge: want dockerd's default servers:\n%s", out)
	}
	mustDocker(t, e.Host, "network", "connect", "app", "late")
	out := mustDocker(t, e.Host, "exec", "late", "sh", "-c", "cat /etc/resolv.conf; nslookup db; nslookup external.example")
	mustContain(t, "resolv.conf and lookups after connect", out, "nameserver 127.0.0.11\n", "# ExtServers: [host("+up.Addr+")]", "Address: "+ip+"\n", "198.51.100.7")
	if strings.Contains(out, "8.8.8.8") {
		t.Errorf("resolv.conf after connect still names the default bridge's servers:\n%s", out)
	}
	mustDocker(t, e.Host, "network", "disconnect", "app", "late")
	if out := mustDocker(t, e.Host, "exec", "late", "sh", "-c", "cat /etc/resolv.conf"); !strings.Contains(out, bridgeServers) || strings.Contains(out, "127.0.0.11") {
		t.Errorf("resolv.conf after disconnect: want the default bridge's servers again:\n%s", out)
	}

	// Changed by the user: a connect does not overwrite it.
	mustDocker(t, e.Host, "exec", "late", "sh", "-c", "echo 'nameserver 192.0.2.53' > /etc/resolv.conf")
	mustDocker(t, e.Host, "network", "connect", "app", "late")
	if out := mustDocker(t, e.Host, "exec", "late", "sh", "-c", "cat /etc/resolv.conf"); out != "nameserver 192.0.2.53\n" {
		t.Errorf("a resolv.conf the user wrote was rewritten at connect:\n%s", out)
	}

	mustDocker(t, e.Host, "create", "--name", "fresh", "busybox", "sh", "-c", "cat /etc/resolv.conf; nslookup db")
	mustDocker(t, e.Host, "network", "connect", "app", "fresh")
	out = mustDocker(t, e.Host, "start", "-a", "fresh")
	mustContain(t, "created container connected before its start", out, "nameserver 127.0.0.11\n", "Address: "+ip+"\n")
}
