package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

// Volume names never name anything outside the volumes directory: names
// with "..", slashes or absolute paths are refused wherever they come
// from (the volume API, -v, --mount).
func TestVolumeHostileNames(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	base := filepath.Dir(e.DataRoot)
	before := treeNames(t, base)
	for _, name := range []string{"..", "../x", "../../escape", "a/../../b", "x/y", "./x", "-x", "x\x00y", "a"} {
		resp, body := e.post(t, "/volumes/create", "application/json", strings.NewReader(fmt.Sprintf(`{"Name":%q}`, name)))
		if resp.StatusCode != 400 {
			t.Errorf("POST /volumes/create %q: %d %s", name, resp.StatusCode, body)
		}
		if code, _, _ := e.do("GET", "/volumes/"+url.PathEscape(name)); code != 404 && code != 400 && code != 301 {
			t.Errorf("GET /volumes/%s: %d", name, code)
		}
	}
	// (The CLI turns ./x and ../x into host paths itself; the API gets
	// them as they are.)
	for _, spec := range []string{"../x:/d", "a/b:/d", "..:/d", "x/../../y:/d"} {
		resp, body := e.post(t, "/containers/create", "application/json",
			strings.NewReader(fmt.Sprintf(`{"Image":"busybox","HostConfig":{"Binds":[%q]}}`, spec)))
		if resp.StatusCode != 400 || !strings.Contains(body, "invalid characters for a local volume name") {
			t.Errorf("Binds %s: %d %s", spec, resp.StatusCode, body)
		}
	}
	if out, err := docker(t, h, "run", "--rm", "-v", "a/b:/d", "busybox", "true"); err == nil {
		t.Errorf("-v a/b:/d succeeded: %s", out)
	}
	if out, err := docker(t, h, "run", "--rm", "--mount", "type=volume,src=../../x,dst=/d", "busybox", "true"); err == nil {
		t.Errorf("--mount src=../../x succeeded: %s", out)
	}
	if out, err := docker(t, h, "run", "--rm", "--mount", "type=volume,src=vv,dst=/d,volume-subpath=../../..", "busybox", "true"); err == nil ||
		!strings.Contains(out, "subpath must be a relative path within the volume") {
		t.Errorf("volume-subpath=../../..: %v %s", err, out)
	}
	after := treeNames(t, base)
	for n := range after {
		if !before[n] && !strings.HasPrefix(n, "data/") && !strings.HasPrefix(n, "run/") {
			t.Errorf("new file outside the roots: %s", n)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "escape")); err == nil {
		t.Errorf("a volume name reached outside the volumes directory")
	}
}

// treeNames lists the names directly under dir and one level down.
func treeNames(t *testing.T, dir string) map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		out[e.Name()] = true
		sub, _ := os.ReadDir(filepath.Join(dir, e.Name()))
		for _, s := range sub {
			out[e.Name()+"/"+s.Name()] = true
		}
	}
	return out
}

