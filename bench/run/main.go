// Command run benchmarks containers on engined and, when installed, on
// dockerd (Debian's docker.io) in the same run, both in their default
// networking configuration (each its default bridge, its own firewall
// rules, IPv4 forwarding on), each daemon in a network namespace of its
// own so that neither touches the host's links, rules or sysctls:
//
//   - `docker run --rm busybox true` through the real docker CLI, on the
//     default bridge (and, for comparison, with --network none)
//
//   - 50 `docker run -d busybox sleep 600` from 10 parallel clients, on
//     the default bridge
//
//   - engined's idle RSS and one shim's RSS, beside dockerd's and its
//     containerd shim's
//
//   - where one container's time goes: create, start and the wait for
//     its removal through the API, on both engines and both network
//     modes, and engined's request log (--log-level debug) for one
//     `docker run --rm`
//
//     go run ./bench/run -engined ./bin/engined
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/engined/engined/bench/engines"
)

const dockerCLI = "/usr/local/bin/docker"

func main() {
	enginedBin := flag.String("engined", "./bin/engined", "engined binary")
	runs := flag.Int("runs", 10, "docker run --rm per engine and network mode")
	parallel := flag.Int("parallel", 10, "parallel clients for the detached runs")
	detached := flag.Int("detached", 50, "detached containers in total")
	none := flag.Bool("none", true, "also time docker run --rm with --network none")
	phases := flag.Int("phases", 10, "API-level create/start/remove breakdowns per engine and network mode (0: none)")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "bench-run-")
	check(err)
	host := engines.SnapshotHost()
	// Whatever ends the run (its end, a failure in any goroutine, a
	// signal) removes the containers, stops the daemons (their network
	// namespaces go with them) and checks the host is as it was.
	cleanup = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range all {
			removeAll(e)
			e.Stop()
		}
		all = nil
		engines.UnmountUnder(work)
		os.RemoveAll(work)
		host.Check()
	}
	defer cleanupOnce.Do(cleanup)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() { die("%v", <-sigs) }()
	fatal := check
	fmt.Printf("load average at the start: %s\n", engines.LoadAvg())
	defer func() { fmt.Printf("\nload average at the end: %s\n", engines.LoadAvg()) }()

	// The image goes in with docker load: a daemon in a namespace of its
	// own does not reach a registry on the host's loopback.
	imgTar, err := engines.BusyboxTar(work)
	fatal(err)

	en, err := engines.Engined(work, *enginedBin, engines.Options{Netns: true, CPU: true})
	fatal(err)
	track(en)
	d, err := engines.Dockerd(work, engines.Options{Netns: true, CPU: true})
	fatal(err)
	if d == nil {
		fmt.Println("dockerd: not installed (apt-get install docker.io), engined only")
	} else {
		track(d)
	}
	idle := map[string]int64{}
	for _, e := range all {
		idle[e.Name] = e.SettledRSS()
		cli(e, "load", "-i", imgTar)
		// Warm up, and show the container is on the default bridge.
		addr := strings.TrimSpace(cli(e, "run", "--rm", "busybox", "busybox", "ip", "-4", "-o", "addr", "show", "eth0"))
		fmt.Printf("%-8s default bridge: %s\n         container: %s\n", e.Name, bridgeOf(e), addr)
		cli(e, "run", "--rm", "--network", "none", "busybox", "true")
	}

	// The modes and engines take turns, run by run, so a change in the
	// machine's load falls on all of them alike.
	modes := []string{"default bridge"}
	if *none {
		modes = append(modes, "--network none")
	}
	times := map[string]map[string][]time.Duration{}
	for _, mode := range modes {
		times[mode] = map[string][]time.Duration{}
	}
	cpu0 := cpuOf(all)
	for i := 0; i < *runs; i++ {
		for _, mode := range modes {
			args := []string{"run", "--rm", "busybox", "true"}
			if mode == "--network none" {
				args = []string{"run", "--rm", "--network", "none", "busybox", "true"}
			}
			for _, e := range all {
				start := time.Now()
				cli(e, args...)
				times[mode][e.Name] = append(times[mode][e.Name], time.Since(start))
			}
		}
	}
	cpuRm := cpuSince(all, cpu0, *runs*len(modes))
	for _, mode := range modes {
		fmt.Printf("\ndocker run --rm busybox true, %s (%d runs each, engines and modes taking turns)\n", mode, *runs)
		med := map[string]time.Duration{}
		for _, e := range all {
			ts := times[mode][e.Name]
			med[e.Name] = engines.Median(ts)
			fmt.Printf("  %-8s median %v (min %v, max %v)\n", e.Name, ms(med[e.Name]), ms(slices.Min(ts)), ms(slices.Max(ts)))
		}
		ratio("docker run --rm ("+mode+")", med)
	}

	printCPU(fmt.Sprintf("CPU time per docker run --rm (all %d runs of each engine)", *runs*len(modes)), cpuRm)

	if *detached > 0 {
		detachedRuns(*detached, *parallel)
	}
	if *detached > 0 {
		fmt.Println("\nmemory (RSS)")
		for _, e := range all {
			pid := shimPid(e)
			fmt.Printf("  %-8s idle daemon %6.1f MB   one shim %5.1f MB (private %.1f MB, PSS %.1f MB)\n", e.Name, float64(idle[e.Name])/1024,
				float64(engines.RSS(pid))/1024, float64(engines.Private(pid))/1024, float64(engines.PSS(pid))/1024)
		}
	}
	for _, e := range all {
		removeAll(e)
	}

	if *phases > 0 {
		fmt.Printf("\nwhere one docker run --rm's time goes, through the API (median of %d; create, start, start's return to removed)\n", *phases)
		type phase struct{ create, start, removed, total []time.Duration }
		res := map[string]*phase{}
		for i := 0; i < *phases; i++ {
			for _, mode := range []string{"bridge", "none"} {
				for _, e := range all {
					p := res[mode+" "+e.Name]
					if p == nil {
						p = &phase{}
						res[mode+" "+e.Name] = p
					}
					c, s, r := apiRun(ctx, e, mode)
					p.create, p.start, p.removed, p.total = append(p.create, c), append(p.start, s), append(p.removed, r), append(p.total, c+s+r)
				}
			}
		}
		for _, mode := range []string{"bridge", "none"} {
			for _, e := range all {
				p := res[mode+" "+e.Name]
				fmt.Printf("  %-8s %-7s create %7v  start %7v  exit+remove %7v  total %7v\n", e.Name, mode, ms(engines.Median(p.create)),
					ms(engines.Median(p.start)), ms(engines.Median(p.removed)), ms(engines.Median(p.total)))
			}
		}
	}

	// engined's own request log for one docker run --rm, on a second
	// engined with --log-level debug (the measured one logs warnings only).
	mu.Lock()
	for _, e := range all {
		removeAll(e)
		e.Stop()
	}
	all = nil
	mu.Unlock()
	engines.UnmountUnder(filepath.Join(work, "engined"))
	os.RemoveAll(filepath.Join(work, "engined"))
	traceEngined(work, *enginedBin, imgTar)
}

