// Command pull benchmarks `docker pull` of a ~200 MB multi-layer image
// from a loopback registry into engined and, when dockerd is installed
// (Debian's docker.io), into dockerd, side by side in one run.
//
//	go run ./bench/pull -engined ./bin/engined
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

func main() {
	enginedBin := flag.String("engined", "./bin/engined", "engined binary")
	runs := flag.Int("runs", 3, "pulls per engine")
	layers := flag.Int("layers", 4, "random-data layers on top of busybox")
	layerMB := flag.Int("layer-mb", 50, "size of each random layer in MB")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "bench-pull-")
	check(err)
	defer os.RemoveAll(work)

	reg, err := testimage.StartRegistry(ctx, filepath.Join(work, "registry"), "")
	check(err)
	defer reg.Stop()
	ref := reg.Ref("bench/big:latest")
	size := pushImage(ctx, ref, *layers, *layerMB)
	fmt.Printf("image: %s, %d layers, %.0f MB compressed\n", ref, *layers+1, float64(size)/1e6)

	engines := []*engine{startEngined(work, *enginedBin)}
	if d := startDockerd(work); d != nil {
		engines = append(engines, d)
	} else {
		fmt.Println("dockerd: not installed (apt-get install docker.io), engined only")
	}
	defer func() {
		for _, e := range engines {
			e.stop()
		}
	}()

	results := map[string][]time.Duration{}
	for i := 0; i < *runs; i++ {
		for _, e := range engines {
			d := e.pull(ctx, ref)
			results[e.name] = append(results[e.name], d)
			fmt.Printf("run %d %-8s %v\n", i+1, e.name, d.Round(time.Millisecond))
		}
	}
	fmt.Println()
	med := map[string]time.Duration{}
	for _, e := range engines {
		med[e.name] = median(results[e.name])
		fmt.Printf("%-8s median %v (MB/s %.0f)\n", e.name, med[e.name].Round(time.Millisecond), float64(size)/1e6/med[e.name].Seconds())
	}
	if d, ok := med["dockerd"]; ok {
		fmt.Printf("ratio engined/dockerd: %.2f (dockerd takes %.2fx as long)\n", med["engined"].Seconds()/d.Seconds(), d.Seconds()/med["engined"].Seconds())
	}
}

func pushImage(ctx context.Context, ref string, layers, mb int) int64 {
	base, err := testimage.BusyboxLayer()
	check(err)
	ls := []v1.Layer{base}
	for i := 0; i < layers; i++ {
		l, err := testimage.RandomLayer(mb<<20, fmt.Sprintf("data/blob%d", i))
		check(err)
		ls = append(ls, l)
	}
	img, err := testimage.Image([]string{"sh"}, nil, ls...)
	check(err)
	check(testimage.Push(ctx, img, ref))
	var total int64
	for _, l := range ls {
		n, err := l.Size()
		check(err)
		total += n
	}
	return total
}

type engine struct {
	name string
	cmd  *exec.Cmd
	c    *client.Client
}

func (e *engine) pull(ctx context.Context, ref string) time.Duration {
	// Start from nothing: the image and its layers removed.
	if _, err := e.c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		log.Fatalf("%s: remove: %v", e.name, err)
	}
	start := time.Now()
	rc, err := e.c.ImagePull(ctx, ref, client.ImagePullOptions{})
	check(err)
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	check(err)
	d := time.Since(start)
	if _, err := e.c.ImageInspect(ctx, ref); err != nil {
		log.Fatalf("%s: image missing after pull: %v", e.name, err)
	}
	return d
}

func (e *engine) stop() {
	e.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		e.cmd.Process.Kill()
	}
}

func startEngined(work, bin string) *engine {
	root := filepath.Join(work, "engined")
	sock := filepath.Join(root, "run", "docker.sock")
	cfg := filepath.Join(work, "engined.json")
	check(os.WriteFile(cfg, []byte("{}"), 0o644))
	cmd := exec.Command(bin, "--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "run"), "-H", "unix://"+sock, "--config-file", cfg, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	return &engine{name: "engined", cmd: cmd, c: waitFor("unix://" + sock)}
}

func startDockerd(work string) *engine {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil
	}
	root := filepath.Join(work, "dockerd")
	sock := filepath.Join(root, "docker.sock")
	check(os.MkdirAll(root, 0o700))
	cmd := exec.Command(bin, "--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"),
		"--pidfile", filepath.Join(root, "dockerd.pid"), "-H", "unix://"+sock, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--config-file", filepath.Join(work, "engined.json"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+root)
	cmd.Stderr = io.Discard
	check(cmd.Start())
	return &engine{name: "dockerd", cmd: cmd, c: waitFor("unix://" + sock)}
}

func waitFor(host string) *client.Client {
	c, err := client.New(client.WithHost(host))
	check(err)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Ping(context.Background(), client.PingOptions{NegotiateAPIVersion: true}); err == nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("%s did not answer", host)
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