// A subpath resolves inside its volume: symlinks a container planted in
// the volume (absolute, climbing, to the host's sentinel) lead nowhere
// outside it. The exploit is run first against the volume's host path,
// where a plain join would follow the links out.
func TestVolumeHostileSubpath(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	s := newSentinel(t)
	before := s.hash(t)
	mustDocker(t, h, "run", "--rm", "-v", "evil:/v", "busybox", "sh", "-c",
		"ln -s "+s.dir+" /v/abs; ln -s ../../../../../../../../../../"+s.dir+" /v/rel; ln -s / /v/root; mkdir /v/ok; echo ok > /v/ok/f")
	data := filepath.Join(e.DataRoot, "volumes", "evil", "_data")
	// The exploit: joined as strings, these subpaths are the host's files.
	if _, err := os.Stat(filepath.Join(data, "abs", "secret")); err != nil {
		t.Fatalf("the exploit does not reach the sentinel through a string join: %v", err)
	}
	for _, sub := range []string{"abs", "rel", "root" + s.dir, "abs/sub", "root"} {
		out, err := docker(t, h, "run", "--rm", "--mount", "type=volume,src=evil,dst=/x,volume-subpath="+sub, "busybox", "sh", "-c",
			"cat /x/secret /x/sub/victim 2>/dev/null; ls /x; echo pwned > /x/secret; echo pwned > /x/planted")
		s.unchanged(t, before, "subpath "+sub)
		if strings.Contains(out, s.secret) {
			t.Errorf("subpath %s: the container read the host's secret: %q", sub, out)
		}
		if err == nil && sub == "root" && !strings.Contains(out, "abs") {
			t.Errorf("subpath root (a symlink to /): mounted %q, want the volume's own root", out)
		}
	}
	if got := mustDocker(t, h, "run", "--rm", "--mount", "type=volume,src=evil,dst=/x,volume-subpath=ok", "busybox", "cat", "/x/f"); got != "ok\n" {
		t.Errorf("a plain subpath: %q", got)
	}
	// docker cp through a subpath mount stays in the volume too.
	mustDocker(t, h, "run", "-d", "--name", "sp", "--mount", "type=volume,src=evil,dst=/x,volume-subpath=ok", "busybox", "sleep", "3600")
	out := t.TempDir()
	docker(t, h, "cp", "sp:/x/../../x/f", out)
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("cp\n"), 0o644)
	docker(t, h, "cp", f, "sp:/x/")
	s.unchanged(t, before, "docker cp through a subpath mount")
	if b, err := os.ReadFile(filepath.Join(data, "ok", "f")); err != nil || string(b) != "cp\n" {
		t.Errorf("docker cp into a subpath mount: %q %v", b, err)
	}
	// Removing the container leaves the volume's files (its staging is
	// unmounted, never removed through).
	mustDocker(t, h, "rm", "-f", "sp")
	if _, err := os.Stat(filepath.Join(data, "ok", "f")); err != nil {
		t.Errorf("the volume's files after rm of a subpath user: %v", err)
	}
}

// Binds of / and of the data root are allowed, as dockerd allows them;
// read-only they stay so.
func TestVolumeHostileBindRoots(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	out := mustDocker(t, h, "run", "--rm", "-v", e.DataRoot+":/dr:ro", "-v", "/:/host:ro", "busybox", "sh", "-c",
		"ls /dr; touch /dr/x 2>&1; touch /host/tmp/engined-e2e-x 2>&1; true")
	mustContain(t, "bind of the data root", out, "volumes", "Read-only file system")
	if _, err := os.Stat("/tmp/engined-e2e-x"); err == nil {
		os.Remove("/tmp/engined-e2e-x")
		t.Errorf("a read-only bind of / was written")
	}
	// Read-only is recursive: a mount below the bound tree is read-only too.
	out = mustDocker(t, h, "run", "--rm", "-v", "/:/host:ro", "busybox", "sh", "-c", "touch /host/proc/x /host"+e.DataRoot+"/y 2>&1; true")
	if strings.Contains(out, "pwned") {
		t.Errorf("%s", out)
	}
	if _, err := os.Stat(filepath.Join(e.DataRoot, "y")); err == nil {
		t.Errorf("a read-only bind of / let the data root be written")
	}
	if out, err := docker(t, h, "run", "--rm", "-v", "/tmp:/", "busybox", "true"); err == nil || !strings.Contains(out, "destination can't be '/'") {
		t.Errorf("a bind onto /: %v %q", err, out)
	}
}

