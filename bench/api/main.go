// Command api benchmarks the engine's own work through the Docker API
// (the official Go client, no CLI in the loop) on engined and dockerd
// (Debian's docker.io, when installed) in the same run, each daemon in a
// network namespace of its own with its default networking, the engines
// taking turns run by run, medians of -runs:
//
//   - create, start, inspect, stop, rm of one container (lists and
//     inspects as curl would time them: the body read, not decoded)
//
//   - list (all, and filtered by name and by label) and inspect with 10,
//     1,000 and 10,000 created containers, and each daemon's RSS then
//
//   - 200 `docker run -d` from 10 clients (through the Docker CLI), each
//     daemon's CPU over 10 s with the 200 running, and the memory of 50
//     of their shims (private and PSS)
//
//   - restart to ready with 100 running containers: SIGTERM, start
//     again, until /_ping answers and the list shows all 100 running
//     (dockerd with --live-restore, so its containers survive)
//
//     go run ./bench/api -engined ./bin/engined
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/engined/engined/bench/engines"
)

const dockerCLI = "/usr/local/bin/docker"

var (
	runs     = flag.Int("runs", 9, "measured runs of each figure per engine")
	sizes    = flag.String("sizes", "10,1000,10000", "container counts for the list figures")
	detached = flag.Int("detached", 200, "containers started with docker run -d from -parallel clients")
	parallel = flag.Int("parallel", 10, "parallel clients")
	restartN = flag.Int("restart-containers", 100, "running containers across the restarts")
	shims    = flag.Int("shims", 50, "shims whose memory is read")
	only     = flag.String("only", "", "the parts to run, of single,lists,running,restarts (restarts needs running); empty: all")
)

// result is one figure: per engine, its samples.
type result struct {
	what string
	unit string // "ms", "MB", "%"
	vals map[string][]float64
	goal string
}

var results []*result

func record(what, unit, goal string) *result {
	r := &result{what: what, unit: unit, goal: goal, vals: map[string][]float64{}}
	results = append(results, r)
	return r
}

func (r *result) add(engine string, v float64) { r.vals[engine] = append(r.vals[engine], v) }

func (r *result) addDur(engine string, d time.Duration) {
	r.add(engine, float64(d)/float64(time.Millisecond))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func main() {
	enginedBin := flag.String("engined", "./bin/engined", "engined binary")
	flag.Parse()
	ctx := context.Background()
	start := time.Now()

	work, err := os.MkdirTemp("", "bench-api-")
	check(err)
	host := engines.SnapshotHost()
	cleanup = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range all {
			removeAll(ctx, e)
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
	fmt.Printf("bench/api %s, load average at the start: %s\n", time.Now().UTC().Format("2006-01-02 15:04"), engines.LoadAvg())

	imgTar, err := engines.BusyboxTar(work)
	check(err)

	en, err := engines.Engined(work, *enginedBin, engines.Options{Netns: true, CPU: true})
	check(err)
	track(en)
	d, err := engines.Dockerd(work, engines.Options{Netns: true, CPU: true, Extra: []string{"--live-restore"}})
	check(err)
	if d == nil {
		fmt.Println("dockerd: not installed (apt-get install docker.io), engined only")
	} else {
		track(d)
	}
	idle := record("idle daemon RSS", "MB", "engined ≤ 20 MB")
	for _, e := range all {
		idle.add(e.Name, float64(e.SettledRSS())/1024)
		cli(e, "load", "-i", imgTar)
		// A warm-up: the first container of each engine pays for what
		// is made once (the default bridge's setup, caches).
		cli(e, "run", "--rm", "busybox", "true")
	}

	for _, part := range []struct {
		name string
		run  func(context.Context)
	}{{"single", single}, {"lists", lists}, {"running", running}, {"restarts", restarts}} {
		if *only == "" || slices.Contains(strings.Split(*only, ","), part.name) {
			part.run(ctx)
		}
	}

	report()
	fmt.Printf("\nload average at the end: %s; bench/api took %v\n", engines.LoadAvg(), time.Since(start).Round(time.Second))
}

// single times each step of one container's life through the API.
func single(ctx context.Context) {
	create := record("create (API)", "ms", "≤ 0.2 × dockerd")
	startR := record("start (API, default bridge)", "ms", "")
	inspect := record("inspect (API)", "ms", "≤ 1 ms")
	stop := record("stop (API; the container exits on SIGTERM)", "ms", "")
	rm := record("rm (API)", "ms", "")
	for range *runs {
		for _, e := range all {
			t0 := time.Now()
			c, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox",
				Cmd: []string{"sh", "-c", `trap "exit 0" TERM; sleep 600 & wait`}}})
			check(err)
			create.addDur(e.Name, time.Since(t0))
			t0 = time.Now()
			_, err = e.Client.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
			check(err)
			startR.addDur(e.Name, time.Since(t0))
			// The median of 9 inspects, one sample.
			var ins []time.Duration
			for range 9 {
				ins = append(ins, get(e, "/containers/"+c.ID+"/json"))
			}
			inspect.addDur(e.Name, engines.Median(ins))
			t0 = time.Now()
			_, err = e.Client.ContainerStop(ctx, c.ID, client.ContainerStopOptions{})
			check(err)
			stop.addDur(e.Name, time.Since(t0))
			t0 = time.Now()
			_, err = e.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{})
			check(err)
			rm.addDur(e.Name, time.Since(t0))
		}
	}
}