// detachedRuns times detached docker run -d from parallel clients on
// each engine, and the CPU the engines spent per container.
func detachedRuns(detached, parallel int) {
	fmt.Printf("\n%d docker run -d busybox sleep 600 from %d parallel clients, default bridge\n", detached, parallel)
	total := map[string]time.Duration{}
	cpu0 := cpuOf(all)
	for _, e := range all {
		start := time.Now()
		var wg sync.WaitGroup
		per := detached / parallel
		for c := 0; c < parallel; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					cli(e, "run", "-d", "busybox", "sleep", "600")
				}
			}()
		}
		wg.Wait()
		total[e.Name] = time.Since(start)
		ips := map[string]bool{}
		for _, ip := range strings.Fields(cli(e, append([]string{"inspect", "-f", "{{.NetworkSettings.IPAddress}}"}, strings.Fields(cli(e, "ps", "-q"))...)...)) {
			ips[ip] = true
		}
		fmt.Printf("  %-8s %v (%d running, %d distinct addresses)\n", e.Name, total[e.Name].Round(time.Millisecond), len(strings.Fields(cli(e, "ps", "-q"))), len(ips))
	}
	ratio(fmt.Sprintf("%d x docker run -d", detached), total)
	printCPU("CPU time per docker run -d", cpuSince(all, cpu0, detached))
}