// Pruning while containers are being created with a volume never
// removes a volume a container got: either the prune came first (and
// the create made the volume again) or the volume is in use.
func TestVolumeHostilePruneRace(t *testing.T) {
	e := runEngine(t)
	ctx := context.Background()
	c := mobyClient(t, e.Host)
	const rounds = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.VolumePrune(ctx, client.VolumePruneOptions{All: true})
		}
	}()
	var ids []string
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("race%d", i)
		if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
		r, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"true"}},
			HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: "/d"}}}})
		if err != nil {
			t.Fatalf("create with %s: %v", name, err)
		}
		ids = append(ids, r.ID)
		// Anonymous volumes too (the image has none; Config.Volumes).
		r, err = c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"true"},
			Volumes: map[string]struct{}{"/anon": {}}}})
		if err != nil {
			t.Fatalf("create with an anonymous volume: %v", err)
		}
		ids = append(ids, r.ID)
	}
	close(stop)
	wg.Wait()
	for _, id := range ids {
		in, err := c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range in.Container.Mounts {
			if _, err := c.VolumeInspect(ctx, m.Name, client.VolumeInspectOptions{}); err != nil {
				t.Errorf("container %s's volume %s was pruned: %v", id[:12], m.Name, err)
			}
			if _, err := os.Stat(filepath.Join(e.DataRoot, "volumes", m.Name, "_data")); err != nil {
				t.Errorf("volume %s's data: %v", m.Name, err)
			}
		}
		if _, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			t.Errorf("start %s: %v", id[:12], err)
		}
	}
}

// engined SIGKILLed while containers with volumes are being created:
// after the restart every container's volumes exist and are in use,
// and everything else can be pruned.
func TestVolumeHostileKillMidCreate(t *testing.T) {
	e := runEngine(t)
	ctx := context.Background()
	c := mobyClient(t, e.Host)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"true"},
					Volumes: map[string]struct{}{"/anon": {}}},
					HostConfig: &container.HostConfig{Binds: []string{fmt.Sprintf("kill%d-%d:/d", w, i)}}})
				if err != nil {
					return // engined is gone
				}
			}
		}()
	}
	waitFor(t, "a few creates", func() bool {
		l, _ := c.ContainerList(ctx, client.ContainerListOptions{All: true})
		return len(l.Items) >= 6
	})
	e.cmd.Process.Kill()
	<-e.done
	wg.Wait()
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	c2 := mobyClient(t, e2.Host)
	list, err := c2.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, ct := range list.Items {
		in, err := c2.ContainerInspect(ctx, ct.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range in.Container.Mounts {
			used[m.Name] = true
			if _, err := c2.VolumeRemove(ctx, m.Name, client.VolumeRemoveOptions{}); err == nil || !strings.Contains(err.Error(), "volume is in use") {
				t.Errorf("volume %s of container %s after the restart: remove gave %v", m.Name, ct.ID[:12], err)
			}
		}
	}
	if _, err := c2.VolumePrune(ctx, client.VolumePruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	vols, err := c2.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols.Items {
		if !used[v.Name] {
			t.Errorf("volume %s survived prune --all without a user", v.Name)
		}
		delete(used, v.Name)
	}
	if len(used) > 0 {
		t.Errorf("volumes of containers missing after the restart: %v", used)
	}
	e2.removeAllContainers()
	if _, err := c2.VolumePrune(ctx, client.VolumePruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.DataRoot, "volumes")); len(entries) != 0 {
		t.Errorf("volume directories left: %d", len(entries))
	}
}

