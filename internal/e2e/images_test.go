package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/testimage"
)

// startRegistry runs the real distribution registry on loopback, stopped
// when the test ends.
func startRegistry(t *testing.T) *testimage.Registry {
	t.Helper()
	r, err := testimage.StartRegistry(context.Background(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// pushFixtures pushes the test images: busybox (one layer), multi (three
// layers with whiteouts) and indexed (a manifest list).
func pushFixtures(t *testing.T, reg *testimage.Registry) {
	t.Helper()
	ctx := context.Background()
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	multi, err := testimage.MultiLayer()
	if err != nil {
		t.Fatal(err)
	}
	for ref, push := range map[string]func() error{
		"busybox:latest":         func() error { return testimage.Push(ctx, bb, reg.Ref("busybox:latest")) },
		"library/busybox:latest": func() error { return testimage.Push(ctx, bb, reg.Ref("library/busybox:latest")) },
		"multi:latest":           func() error { return testimage.Push(ctx, multi, reg.Ref("multi:latest")) },
		"indexed:latest":         func() error { return testimage.PushIndex(ctx, bb, reg.Ref("indexed:latest")) },
	} {
		if err := push(); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
}

func TestPullWithDockerCLI(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t)
	ref := reg.Ref("busybox")

	out, err := docker(t, e.Host, "pull", ref)
	if err != nil {
		t.Fatalf("docker pull: %v\n%s", err, out)
	}
	mustContain(t, "docker pull", out, "latest: Pulling from busybox", "Pull complete", "Digest: sha256:", "Status: Downloaded newer image for "+ref+":latest")
	out, err = docker(t, e.Host, "pull", ref)
	if err != nil {
		t.Fatalf("second docker pull: %v\n%s", err, out)
	}
	mustContain(t, "second docker pull", out, "Status: Image is up to date for "+ref+":latest")
	if strings.Contains(out, "Pull complete") {
		t.Errorf("second pull downloaded again:\n%s", out)
	}

	out, err = docker(t, e.Host, "images")
	if err != nil {
		t.Fatalf("docker images: %v\n%s", err, out)
	}
	mustContain(t, "docker images", out, ref, "latest")

	c := mobyClient(t, e.Host)
	ctx := context.Background()
	insp, err := c.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(insp.RepoTags) != 1 || insp.RepoTags[0] != ref+":latest" || insp.Os != "linux" || insp.Architecture != "amd64" ||
		len(insp.RootFS.Layers) != 1 || insp.Size <= 1<<20 || insp.Config == nil || strings.Join(insp.Config.Cmd, " ") != "sh" ||
		len(insp.RepoDigests) != 1 || !strings.HasPrefix(insp.RepoDigests[0], ref+"@sha256:") {
		t.Errorf("inspect = %+v", insp)
	}
	// Short IDs and the digest resolve too.
	for _, name := range []string{insp.ID, insp.ID[7:19], insp.RepoDigests[0]} {
		if got, err := c.ImageInspect(ctx, name); err != nil || got.ID != insp.ID {
			t.Errorf("inspect %s: %v", name, err)
		}
	}
	list, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != insp.ID || list.Items[0].Size != insp.Size {
		t.Errorf("image list = %+v, %v", list, err)
	}

	// A missing image is a clear error with a non-zero exit.
	out, err = docker(t, e.Host, "pull", reg.Ref("nope:latest"))
	if err == nil || !strings.Contains(out, "not found") {
		t.Errorf("pull of a missing image: %v\n%s", err, out)
	}
}

func TestPullMultiLayerAndIndex(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t)
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	for _, name := range []string{"multi", "indexed"} {
		if out, err := docker(t, e.Host, "pull", reg.Ref(name)); err != nil {
			t.Fatalf("docker pull %s: %v\n%s", name, err, out)
		}
	}
	// The manifest list resolved to the amd64 image: busybox's, whose
	// layer the multi-layer image shares.
	idx, err := c.ImageInspect(ctx, reg.Ref("indexed"))
	if err != nil {
		t.Fatal(err)
	}
	if idx.Architecture != "amd64" || len(idx.RootFS.Layers) != 1 {
		t.Errorf("indexed image: %s %v", idx.Architecture, idx.RootFS.Layers)
	}
	multi, err := c.ImageInspect(ctx, reg.Ref("multi"))
	if err != nil {
		t.Fatal(err)
	}
	if len(multi.RootFS.Layers) != 3 || multi.RootFS.Layers[0] != idx.RootFS.Layers[0] || multi.Config.Labels["org.example.test"] != "multi" {
		t.Errorf("multi image: %v %v", multi.RootFS.Layers, multi.Config.Labels)
	}
	// Mount the layers as a container's root will be and check the
	// whiteouts took effect.
	gd := multi.GraphDriver.Data
	lowers := gd["UpperDir"] + ":" + gd["LowerDir"]
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+lowers); err != nil {
		t.Fatalf("mount layers: %v", err)
	}
	defer unix.Unmount(mnt, 0)
	for path, want := range map[string]bool{"bin/busybox": true, "data/keep": true, "data/gone": false, "opq/old": false, "opq/new": true} {
		_, err := os.Lstat(filepath.Join(mnt, path))
		if (err == nil) != want {
			t.Errorf("%s present=%v, want %v", path, err == nil, want)
		}
	}
}

func TestPullThroughMirror(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t, "--registry-mirror", "http://"+reg.Addr)
	out, err := docker(t, e.Host, "pull", "busybox")
	if err != nil {
		t.Fatalf("docker pull busybox through the mirror: %v\n%s", err, out)
	}
	mustContain(t, "docker pull busybox", out, "Status: Downloaded newer image for busybox:latest")
	out, err = docker(t, e.Host, "images", "--format", "{{.Repository}}:{{.Tag}}")
	if err != nil || strings.TrimSpace(out) != "busybox:latest" {
		t.Errorf("docker images = %q, %v", out, err)
	}
	out, _ = docker(t, e.Host, "info")
	mustContain(t, "docker info", out, "Registry Mirrors:", "http://"+reg.Addr)
}

// Clients of API < 1.50 get the image Config fields dockerd still wrote
// for them; current clients do not.
func TestImageInspectShapePerAPIVersion(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t)
	if out, err := docker(t, e.Host, "pull", reg.Ref("busybox")); err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	_, _, old := e.get("/v1.45/images/" + reg.Ref("busybox") + "/json")
	_, _, cur := e.get("/v1.51/images/" + reg.Ref("busybox") + "/json")
	if !strings.Contains(old, `"Hostname":""`) || strings.Contains(cur, `"Hostname"`) {
		t.Errorf("Config.Hostname: v1.45 %s\nv1.51 %s", old, cur)
	}
	mustContain(t, "v1.51 inspect", cur, `"Cmd":["sh"]`, `"GraphDriver":{"Data":`, `"Name":"overlay2"`)
	_, _, list := e.get("/v1.43/images/json")
	mustContain(t, "v1.43 list", list, `"VirtualSize":`)
}