// get times one GET of the API as curl would (the whole body read, not
// decoded: the client's decoding is not the engine's work), on a kept
// connection, at API 1.41 (dockerd 20.10's).
func get(e *engines.Engine, path string) time.Duration {
	c := rawClients[e.Name]
	if c == nil {
		sock := strings.TrimPrefix(e.Host, "unix://")
		c = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		rawClients[e.Name] = c
	}
	t0 := time.Now()
	resp, err := c.Get("http://engine/v1.41" + path)
	check(err)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	check(err)
	if resp.StatusCode != http.StatusOK || n == 0 {
		die("%s: GET %s: %s, %d bytes", e.Name, path, resp.Status, n)
	}
	return took
}

var rawClients = map[string]*http.Client{}

// lists times list and inspect at each size, the containers created
// (not started) by parallel clients; they are removed at the end.
func lists(ctx context.Context) {
	have := 0
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		check(err)
		for _, e := range all {
			t0 := time.Now()
			inParallel(n-have, func(i int) {
				_, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: fmt.Sprintf("c%05d", have+i),
					Config: &container.Config{Image: "busybox", Cmd: []string{"true"}, Labels: map[string]string{"bench": "yes", "n": strconv.Itoa(have + i)}}})
				check(err)
			})
			fmt.Printf("%s: %d containers created in %v\n", e.Name, n, time.Since(t0).Round(time.Millisecond))
		}
		have = n
		goal := ""
		if n == 1000 {
			goal = "≤ 0.2 × dockerd and ≤ 5 ms"
		}
		list := record(fmt.Sprintf("list all, %d containers", n), "ms", goal)
		byName := record(fmt.Sprintf("list name=c00007, %d containers", n), "ms", "")
		byLabel := record(fmt.Sprintf("list label=n=7, %d containers", n), "ms", "")
		inspect := record(fmt.Sprintf("inspect by name, %d containers", n), "ms", "≤ 1 ms")
		for range *runs {
			for _, e := range all {
				// dockerd is still busy for a while after it answered a
				// list of thousands (its collector): neither engine is
				// timed while the other works. Then one untimed list,
				// as the requests timed follow each other: a daemon
				// woken from idle answers its first slower (both did,
				// 2.5x for a create).
				settleAll()
				get(e, "/containers/json?all=1")
				list.addDur(e.Name, get(e, "/containers/json?all=1"))
				byName.addDur(e.Name, get(e, "/containers/json?all=1&filters="+url.QueryEscape(`{"name":{"c00007":true}}`)))
				byLabel.addDur(e.Name, get(e, "/containers/json?all=1&filters="+url.QueryEscape(`{"label":{"n=7":true}}`)))
				inspect.addDur(e.Name, get(e, "/containers/c00007/json"))
			}
		}
		// What was timed is what the client gets.
		for _, e := range all {
			l, err := e.Client.ContainerList(ctx, client.ContainerListOptions{All: true})
			check(err)
			if len(l.Items) != n {
				die("%s: list shows %d containers, not %d", e.Name, len(l.Items), n)
			}
			l, err = e.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "n=7")})
			check(err)
			if len(l.Items) != 1 || l.Items[0].Names[0] != "/c00007" {
				die("%s: label filter n=7 shows %d containers", e.Name, len(l.Items))
			}
		}
		rss := record(fmt.Sprintf("daemon RSS with %d created containers", n), "MB", "")
		for _, e := range all {
			rss.add(e.Name, float64(e.SettledRSS())/1024)
		}
	}
	for _, e := range all {
		t0 := time.Now()
		removeAll(ctx, e)
		fmt.Printf("%s: %d containers removed in %v\n", e.Name, have, time.Since(t0).Round(time.Millisecond))
	}
}

