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
	"path/filepath"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"

	"github.com/engined/engined/bench/engines"
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
	defer engines.SnapshotHost().Check()

	reg, err := testimage.StartRegistry(ctx, filepath.Join(work, "registry"), "")
	check(err)
	defer reg.Stop()
	ref := reg.Ref("bench/big:latest")
	size := pushImage(ctx, ref, *layers, *layerMB)
	fmt.Printf("image: %s, %d layers, %.0f MB compressed\n", ref, *layers+1, float64(size)/1e6)

	all, err := engines.StartAll(work, *enginedBin)
	check(err)
	defer func() {
		for _, e := range all {
			e.Stop()
		}
	}()

	results := map[string][]time.Duration{}
	for i := 0; i < *runs; i++ {
		for _, e := range all {
			d := pull(ctx, e, ref)
			results[e.Name] = append(results[e.Name], d)
			fmt.Printf("run %d %-8s %v\n", i+1, e.Name, d.Round(time.Millisecond))
		}
	}
	fmt.Println()
	med := map[string]time.Duration{}
	for _, e := range all {
		med[e.Name] = engines.Median(results[e.Name])
		fmt.Printf("%-8s median %v (MB/s %.0f)\n", e.Name, med[e.Name].Round(time.Millisecond), float64(size)/1e6/med[e.Name].Seconds())
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

func pull(ctx context.Context, e *engines.Engine, ref string) time.Duration {
	// Start from nothing: the image and its layers removed.
	if _, err := e.Client.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		log.Fatalf("%s: remove: %v", e.Name, err)
	}
	start := time.Now()
	rc, err := e.Client.ImagePull(ctx, ref, client.ImagePullOptions{})
	check(err)
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	check(err)
	d := time.Since(start)
	if _, err := e.Client.ImageInspect(ctx, ref); err != nil {
		log.Fatalf("%s: image missing after pull: %v", e.Name, err)
	}
	return d
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