var (
	mu          sync.Mutex
	all         []*engines.Engine // the running daemons, in order
	cleanup     func()
	cleanupOnce sync.Once
)

func track(e *engines.Engine) {
	mu.Lock()
	all = append(all, e)
	mu.Unlock()
}

// die cleans up and exits: from any goroutine, once.
func die(format string, args ...any) {
	if cleanup != nil {
		cleanupOnce.Do(cleanup)
	}
	log.Fatalf(format, args...)
}

// apiRun is one docker run --rm as the CLI makes it (create with
// AutoRemove, a wait for removal, start), timed per call.
func apiRun(ctx context.Context, e *engines.Engine, mode string) (create, start, removed time.Duration) {
	t0 := time.Now()
	c, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: "busybox", Cmd: []string{"true"}},
		HostConfig: &container.HostConfig{AutoRemove: true, NetworkMode: container.NetworkMode(mode)},
	})
	check(err)
	t1 := time.Now()
	wait := e.Client.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	t2 := time.Now()
	_, err = e.Client.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
	check(err)
	t3 := time.Now()
	select {
	case <-wait.Result:
	case err := <-wait.Error:
		check(err)
	case <-time.After(30 * time.Second):
		die("%s: container %s not removed after 30 s", e.Name, c.ID)
	}
	return t1.Sub(t0), t3.Sub(t2), time.Since(t3)
}

var logLine = regexp.MustCompile(`^time=(\S+) level=DEBUG msg="?(request|engine call)"? method=(\S+)(?: path=(\S+))?.* took=(\S+)`)