// running starts -detached containers per engine through the Docker CLI
// from -parallel clients, reads the daemons' CPU while they idle, and
// the shims' memory.
func running(ctx context.Context) {
	for _, n := range []int{50, *detached} {
		goal := ""
		if n == 50 {
			goal = "≤ 0.1 × dockerd"
		}
		total := record(fmt.Sprintf("%d × docker run -d from %d clients (CLI)", n, *parallel), "ms", goal)
		for _, e := range all {
			removeAll(ctx, e)
			t0 := time.Now()
			inParallel(n, func(int) { cli(e, "run", "-d", "busybox", "sleep", "600") })
			total.addDur(e.Name, time.Since(t0))
		}
	}
	cpu := record(fmt.Sprintf("daemon and shims' CPU with %d idle containers, over 10 s", *detached), "%", "engined < 1 %")
	before := map[string]time.Duration{}
	for _, e := range all {
		before[e.Name] = e.CPU()
	}
	t0 := time.Now()
	time.Sleep(10 * time.Second) // a measurement window, not synchronisation
	for _, e := range all {
		cpu.add(e.Name, 100*float64(e.CPU()-before[e.Name])/float64(time.Since(t0)))
	}
	priv := record(fmt.Sprintf("shim private memory (RssAnon), median of %d", *shims), "MB", "engined ≤ 2 MB")
	pss := record(fmt.Sprintf("shim PSS, median of %d", *shims), "MB", "")
	for _, e := range all {
		pids := shimPids(e)
		if len(pids) > *shims {
			pids = pids[:*shims]
		}
		var p, q []float64
		for _, pid := range pids {
			p = append(p, float64(engines.Private(pid))/1024)
			q = append(q, float64(engines.PSS(pid))/1024)
		}
		priv.add(e.Name, median(p))
		pss.add(e.Name, median(q))
	}
}

