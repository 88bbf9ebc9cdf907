package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

// A named volume keeps what one container wrote for the next; docker
// volume ls, inspect, rm and prune behave as dockerd's (in use is a 409
// naming the container, prune takes anonymous volumes only by default).
func TestVolumeNamed(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	mustDocker(t, h, "run", "--name", "writer", "-v", "data:/d", "busybox", "sh", "-c", "echo 1 > /d/x")
	if got := mustDocker(t, h, "run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/x"); got != "1\n" {
		t.Fatalf("second container read %q, want 1", got)
	}
	if got := mustDocker(t, h, "volume", "ls", "--format", "{{.Driver}} {{.Name}}"); got != "local data\n" {
		t.Errorf("volume ls: %q", got)
	}
	var vols []map[string]any
	if err := json.Unmarshal([]byte(mustDocker(t, h, "volume", "inspect", "data")), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume inspect: %v %v", vols, err)
	}
	v := vols[0]
	if v["Name"] != "data" || v["Driver"] != "local" || v["Scope"] != "local" ||
		v["Mountpoint"] != filepath.Join(e.DataRoot, "volumes", "data", "_data") || v["CreatedAt"] == "" {
		t.Errorf("volume inspect: %v", v)
	}
	if b, err := os.ReadFile(filepath.Join(e.DataRoot, "volumes", "data", "_data", "x")); err != nil || string(b) != "1\n" {
		t.Errorf("the volume's file on the host: %q %v", b, err)
	}
	// inspect's Mounts, dockerd's shape.
	var mounts []map[string]any
	json.Unmarshal([]byte(mustDocker(t, h, "inspect", "-f", "{{json .Mounts}}", "writer")), &mounts)
	if len(mounts) != 1 || mounts[0]["Type"] != "volume" || mounts[0]["Name"] != "data" || mounts[0]["Destination"] != "/d" ||
		mounts[0]["Driver"] != "local" || mounts[0]["Mode"] != "z" || mounts[0]["RW"] != true {
		t.Errorf("inspect Mounts: %v", mounts)
	}
	if got := mustDocker(t, h, "inspect", "-f", "{{json .HostConfig.Binds}}", "writer"); got != "[\"data:/d\"]\n" {
		t.Errorf("HostConfig.Binds: %s", got)
	}

	if got := mustDocker(t, h, "ps", "-a", "--filter", "volume=data", "--format", "{{.Names}}"); got != "writer\n" {
		t.Errorf("ps --filter volume=data: %q", got)
	}
	out, err := docker(t, h, "volume", "rm", "data")
	id := strings.TrimSpace(mustDocker(t, h, "inspect", "-f", "{{.Id}}", "writer"))
	if err == nil || !strings.Contains(out, "volume is in use - ["+id+"]") {
		t.Errorf("volume rm of a volume in use: %v %q", err, out)
	}
	if out, err := docker(t, h, "volume", "rm", "-f", "data"); err == nil {
		t.Errorf("volume rm -f of a volume in use succeeded: %q", out)
	}
	code, _, body := e.do("DELETE", "/volumes/data")
	if code != 409 {
		t.Errorf("DELETE /volumes/data in use: %d %s", code, body)
	}

	// Anonymous volumes are pruned by default, named ones with --all.
	mustDocker(t, h, "volume", "create", "--label", "k=v", "spare")
	mustDocker(t, h, "run", "--name", "anon", "-v", "/scratch", "busybox", "true")
	anon := strings.TrimSpace(mustDocker(t, h, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"))
	if len(anon) != 64 {
		t.Fatalf("anonymous volume name %q", anon)
	}
	if got := mustDocker(t, h, "volume", "ls", "-q", "--filter", "dangling=true"); got != "spare\n" {
		t.Errorf("dangling volumes: %q", got)
	}
	if got := mustDocker(t, h, "volume", "ls", "-q", "--filter", "label=k=v"); got != "spare\n" {
		t.Errorf("label filter: %q", got)
	}
	mustDocker(t, h, "rm", "anon")
	out = mustDocker(t, h, "volume", "prune", "-f")
	if !strings.Contains(out, anon) || strings.Contains(out, "spare") {
		t.Errorf("volume prune: %q", out)
	}
	out = mustDocker(t, h, "volume", "prune", "-f", "--all")
	if !strings.Contains(out, "spare") || strings.Contains(out, "data") {
		t.Errorf("volume prune --all: %q (data is in use)", out)
	}
	mustDocker(t, h, "rm", "writer")
	mustDocker(t, h, "volume", "rm", "data")
	if _, err := os.Stat(filepath.Join(e.DataRoot, "volumes", "data")); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
	out, err = docker(t, h, "volume", "inspect", "data")
	if err == nil || !strings.Contains(out, "no such volume") {
		t.Errorf("inspect of a removed volume: %v %q", err, out)
	}
	if code, _, _ := e.do("PUT", "/volumes/nosuch"); code != 404 {
		t.Errorf("PUT /volumes/nosuch: %d", code)
	}
	mustDocker(t, h, "volume", "create", "upd")
	if code, _, body := e.do("PUT", "/volumes/upd?version=1"); code != 400 {
		t.Errorf("PUT /volumes/upd: %d %s", code, body)
	}
}

// An image's VOLUME gets an anonymous volume holding the image's files
// there (owners and modes kept); docker rm -v removes it.
func TestVolumeImageVolume(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	reg := startRegistry(t)
	bb, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	app, err := testimage.Layer(
		testimage.File{Name: "var/", Typeflag: '5'},
		testimage.File{Name: "var/lib/", Typeflag: '5'},
		testimage.File{Name: "var/lib/app/", Typeflag: '5', Mode: 0o750, Uid: 1000, Gid: 1000},
		testimage.File{Name: "var/lib/app/seed", Body: []byte("seeded\n"), Mode: 0o600, Uid: 1000, Gid: 1001},
		testimage.File{Name: "var/lib/app/sub/", Typeflag: '5', Mode: 0o700, Uid: 7, Gid: 7},
		testimage.File{Name: "var/lib/app/sub/deep", Body: []byte("deep\n")},
		testimage.File{Name: "var/lib/app/link", Typeflag: '2', Linkname: "/etc/passwd"},
	)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image([]string{"sh"}, nil, bb, app)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.Config.Volumes = map[string]struct{}{"/var/lib/app": {}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(context.Background(), img, reg.Ref("withvol:latest")); err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("withvol:latest")
	mustDocker(t, h, "pull", ref)
	mustDocker(t, h, "run", "--name", "app", ref, "sh", "-c", "echo added >> /var/lib/app/seed")
	name := strings.TrimSpace(mustDocker(t, h, "inspect", "-f", "{{range .Mounts}}{{.Type}}|{{.Name}}|{{.Destination}}|{{.Mode}}|{{.RW}}{{end}}", "app"))
	f := strings.Split(name, "|")
	if len(f) != 5 || f[0] != "volume" || len(f[1]) != 64 || f[2] != "/var/lib/app" || f[3] != "" || f[4] != "true" {
		t.Fatalf("anonymous volume mount: %q", name)
	}
	vol := f[1]
	if got := mustDocker(t, h, "inspect", "-f", "{{json .Config.Volumes}}", "app"); got != "{\"/var/lib/app\":{}}\n" {
		t.Errorf("inspect Config.Volumes: %s", got)
	}
	data := filepath.Join(e.DataRoot, "volumes", vol, "_data")
	if b, err := os.ReadFile(filepath.Join(data, "seed")); err != nil || string(b) != "seeded\nadded\n" {
		t.Errorf("volume's seed: %q %v", b, err)
	}
	for p, want := range map[string]string{"": "750 1000 1000", "seed": "600 1000 1001", "sub": "700 7 7"} {
		st, err := os.Lstat(filepath.Join(data, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		sys := st.Sys().(*syscallStat)
		if got := modeOwner(st.Mode().Perm(), sys.Uid, sys.Gid); got != want {
			t.Errorf("copied %q: mode/owner %s, want %s", p, got, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(data, "link")); err != nil || l != "/etc/passwd" {
		t.Errorf("copied symlink: %q %v", l, err)
	}
	var labels map[string]string
	json.Unmarshal([]byte(mustDocker(t, h, "volume", "inspect", "-f", "{{json .Labels}}", vol)), &labels)
	if _, ok := labels["com.docker.volume.anonymous"]; !ok {
		t.Errorf("anonymous volume's labels: %v", labels)
	}
	// A second container gets a volume of its own; nocopy-less named
	// volume that is not empty is left as it is.
	mustDocker(t, h, "run", "--rm", "-v", "keep:/var/lib/app", "busybox", "sh", "-c", "echo mine > /var/lib/app/own")
	if got := mustDocker(t, h, "run", "--rm", "-v", "keep:/var/lib/app", ref, "ls", "/var/lib/app"); got != "own\n" {
		t.Errorf("a non-empty named volume over the image's VOLUME: %q", got)
	}
	if got := mustDocker(t, h, "run", "--rm", "-v", "fresh:/var/lib/app:nocopy", ref, "ls", "/var/lib/app"); got != "" {
		t.Errorf("nocopy volume: %q", got)
	}
	mustDocker(t, h, "rm", "-v", "app")
	if _, err := os.Stat(filepath.Join(e.DataRoot, "volumes", vol)); !os.IsNotExist(err) {
		t.Errorf("rm -v left the anonymous volume: %v", err)
	}
	if out := mustDocker(t, h, "volume", "ls", "-q"); out != "fresh\nkeep\n" {
		t.Errorf("volumes after rm -v: %q (named ones stay)", out)
	}
	// docker run --rm removes the anonymous volume too.
	mustDocker(t, h, "run", "--rm", ref, "true")
	if out := mustDocker(t, h, "volume", "ls", "-q"); out != "fresh\nkeep\n" {
		t.Errorf("volumes after run --rm: %q", out)
	}
}

// The moby Go client decodes every volume response.
func TestVolumeMobyClient(t *testing.T) {
	e := startEngined(t)
	ctx := context.Background()
	c := mobyClient(t, e.Host)
	cr, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "go1", Labels: map[string]string{"a": "b"},
		DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}})
	if err != nil || cr.Volume.Name != "go1" || cr.Volume.Labels["a"] != "b" || cr.Volume.Options["type"] != "tmpfs" {
		t.Fatalf("VolumeCreate: %+v %v", cr, err)
	}
	again, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "go1"})
	if err != nil || again.Volume.CreatedAt != cr.Volume.CreatedAt {
		t.Errorf("VolumeCreate of an existing name: %+v %v", again, err)
	}
	anon, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{})
	if err != nil || len(anon.Volume.Name) != 64 {
		t.Errorf("anonymous VolumeCreate: %+v %v", anon, err)
	}
	in, err := c.VolumeInspect(ctx, "go1", client.VolumeInspectOptions{})
	if err != nil || in.Volume.Mountpoint == "" || in.Volume.Scope != "local" {
		t.Errorf("VolumeInspect: %+v %v", in, err)
	}
	ls, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("name", "go")})
	if err != nil || len(ls.Items) != 1 {
		t.Errorf("VolumeList name=go: %+v %v", ls, err)
	}
	if _, err := c.VolumeInspect(ctx, "nosuch", client.VolumeInspectOptions{}); err == nil || !strings.Contains(err.Error(), "no such volume") {
		t.Errorf("VolumeInspect nosuch: %v", err)
	}
	if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "x", Driver: "nosuchdriver"}); err == nil {
		t.Errorf("VolumeCreate with an unknown driver succeeded")
	}
	for _, bad := range []string{"../x", "a/b", "..", "a", "/abs", ".hidden", "x y"} {
		if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: bad}); err == nil {
			t.Errorf("VolumeCreate %q succeeded", bad)
		}
	}
	pr, err := c.VolumePrune(ctx, client.VolumePruneOptions{})
	if err != nil || len(pr.Report.VolumesDeleted) != 1 || pr.Report.VolumesDeleted[0] != anon.Volume.Name {
		t.Errorf("VolumePrune: %+v %v", pr, err)
	}
	du, err := c.DiskUsage(ctx, client.DiskUsageOptions{Volumes: true, Images: true, Containers: true, Verbose: true})
	if err != nil || du.Volumes.TotalCount != 1 {
		t.Errorf("DiskUsage: %+v %v", du, err)
	}
	if _, err := c.VolumeRemove(ctx, "go1", client.VolumeRemoveOptions{}); err != nil {
		t.Errorf("VolumeRemove: %v", err)
	}
	if _, err := c.VolumeRemove(ctx, "go1", client.VolumeRemoveOptions{Force: true}); err != nil {
		t.Errorf("VolumeRemove -f of a missing volume: %v", err)
	}
	if _, err := c.VolumeRemove(ctx, "go1", client.VolumeRemoveOptions{}); err == nil {
		t.Errorf("VolumeRemove of a missing volume succeeded")
	}
	// Before API 1.42 prune takes named volumes too.
	old := mobyClient(t, e.Host, client.WithVersion("1.41"))
	if _, err := old.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "named"}); err != nil {
		t.Fatal(err)
	}
	pr, err = old.VolumePrune(ctx, client.VolumePruneOptions{})
	if err != nil || len(pr.Report.VolumesDeleted) != 1 {
		t.Errorf("VolumePrune at API 1.41: %+v %v", pr, err)
	}
}

type syscallStat = syscall.Stat_t

func modeOwner(perm os.FileMode, uid, gid uint32) string {
	return fmt.Sprintf("%o %d %d", perm, uid, gid)
}