// traceEngined runs engined with --log-level debug in its default
// networking and prints its request log for one docker run --rm (after a
// warm-up), each request with its start relative to the CLI's start.
func traceEngined(work, bin, imgTar string) {
	logFile := filepath.Join(work, "engined-debug.log")
	e, err := engines.Engined(work, bin, engines.Options{Netns: true, LogLevel: "debug", LogFile: logFile})
	check(err)
	track(e)
	cli(e, "load", "-i", imgTar)
	for i := 0; i < 3; i++ {
		cli(e, "run", "--rm", "busybox", "true")
	}
	// Five runs; the one of median length is shown.
	type entry struct {
		start time.Duration
		line  string
	}
	type run struct {
		took time.Duration
		log  []entry
	}
	var runs []run
	for i := 0; i < 5; i++ {
		before, _ := os.ReadFile(logFile)
		start := time.Now()
		cli(e, "run", "--rm", "busybox", "true")
		r := run{took: time.Since(start)}
		after, _ := os.ReadFile(logFile)
		sc := bufio.NewScanner(strings.NewReader(string(after[len(before):])))
		for sc.Scan() {
			m := logLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			at, err1 := time.Parse(time.RFC3339Nano, m[1])
			d, err2 := time.ParseDuration(m[5])
			if err1 != nil || err2 != nil {
				continue
			}
			what := m[3] + " " + strings.Trim(m[4], `"\`)
			if m[2] == "engine call" {
				what = "  gRPC " + m[3]
			}
			off := at.Add(-d).Sub(start)
			r.log = append(r.log, entry{off, fmt.Sprintf("  %8v  %8v  %s", ms(off), ms(d), what)})
		}
		slices.SortStableFunc(r.log, func(a, b entry) int { return int(a.start - b.start) })
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b run) int { return int(a.took - b.took) })
	r := runs[len(runs)/2]
	fmt.Printf("\nengined --log-level debug, docker run --rm busybox true on the default bridge, the median of 5: %v in all\n", ms(r.took))
	fmt.Println("  (log times have millisecond resolution)\n     start      took  request")
	for _, l := range r.log {
		fmt.Println(l.line)
	}
}

// cpuOf is each engine's CPU time so far: its process tree's (cpuacct)
// and the daemon's own, keyed name and name+" own".
func cpuOf(all []*engines.Engine) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, e := range all {
		m[e.Name] = e.CPU()
		m[e.Name+" own"] = e.OwnCPU()
	}
	return m
}

// cpuSince is each engine's CPU time since before, per one of n runs.
func cpuSince(all []*engines.Engine, before map[string]time.Duration, n int) map[string]time.Duration {
	m := map[string]time.Duration{}
	for k, c := range cpuOf(all) {
		if c >= 0 && before[k] >= 0 {
			m[k] = (c - before[k]) / time.Duration(n)
		}
	}
	return m
}

// printCPU prints the CPU time the engines (daemon, shims, runtime; not
// the containers' own cgroups, nor the docker CLI) spent per container,
// and how much of it the daemon process itself.
func printCPU(what string, m map[string]time.Duration) {
	if _, ok := m["engined"]; !ok {
		return
	}
	fmt.Printf("  %s, daemon and the processes it starts (the daemon itself):", what)
	for _, name := range []string{"engined", "dockerd"} {
		if c, ok := m[name]; ok {
			fmt.Printf(" %s %v (%v)", name, ms(c), ms(m[name+" own"]))
		}
	}
	fmt.Println()
	if d, ok := m["dockerd"]; ok {
		ratio("CPU", map[string]time.Duration{"engined": m["engined"], "dockerd": d})
	}
}

func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

// bridgeOf is the default bridge's interface and address in the daemon's
// namespace.
func bridgeOf(e *engines.Engine) string {
	name := "engined0"
	if e.Name == "dockerd" {
		name = "docker0"
	}
	if e.Netns == nil {
		return name
	}
	out, _ := exec.Command("ip", "-n", e.Netns.Name, "-4", "-o", "addr", "show", name).Output()
	if f := strings.Fields(string(out)); len(f) >= 4 {
		return name + " " + f[3]
	}
	return name + " (no address?)"
}

// removeAll removes every container of the engine. It reports a failure
// and does not end the run: it is part of the cleanup.
func removeAll(e *engines.Engine) {
	out, err := docker(e, "ps", "-aq")
	if ids := strings.Fields(out); err == nil && len(ids) > 0 {
		out, err = docker(e, append([]string{"rm", "-f"}, ids...)...)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: removing the containers: %v\n%s", e.Name, err, out)
	}
}

// shimPid is the shim of one running container: engined's shim, or
// dockerd's containerd-shim-runc-v2.
func shimPid(e *engines.Engine) int {
	id := strings.Fields(cli(e, "ps", "-q", "--no-trunc"))[0]
	if e.Name == "engined" {
		data, err := os.ReadFile(filepath.Join(e.ExecRoot, "containers", id, "bootstrap.json"))
		check(err)
		var b struct{ Pid int }
		check(json.Unmarshal(data, &b))
		return b.Pid
	}
	// containerd's shim serves several containers of a pod; here one each.
	out, _ := exec.Command("pgrep", "-f", "containerd-shim-runc-v2.*"+id).Output()
	var pid int
	fmt.Sscan(string(out), &pid)
	if pid == 0 {
		out, _ = exec.Command("pgrep", "-f", "containerd-shim").Output()
		fmt.Sscan(string(out), &pid)
	}
	return pid
}

func ratio(what string, m map[string]time.Duration) {
	if d, ok := m["dockerd"]; ok {
		fmt.Printf("  %s: engined/dockerd = %.2f (dockerd takes %.1fx as long)\n", what, m["engined"].Seconds()/d.Seconds(), d.Seconds()/m["engined"].Seconds())
	}
}

// cli runs the docker CLI against the engine; a failure ends the run.
func cli(e *engines.Engine, args ...string) string {
	out, err := docker(e, args...)
	if err != nil {
		die("%s: docker %s: %v\n%s", e.Name, strings.Join(args, " "), err, out)
	}
	return out
}

func docker(e *engines.Engine, args ...string) (string, error) {
	cmd := exec.Command(dockerCLI, append([]string{"-H", e.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+os.TempDir()+"/bench-docker-config")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func check(err error) {
	if err != nil {
		die("%v", err)
	}
}