// restarts restarts each daemon -runs times with -restart-containers
// running, timing each until it is ready.
func restarts(ctx context.Context) {
	for _, e := range all {
		l, err := e.Client.ContainerList(ctx, client.ContainerListOptions{})
		check(err)
		for _, c := range l.Items[*restartN:] {
			_, err := e.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			check(err)
		}
	}
	r := record(fmt.Sprintf("restart to ready, %d running containers (SIGTERM, start, /_ping and all listed running)", *restartN), "ms", "≤ 50 ms and ≤ 0.1 × dockerd")
	for range *runs {
		for _, e := range all {
			took, err := e.Restart(func(e *engines.Engine) bool {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if _, err := e.Client.Ping(pctx, client.PingOptions{}); err != nil {
					return false
				}
				l, err := e.Client.ContainerList(pctx, client.ContainerListOptions{})
				return err == nil && len(l.Items) == *restartN
			})
			check(err)
			r.addDur(e.Name, took)
			e.Settle()
		}
	}
	// Every container is still watched: each stops when asked.
	for _, e := range all {
		l, err := e.Client.ContainerList(ctx, client.ContainerListOptions{})
		check(err)
		if len(l.Items) != *restartN {
			die("%s: %d running after the restarts, not %d", e.Name, len(l.Items), *restartN)
		}
		zero := 0
		_, err = e.Client.ContainerStop(ctx, l.Items[0].ID, client.ContainerStopOptions{Timeout: &zero})
		check(err)
		ins, err := e.Client.ContainerInspect(ctx, l.Items[0].ID, client.ContainerInspectOptions{})
		check(err)
		if ins.Container.State.Running {
			die("%s: a container still runs after its stop, after the restarts", e.Name)
		}
	}
}

// settleAll waits until every daemon is idle (see Engine.Settle).
func settleAll() {
	for _, e := range all {
		e.Settle()
	}
}

func report() {
	fmt.Printf("\n%-95s %12s %12s %8s  %s\n", fmt.Sprintf("median of %d (engines taking turns)", *runs), "engined", "dockerd", "ratio", "goal")
	for _, r := range results {
		en, dk := median(r.vals["engined"]), median(r.vals["dockerd"])
		ratio := "-"
		if dk > 0 {
			ratio = fmt.Sprintf("%.2f", en/dk)
		}
		fmt.Printf("%-95s %9.2f %-2s %9.2f %-2s %8s  %s\n", r.what, en, r.unit, dk, r.unit, ratio, r.goal)
	}
}

func inParallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

var (
	mu          sync.Mutex
	all         []*engines.Engine
	cleanup     func()
	cleanupOnce sync.Once
)

func track(e *engines.Engine) {
	mu.Lock()
	all = append(all, e)
	mu.Unlock()
}

func die(format string, args ...any) {
	if cleanup != nil {
		cleanupOnce.Do(cleanup)
	}
	log.Fatalf(format, args...)
}

func check(err error) {
	if err != nil {
		die("%v", err)
	}
}

// removeAll force-removes every container of the engine, in parallel.
func removeAll(ctx context.Context, e *engines.Engine) {
	l, err := e.Client.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: list: %v\n", e.Name, err)
		return
	}
	inParallel(len(l.Items), func(i int) {
		if _, err := e.Client.ContainerRemove(ctx, l.Items[i].ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			fmt.Fprintf(os.Stderr, "%s: remove %s: %v\n", e.Name, l.Items[i].ID, err)
		}
	})
}

// shimPids are the shims of the engine's running containers: engined's
// from their bootstrap records, dockerd's containerd-shim-runc-v2s.
func shimPids(e *engines.Engine) []int {
	var pids []int
	if e.Name == "engined" {
		dirs, _ := filepath.Glob(filepath.Join(e.ExecRoot, "containers", "*", "bootstrap.json"))
		for _, f := range dirs {
			data, err := os.ReadFile(f)
			check(err)
			var b struct{ Pid int }
			check(json.Unmarshal(data, &b))
			pids = append(pids, b.Pid)
		}
		return pids
	}
	out, _ := exec.Command("pgrep", "-f", "containerd-shim-runc-v2 .*-address "+e.ExecRoot).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cli(e *engines.Engine, args ...string) string {
	cmd := exec.Command(dockerCLI, append([]string{"-H", e.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+os.TempDir()+"/bench-docker-config")
	out, err := cmd.CombinedOutput()
	if err != nil {
		die("%s: docker %s: %v\n%s", e.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