// After SIGKILL of engined and a restart, a volume a running container
// uses cannot be removed and its data is intact; events tell the
// volume's life (create, mount, unmount, destroy).
func TestVolumeSurvivesEngineKill(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	since := time.Now().Add(-time.Second).Unix()
	mustDocker(t, h, "run", "-d", "--name", "keeper", "-v", "kept:/d", "busybox", "sh", "-c", "echo precious > /d/f; sleep 3600")
	waitExec(t, h, "keeper", "test -s /d/f")
	// A container using a volume with options (mounted while used) and
	// a subpath exits while engined is down: after the restart both are
	// let go of.
	ctl := t.TempDir()
	mustDocker(t, h, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "tmpv")
	mustDocker(t, h, "run", "--rm", "-v", "kept:/d", "busybox", "mkdir", "-p", "/d/sub")
	leaver := strings.TrimSpace(mustDocker(t, h, "run", "-d", "--name", "leaver", "-v", ctl+":/ctl", "-v", "tmpv:/t",
		"--mount", "type=volume,src=kept,dst=/s,volume-subpath=sub", "busybox", "sh", "-c", "until [ -e /ctl/go ]; do sleep 0.1; done"))
	tmpData := filepath.Join(e.DataRoot, "volumes", "tmpv", "_data")
	if !isMountpoint(t, tmpData) {
		t.Fatalf("the tmpfs volume is not mounted while used")
	}
	e.cmd.Process.Kill()
	<-e.done
	os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644)
	waitFor(t, "the leaver's exit record", func() bool {
		_, err := os.Stat(filepath.Join(e.ExecRoot, "containers", leaver, "exit.json"))
		return err == nil
	})
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot, "--registry-mirror", "http://127.0.0.1:1")
	h = e2.Host
	if isMountpoint(t, tmpData) {
		t.Errorf("the tmpfs volume is still mounted after its only user exited while engined was down")
	}
	if _, err := os.Stat(filepath.Join(e.ExecRoot, "subpaths", leaver)); !os.IsNotExist(err) {
		t.Errorf("the leaver's subpath staging is left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.DataRoot, "volumes", "kept", "_data", "sub")); err != nil {
		t.Errorf("the subpath's directory: %v", err)
	}
	mustDocker(t, h, "rm", "leaver")
	mustDocker(t, h, "volume", "rm", "tmpv")
	out, err := docker(t, h, "volume", "rm", "kept")
	if err == nil || !strings.Contains(out, "volume is in use") {
		t.Errorf("volume rm of a running container's volume after the restart: %v %q", err, out)
	}
	if out, _ := docker(t, h, "volume", "prune", "-af"); strings.Contains(out, "kept") {
		t.Errorf("prune removed a volume in use: %q", out)
	}
	if got := mustDocker(t, h, "exec", "keeper", "cat", "/d/f"); got != "precious\n" {
		t.Errorf("data after the restart: %q", got)
	}
	mustDocker(t, h, "rm", "-f", "keeper")
	mustDocker(t, h, "volume", "rm", "kept")
	ev := mustDocker(t, h, "events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(time.Now().Unix()+1), "--filter", "type=volume",
		"--format", "{{.Action}} {{.Actor.ID}}")
	// The restarted engined has the events since its start only.
	mustContain(t, "volume events", ev, "unmount kept", "destroy kept")
}

// Copy-up never reads outside the image: a VOLUME that is a symlink to
// the host's sentinel, or holds links out, copies nothing of the host's.
func TestVolumeHostileCopyUp(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	s := newSentinel(t)
	before := s.hash(t)
	reg := startRegistry(t)
	bb, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	evil, err := testimage.Layer(
		testimage.File{Name: "vlink", Typeflag: '2', Linkname: s.dir},
		testimage.File{Name: "vdir/", Typeflag: '5'},
		testimage.File{Name: "vdir/up", Typeflag: '2', Linkname: "../../../../../../../../" + s.dir},
		testimage.File{Name: "vdir/abs", Typeflag: '2', Linkname: s.dir + "/secret"},
	)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image([]string{"sh"}, nil, bb, evil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.Config.Volumes = map[string]struct{}{"/vlink": {}, "/vdir": {}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("evilvol:latest")
	if err := testimage.Push(context.Background(), img, ref); err != nil {
		t.Fatal(err)
	}
	mustDocker(t, h, "pull", ref)
	out, _ := docker(t, h, "run", "--name", "ev", ref, "sh", "-c", "cat /vlink/secret /vdir/up/secret /vdir/abs 2>&1; ls -la /vdir")
	s.unchanged(t, before, "copy-up of a hostile image's volumes")
	if strings.Contains(out, s.secret) {
		t.Errorf("the container read the host's secret through its volumes: %q", out)
	}
	if grep(t, filepath.Join(e.DataRoot, "volumes"), s.secret) {
		t.Errorf("copy-up copied the host's secret into a volume")
	}
}
