package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The acceptance in one run: SIGKILL engined while a client on
// the host loops requests to a published port of a container on a user
// network and another container on it loops nslookup of that container;
// no request and no lookup fails across the kill, the downtime and the
// restart. Both loops are bounded and print their counts.
func TestNetworkingSurvivesEnginedKill(t *testing.T) {
	up := startUpstreamDNS(t, nil)
	e, resolv := dnsEngine(t, up)
	userNet(t, e, "app")
	p := strconv.Itoa(freeHostPort(t, "tcp"))
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "web", "-p", p+":80",
		"busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	url := "http://127.0.0.1:" + p + "/hostname"
	if got, err := hostGetWhenUp(t, url); err != nil || got != id[:12]+"\n" {
		t.Fatalf("before the kill: %q, %v", got, err)
	}
	const lookups = 400
	script := `ok=0; fail=0; i=0; while [ $i -lt ` + strconv.Itoa(lookups) + ` ]; do i=$((i+1)); if nslookup web >/dev/null 2>&1; then ok=$((ok+1)); echo ok $ok; else fail=$((fail+1)); echo FAIL $fail; fi; sleep 0.05; done; echo "done ok=$ok fail=$fail"`
	mustDocker(t, e.Host, "run", "-d", "--net", "app", "--name", "looper", "busybox", "sh", "-c", script)
	logPath := inspectField(t, e.Host, "looper", "{{.LogPath}}")
	lookupLines := func() int {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "\n")
	}
	atLeastMoreLookups := func(what string, k int) {
		t.Helper()
		base := lookupLines()
		waitFor(t, what, func() bool { return lookupLines() >= base+k })
	}

	requests := startHTTPLoop(url, id[:12]+"\n")
	requests.atLeastMore(t, "requests before the kill", 20)
	atLeastMoreLookups("lookups before the kill", 5)
	e.cmd.Process.Kill()
	<-e.done
	requests.atLeastMore(t, "requests while engined is down", 50)
	atLeastMoreLookups("lookups while engined is down", 20)
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--host-resolv-conf", resolv)
	requests.atLeastMore(t, "requests after the restart", 50)
	atLeastMoreLookups("lookups after the restart", 20)
	requests.end(t, "across the kill and the restart")

	if !poll(120*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "done ")
	}) {
		t.Fatalf("the lookup loop did not end")
	}
	out := mustDocker(t, e2.Host, "logs", "looper")
	last := tail(strings.TrimSpace(out), 1)
	t.Logf("lookups across the kill and the restart: %s", strings.TrimSpace(last))
	if !strings.Contains(last, "done ok="+strconv.Itoa(lookups)+" fail=0") {
		t.Errorf("lookups across the kill and the restart:\n%s", tail(out, 30))
	}
}

// Containers started together on a user network: each gets an address of
// its own, and every name resolves afterwards (endpoints are made in
// parallel, outside the network manager's lock). Removed together, they
// leave no veth on the bridge.
func TestNetworkParallelStarts(t *testing.T) {
	up := startUpstreamDNS(t, nil)
	e, _ := dnsEngine(t, up)
	_, _, bridge := userNet(t, e, "app")
	const k = 12
	var wg sync.WaitGroup
	errs := make(chan error, k)
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := docker(t, e.Host, "run", "-d", "--net", "app", "--name", fmt.Sprintf("par%d", i), "busybox", "sleep", "600"); err != nil {
				errs <- fmt.Errorf("run par%d: %v\n%s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]string{}
	var script strings.Builder
	for i := range k {
		name := fmt.Sprintf("par%d", i)
		ip := inspectField(t, e.Host, name, "{{.NetworkSettings.Networks.app.IPAddress}}")
		if other, dup := seen[ip]; dup || ip == "" {
			t.Errorf("%s has address %q, as %s", name, ip, other)
		}
		seen[ip] = name
		fmt.Fprintf(&script, "nslookup %s | grep -q 'Address: %s$' || echo MISSING %s; ", name, ip, name)
	}
	if out := mustDocker(t, e.Host, "run", "--rm", "--net", "app", "busybox", "sh", "-c", script.String()+"echo checked"); strings.Contains(out, "MISSING") || !strings.Contains(out, "checked") {
		t.Errorf("names after parallel starts:\n%s", out)
	}
	var ids []string
	for i := range k {
		ids = append(ids, fmt.Sprintf("par%d", i))
	}
	var rmg sync.WaitGroup
	for _, id := range ids {
		rmg.Add(1)
		go func() { defer rmg.Done(); docker(t, e.Host, "rm", "-f", id) }()
	}
	rmg.Wait()
	waitFor(t, "no veth left on the bridge", func() bool {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput()
		return strings.TrimSpace(string(out)) == ""
	})
}

// engined's table is gone while engined is down (a firewall reset, an
// `nft flush ruleset`): the published port stops answering. engined's
// start writes the table again in the background; a container started
// at once, before anything else, is published and reachable, and so is
// the one that ran across the loss.
func TestRulesLostWhileEnginedDown(t *testing.T) {
	e := runEngine(t)
	table := netFor(t, filepath.Dir(e.DataRoot)).Table
	p1 := strconv.Itoa(freeHostPort(t, "tcp"))
	id1 := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "-p", p1+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	if got, err := hostGetWhenUp(t, "http://127.0.0.1:"+p1+"/hostname"); err != nil || got != id1[:12]+"\n" {
		t.Fatalf("before: %q, %v", got, err)
	}
	e.cmd.Process.Kill()
	<-e.done
	if out, err := exec.Command("nft", "delete", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("delete the table: %v\n%s", err, out)
	}
	if got, err := hostGet(t, "http://127.0.0.1:"+p1+"/hostname"); err == nil {
		t.Fatalf("the port still answers without engined's table: %q", got)
	}
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	p2 := strconv.Itoa(freeHostPort(t, "tcp"))
	id2 := strings.TrimSpace(mustDocker(t, e2.Host, "run", "-d", "-p", p2+":80", "busybox", "sh", "-c", "exec httpd -f -p 80 -h /etc"))
	for port, id := range map[string]string{p2: id2, p1: id1} {
		if got, err := hostGetWhenUp(t, "http://127.0.0.1:"+port+"/hostname"); err != nil || got != id[:12]+"\n" {
			t.Errorf("port %s after the restart: %q, %v", port, got, err)
		}
	}
	if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err != nil || !strings.Contains(string(out), "masquerade") {
		t.Errorf("engined's table after the restart: %v\n%s", err, out)
	}
}
