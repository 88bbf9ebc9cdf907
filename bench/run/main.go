// Command run benchmarks containers on engined and, when installed, on
// dockerd (Debian's docker.io) in the same run:
//
//   - `docker run --rm busybox true` through the real docker CLI
//
//   - 50 `docker run -d` from 10 parallel clients
//
//   - engined's idle RSS and one shim's RSS, beside dockerd's and its
//     containerd shim's
//
//     go run ./bench/run -engined ./bin/engined
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/engined/engined/bench/engines"
	"github.com/engined/engined/internal/testimage"
)

const dockerCLI = "/usr/local/bin/docker"

func main() {
	enginedBin := flag.String("engined", "./bin/engined", "engined binary")
	runs := flag.Int("runs", 10, "docker run --rm per engine")
	parallel := flag.Int("parallel", 10, "parallel clients for the detached runs")
	detached := flag.Int("detached", 50, "detached containers in total")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "bench-run-")
	check(err)
	defer os.RemoveAll(work)
	reg, err := testimage.StartRegistry(ctx, filepath.Join(work, "registry"), "")
	check(err)
	defer reg.Stop()
	img, err := testimage.Busybox()
	check(err)
	check(testimage.Push(ctx, img, reg.Ref("library/busybox:latest")))
	mirror := "http://" + reg.Addr

	all, err := engines.StartAll(work, *enginedBin, "--registry-mirror", mirror)
	check(err)
	defer func() {
		for _, e := range all {
			e.Stop()
		}
	}()
	idle := map[string]int64{}
	for _, e := range all {
		time.Sleep(time.Second)
		idle[e.Name] = e.RSS()
		cli(e, "pull", "busybox")
		cli(e, "run", "--rm", "--network", "none", "busybox", "true") // warm up
	}

	fmt.Printf("docker run --rm busybox true (%d runs each, alternating)\n", *runs)
	times := map[string][]time.Duration{}
	for i := 0; i < *runs; i++ {
		for _, e := range all {
			start := time.Now()
			cli(e, "run", "--rm", "--network", "none", "busybox", "true")
			times[e.Name] = append(times[e.Name], time.Since(start))
		}
	}
	med := map[string]time.Duration{}
	for _, e := range all {
		med[e.Name] = engines.Median(times[e.Name])
		fmt.Printf("  %-8s median %v\n", e.Name, med[e.Name].Round(100*time.Microsecond))
	}
	ratio("docker run --rm", med)

	fmt.Printf("\n%d docker run -d from %d parallel clients\n", *detached, *parallel)
	total := map[string]time.Duration{}
	for _, e := range all {
		start := time.Now()
		var wg sync.WaitGroup
		per := *detached / *parallel
		for c := 0; c < *parallel; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					cli(e, "run", "-d", "--network", "none", "busybox", "sleep", "600")
				}
			}()
		}
		wg.Wait()
		total[e.Name] = time.Since(start)
		fmt.Printf("  %-8s %v\n", e.Name, total[e.Name].Round(time.Millisecond))
	}
	ratio("50 x docker run -d", total)

	fmt.Println("\nmemory (RSS)")
	for _, e := range all {
		pid := shimPid(e)
		fmt.Printf("  %-8s idle daemon %6.1f MB   one shim %5.1f MB (private %.1f MB, PSS %.1f MB)\n", e.Name, float64(idle[e.Name])/1024,
			float64(engines.RSS(pid))/1024, float64(engines.Private(pid))/1024, float64(engines.PSS(pid))/1024)
	}
	for _, e := range all {
		ids := strings.Fields(cli(e, "ps", "-q"))
		if len(ids) > 0 {
			cli(e, append([]string{"rm", "-f"}, ids...)...)
		}
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

func cli(e *engines.Engine, args ...string) string {
	cmd := exec.Command(dockerCLI, append([]string{"-H", e.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+os.TempDir()+"/bench-docker-config")
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("%s: docker %s: %v\n%s", e.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
