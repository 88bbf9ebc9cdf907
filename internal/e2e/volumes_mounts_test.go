package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Binds, --mount, tmpfs and --volumes-from, as a user tries them.
func TestVolumeMounts(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	fixture := filepath.Join(t.TempDir(), "fixture")
	os.MkdirAll(fixture, 0o755)
	os.WriteFile(filepath.Join(fixture, "f"), []byte("fixture\n"), 0o644)

	// -v host:dst:ro is read-only inside, and reads the host's files.
	out, err := docker(t, h, "run", "--rm", "-v", fixture+":/fix:ro", "busybox", "sh", "-c", "cat /fix/f; echo x > /fix/new")
	if err == nil || !strings.Contains(out, "fixture\n") || !strings.Contains(out, "Read-only file system") {
		t.Errorf("-v :ro: %v %q", err, out)
	}
	if _, err := os.Stat(filepath.Join(fixture, "new")); err == nil {
		t.Errorf("a read-only bind was written")
	}
	// :rw, :z and a propagation mode are accepted; inspect shows them.
	mustDocker(t, h, "run", "--name", "modes", "-v", fixture+":/a:rw,z", "-v", fixture+":/b:rslave", "busybox", "true")
	var mounts []map[string]any
	json.Unmarshal([]byte(mustDocker(t, h, "inspect", "-f", "{{json .Mounts}}", "modes")), &mounts)
	byDst := map[string]map[string]any{}
	for _, m := range mounts {
		byDst[m["Destination"].(string)] = m
	}
	if m := byDst["/a"]; m == nil || m["Type"] != "bind" || m["Source"] != fixture || m["Mode"] != "rw,z" || m["RW"] != true || m["Propagation"] != "rprivate" {
		t.Errorf("inspect Mounts /a: %v", m)
	}
	if m := byDst["/b"]; m == nil || m["Propagation"] != "rslave" {
		t.Errorf("inspect Mounts /b: %v", m)
	}

	// -v creates a missing source; --mount type=bind does not.
	missing := filepath.Join(t.TempDir(), "made", "by", "run")
	mustDocker(t, h, "run", "--rm", "-v", missing+":/m", "busybox", "true")
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Errorf("-v did not create its missing source: %v", err)
	}
	out, err = docker(t, h, "run", "--rm", "--mount", "type=bind,src=/nonexistent,dst=/x", "busybox", "true")
	if err == nil || !strings.Contains(out, `invalid mount config for type "bind": bind source path does not exist: /nonexistent`) {
		t.Errorf("--mount of a missing bind source: %v %q", err, out)
	}
	out, err = docker(t, h, "run", "--rm", "-v", fixture+":/d", "--mount", "type=volume,src=v1,dst=/d", "busybox", "true")
	if err == nil || !strings.Contains(out, "Duplicate mount point: /d") {
		t.Errorf("duplicate destinations: %v %q", err, out)
	}
	out, err = docker(t, h, "run", "--rm", "-v", "bad/name:/d", "busybox", "true")
	if err == nil || !strings.Contains(out, "includes invalid characters for a local volume name") {
		t.Errorf("-v bad/name: %v %q", err, out)
	}

	// --mount type=tmpfs with a size is a tmpfs of that size.
	out = mustDocker(t, h, "run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox", "sh", "-c",
		"grep ' /t ' /proc/mounts; stat -c %a /t")
	if !strings.Contains(out, "tmpfs /t tmpfs") || !strings.Contains(out, "size=1024k") || !strings.Contains(out, "1770") {
		t.Errorf("--mount tmpfs: %q", out)
	}

	// --mount type=volume with options: readonly, nocopy, a subpath,
	// a volume made with driver options (a tmpfs mounted on first use).
	mustDocker(t, h, "run", "--rm", "-v", "shared:/s", "busybox", "sh", "-c", "mkdir -p /s/sub && echo in-sub > /s/sub/f")
	out = mustDocker(t, h, "run", "--rm", "--mount", "type=volume,src=shared,dst=/only,volume-subpath=sub,readonly", "busybox", "sh", "-c",
		"cat /only/f; touch /only/x 2>&1; ls /only")
	if !strings.Contains(out, "in-sub\n") || !strings.Contains(out, "Read-only file system") || !strings.HasSuffix(out, "system\nf\n") {
		t.Errorf("volume-subpath, readonly: %q", out)
	}
	out, err = docker(t, h, "run", "--rm", "--mount", "type=volume,src=shared,dst=/x,volume-subpath=nosuch", "busybox", "true")
	if err == nil {
		t.Errorf("a missing subpath: %q", out)
	}
	out = mustDocker(t, h, "run", "--rm", "--mount", "type=volume,src=tv,dst=/tv,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m",
		"busybox", "sh", "-c", "grep ' /tv ' /proc/mounts")
	if !strings.Contains(out, "tmpfs") || !strings.Contains(out, "size=2048k") {
		t.Errorf("volume with driver options: %q", out)
	}
	if got := mustDocker(t, h, "volume", "inspect", "-f", "{{.Options.type}} {{.Options.o}}", "tv"); got != "tmpfs size=2m\n" {
		t.Errorf("volume tv options: %q", got)
	}
	// type=none,o=bind: the device is bind-mounted, mounted while used.
	dev := t.TempDir()
	os.WriteFile(filepath.Join(dev, "from-device"), []byte("dev\n"), 0o644)
	mustDocker(t, h, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device="+dev, "bound")
	if got := mustDocker(t, h, "run", "--rm", "-v", "bound:/b", "busybox", "cat", "/b/from-device"); got != "dev\n" {
		t.Errorf("bind volume: %q", got)
	}
	if isMountpoint(t, filepath.Join(e.DataRoot, "volumes", "bound", "_data")) {
		t.Errorf("bind volume still mounted after its last user")
	}
	out, err = docker(t, h, "volume", "create", "-o", "bogus=1", "badopt")
	if err == nil || !strings.Contains(out, `invalid option key: "bogus"`) {
		t.Errorf("volume create -o bogus=1: %v %q", err, out)
	}

	// --volumes-from shares the mounts (ro makes them read-only).
	mustDocker(t, h, "run", "-d", "--name", "donor", "-v", "fromvol:/vol", "-v", fixture+":/fix", "busybox", "sleep", "3600")
	mustDocker(t, h, "exec", "donor", "sh", "-c", "echo from-donor > /vol/f")
	if got := mustDocker(t, h, "run", "--rm", "--volumes-from", "donor", "busybox", "sh", "-c", "cat /vol/f /fix/f"); got != "from-donor\nfixture\n" {
		t.Errorf("--volumes-from: %q", got)
	}
	out, err = docker(t, h, "run", "--rm", "--volumes-from", "donor:ro", "busybox", "sh", "-c", "echo x > /vol/g")
	if err == nil || !strings.Contains(out, "Read-only") {
		t.Errorf("--volumes-from :ro: %v %q", err, out)
	}
	out, err = docker(t, h, "run", "--rm", "--volumes-from", "nosuch", "busybox", "true")
	if err == nil || !strings.Contains(out, "No such container: nosuch") {
		t.Errorf("--volumes-from nosuch: %v %q", err, out)
	}

	// docker cp sees through a volume, diff does not list it.
	f := filepath.Join(t.TempDir(), "cpfile")
	os.WriteFile(f, []byte("copied\n"), 0o644)
	mustDocker(t, h, "cp", f, "donor:/vol/")
	if b, err := os.ReadFile(filepath.Join(e.DataRoot, "volumes", "fromvol", "_data", "cpfile")); err != nil || string(b) != "copied\n" {
		t.Errorf("docker cp into a volume: %q %v", b, err)
	}
	if diff := mustDocker(t, h, "diff", "donor"); strings.Contains(diff, "/vol") {
		t.Errorf("docker diff lists the volume: %q", diff)
	}
}

func isMountpoint(t *testing.T, p string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}
