// Command build benchmarks docker build with the classic builder on
// engined and, when installed, on dockerd (Debian's docker.io) in the
// same run, each daemon in a network namespace of its own: a 10-step
// Dockerfile (ENV, WORKDIR, COPY, RUN, ARG, LABEL, CMD) built cold
// (--no-cache) and warm (every step from the cache), engines taking
// turns, through the real docker CLI with DOCKER_BUILDKIT=0.
//
//	go run ./bench/build -engined ./bin/engined
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/engined/engined/bench/engines"
)

const dockerCLI = "/usr/local/bin/docker"

const dockerfile = `FROM busybox
ENV APP=bench
WORKDIR /app
COPY data/ /app/data/
RUN sh -c "echo one > /app/one"
RUN sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i >> /app/count; done"
ARG VERSION=1
LABEL bench=build
COPY file.txt /app/
CMD ["cat", "/app/one"]
`

var (
	mu          sync.Mutex
	all         []*engines.Engine
	cleanup     func()
	cleanupOnce sync.Once
)

func main() {
	enginedBin := flag.String("engined", "./bin/engined", "engined binary")
	runs := flag.Int("runs", 5, "cold and warm builds per engine")
	flag.Parse()

	work, err := os.MkdirTemp("", "bench-build-")
	check(err)
	host := engines.SnapshotHost()
	cleanup = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range all {
			e.Stop()
		}
		all = nil
		os.RemoveAll(work)
		host.Check()
	}
	defer cleanupOnce.Do(cleanup)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() { die("%v", <-sigs) }()

	imgTar, err := engines.BusyboxTar(work)
	check(err)

	ctxDir := filepath.Join(work, "context")
	check(os.MkdirAll(filepath.Join(ctxDir, "data"), 0o755))
	check(os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644))
	check(os.WriteFile(filepath.Join(ctxDir, "file.txt"), []byte("file\n"), 0o644))
	for i := 0; i < 20; i++ {
		check(os.WriteFile(filepath.Join(ctxDir, "data", fmt.Sprintf("f%02d", i)), []byte(strings.Repeat("x", 4096)), 0o644))
	}

	en, err := engines.Engined(work, *enginedBin, engines.Options{Netns: true, CPU: true})
	check(err)
	track(en)
	d, err := engines.Dockerd(work, engines.Options{Netns: true, CPU: true})
	check(err)
	if d == nil {
		fmt.Println("dockerd: not installed (apt-get install docker.io), engined only")
	} else {
		track(d)
	}
	for _, e := range all {
		cli(e, ctxDir, "load", "-i", imgTar)
		cli(e, ctxDir, "build", "-q", "-t", "warmup", ".")
	}
	times := map[string]map[string][]time.Duration{"cold (--no-cache)": {}, "warm (all cached)": {}}
	for i := 0; i < *runs; i++ {
		for _, e := range all {
			start := time.Now()
			cli(e, ctxDir, "build", "--no-cache", "-t", "bench", ".")
			times["cold (--no-cache)"][e.Name] = append(times["cold (--no-cache)"][e.Name], time.Since(start))
			start = time.Now()
			out := cli(e, ctxDir, "build", "-t", "bench", ".")
			times["warm (all cached)"][e.Name] = append(times["warm (all cached)"][e.Name], time.Since(start))
			if n := strings.Count(out, "Using cache"); n != 9 {
				die("%s: warm build used the cache for %d steps, want 9:\n%s", e.Name, n, out)
			}
		}
	}
	for _, mode := range []string{"cold (--no-cache)", "warm (all cached)"} {
		fmt.Printf("\ndocker build, 10 steps, %s (%d builds each, engines taking turns)\n", mode, *runs)
		med := map[string]time.Duration{}
		for _, e := range all {
			ts := times[mode][e.Name]
			med[e.Name] = engines.Median(ts)
			fmt.Printf("  %-8s median %v (min %v, max %v)\n", e.Name, med[e.Name].Round(time.Millisecond),
				slices.Min(ts).Round(time.Millisecond), slices.Max(ts).Round(time.Millisecond))
		}
		if dm, ok := med["dockerd"]; ok {
			fmt.Printf("  engined/dockerd = %.2f\n", med["engined"].Seconds()/dm.Seconds())
		}
	}
}

func track(e *engines.Engine) {
	mu.Lock()
	defer mu.Unlock()
	all = append(all, e)
}

func cli(e *engines.Engine, dir string, args ...string) string {
	cmd := exec.Command(dockerCLI, append([]string{"-H", e.Host}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+os.TempDir()+"/bench-docker-config", "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		die("%s: docker %s: %v\n%s", e.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func check(err error) {
	if err != nil {
		die("%v", err)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	cleanupOnce.Do(cleanup)
	os.Exit(1)
}
