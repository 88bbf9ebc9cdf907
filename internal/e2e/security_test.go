package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/engined/engined/internal/testimage"
)

// runProbeEngine starts engined with busybox and "probe" (busybox plus the
// static testdata/sysprobe binary at /sysprobe) pullable through a mirror.
func runProbeEngine(t *testing.T) *engined {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sysprobe")
	build := exec.Command("go", "build", "-o", bin, "./testdata/sysprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sysprobe: %v\n%s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	probeLayer, err := testimage.Layer(testimage.File{Name: "sysprobe", Body: body, Mode: 0o755},
		testimage.File{Name: "bin/unshare", Typeflag: tar.TypeSymlink, Linkname: "busybox"},
		testimage.File{Name: "bin/reboot", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image([]string{"/sysprobe"}, nil, bb, probeLayer)
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	pushFixtures(t, reg)
	if err := testimage.Push(context.Background(), img, reg.Ref("library/probe:latest")); err != nil {
		t.Fatal(err)
	}
	e := startEngined(t, "--registry-mirror", "http://"+reg.Addr)
	mustDocker(t, e.Host, "pull", "busybox")
	mustDocker(t, e.Host, "pull", "probe")
	return e
}

var statusLine = regexp.MustCompile(`(?m)^(Seccomp|NoNewPrivs):\s+(\d+)$`)

// procStatusField runs grep in a new container and returns its /proc/self/status
// value of field (Seccomp or NoNewPrivs).
func procStatusField(t *testing.T, e *engined, field string, runArgs ...string) string {
	t.Helper()
	args := append(append([]string{"run", "--rm"}, runArgs...), "busybox", "grep", "^"+field+":", "/proc/self/status")
	out := mustDocker(t, e.Host, args...)
	for _, m := range statusLine.FindAllStringSubmatch(out, -1) {
		if m[1] == field {
			return m[2]
		}
	}
	t.Fatalf("docker %s: no %s line in %q", strings.Join(args, " "), field, out)
	return ""
}

func TestSeccompDefaultProfile(t *testing.T) {
	e := runProbeEngine(t)

	if got := procStatusField(t, e, "Seccomp"); got != "2" {
		t.Errorf("default container: Seccomp %s, want 2 (filter)", got)
	}
	if got := procStatusField(t, e, "Seccomp", "--security-opt", "seccomp=unconfined"); got != "0" {
		t.Errorf("seccomp=unconfined: Seccomp %s, want 0", got)
	}
	if got := procStatusField(t, e, "Seccomp", "--privileged"); got != "0" {
		t.Errorf("--privileged: Seccomp %s, want 0", got)
	}
	if got := procStatusField(t, e, "Seccomp", "--security-opt", "seccomp=builtin"); got != "2" {
		t.Errorf("seccomp=builtin: Seccomp %s, want 2", got)
	}

	// The filter's EPERM, through real syscalls. The key calls need no
	// capability, so without the filter they succeed: that tells the
	// filter from the capabilities.
	out := mustDocker(t, e.Host, "run", "--rm", "probe", "/sysprobe", "add_key", "keyctl", "unshare", "mount", "reboot")
	for _, want := range []string{"add_key: EPERM", "keyctl: EPERM", "unshare: EPERM", "mount: EPERM", "reboot: EPERM"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("default container: want %q in:\n%s", want, out)
		}
	}
	out = mustDocker(t, e.Host, "run", "--rm", "--security-opt", "seccomp=unconfined", "probe", "/sysprobe", "add_key", "keyctl", "unshare")
	// unshare(CLONE_NEWUSER) from a multi-threaded Go process is EINVAL
	// when it gets to the kernel.
	mustContain(t, "unconfined container", out, "add_key: ok\n", "keyctl: ok\n", "unshare: EINVAL\n")

	// busybox's own applets, single-threaded: a user namespace needs no
	// capability, so only the filter stops it.
	if out, err := docker(t, e.Host, "run", "--rm", "probe", "unshare", "-U", "true"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("unshare -U in a default container: %v\n%s", err, out)
	}
	mustDocker(t, e.Host, "run", "--rm", "--security-opt", "seccomp=unconfined", "probe", "unshare", "-U", "true")
	if out, err := docker(t, e.Host, "run", "--rm", "probe", "mount", "-t", "tmpfs", "none", "/mnt"); err == nil || !strings.Contains(out, "denied") && !strings.Contains(out, "not permitted") {
		t.Errorf("mount in a default container: %v\n%s", err, out)
	}
	// No CAP_SYS_BOOT and the filter: reboot fails inside the
	// container's pid namespace and reboots nothing.
	if out, err := docker(t, e.Host, "run", "--rm", "probe", "reboot", "-f"); err == nil {
		t.Errorf("reboot -f in a default container succeeded:\n%s", out)
	}

	// The filter is the container's: exec'd processes get it too.
	mustDocker(t, e.Host, "run", "-d", "--name", "long", "busybox", "sleep", "1000")
	t.Cleanup(func() { docker(t, e.Host, "rm", "-f", "long") })
	if out := mustDocker(t, e.Host, "exec", "long", "grep", "^Seccomp:", "/proc/self/status"); !strings.Contains(out, "Seccomp:\t2") {
		t.Errorf("exec in a default container: %q", out)
	}
}

func TestSeccompCustomProfile(t *testing.T) {
	e := runProbeEngine(t)
	profile := filepath.Join(t.TempDir(), "no-mkdir.json")
	// Docker's format: everything allowed but mkdir, which fails with EPERM.
	err := os.WriteFile(profile, []byte(`{
	"defaultAction": "SCMP_ACT_ALLOW",
	"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := docker(t, e.Host, "run", "--rm", "--security-opt", "seccomp="+profile, "busybox", "mkdir", "/tmp/x")
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mkdir under a profile denying it: %v\n%s", err, out)
	}
	out = mustDocker(t, e.Host, "run", "--rm", "--security-opt", "seccomp="+profile, "probe", "/sysprobe", "mkdir", "add_key")
	mustContain(t, "probe under the custom profile", out, "mkdir: EPERM\n", "add_key: ok\n")
	if got := procStatusField(t, e, "Seccomp", "--security-opt", "seccomp="+profile); got != "2" {
		t.Errorf("custom profile: Seccomp %s, want 2", got)
	}
	// An explicit profile applies to a privileged container too.
	out, err = docker(t, e.Host, "run", "--rm", "--privileged", "--security-opt", "seccomp="+profile, "busybox", "mkdir", "/tmp/x")
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mkdir in a privileged container under a profile denying it: %v\n%s", err, out)
	}
	// Without the profile mkdir works.
	mustDocker(t, e.Host, "run", "--rm", "busybox", "mkdir", "/tmp/x")

	// The CLI sends the file's JSON; JSON that is not a profile is a 400 at create.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_SOMETIMES"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = docker(t, e.Host, "run", "--rm", "--security-opt", "seccomp="+bad, "busybox", "true")
	if exitCode(err) != 125 || !strings.Contains(out, "invalid --security-opt seccomp:") {
		t.Errorf("create with a bad profile: %v\n%s", err, out)
	}
	code, body := e.createRaw(t, `{"Image":"busybox","HostConfig":{"SecurityOpt":["seccomp={not json"]}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "Decoding seccomp profile failed") {
		t.Errorf("create with invalid JSON: %d %s", code, body)
	}
}

func TestSecurityOptions(t *testing.T) {
	e := runProbeEngine(t)

	if got := procStatusField(t, e, "NoNewPrivs"); got != "0" {
		t.Errorf("default: NoNewPrivs %s, want 0", got)
	}
	for _, opt := range []string{"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"} {
		if got := procStatusField(t, e, "NoNewPrivs", "--security-opt", opt); got != "1" {
			t.Errorf("%s: NoNewPrivs %s, want 1", opt, got)
		}
	}
	if got := procStatusField(t, e, "NoNewPrivs", "--security-opt", "no-new-privileges=false"); got != "0" {
		t.Errorf("no-new-privileges=false: NoNewPrivs %s, want 0", got)
	}

	// AppArmor and SELinux are not on this host: saying so is fine,
	// asking for a profile or a label is an error.
	mustDocker(t, e.Host, "run", "--rm", "--security-opt", "apparmor=unconfined", "--security-opt", "label=disable", "busybox", "true")
	for opt, want := range map[string]string{
		"bogus=1":             `invalid --security-opt 2: "bogus=1"`,
		"no-new-privileges=x": `invalid --security-opt 2: "no-new-privileges=x"`,
		"label=type:svirt_t":  `invalid --security-opt "label=type:svirt_t": engined does not apply SELinux labels`,
	} {
		out, err := docker(t, e.Host, "run", "--rm", "--security-opt", opt, "busybox", "true")
		if exitCode(err) != 125 || !strings.Contains(out, want) {
			t.Errorf("--security-opt %s: exit %d, want 125 and %q in:\n%s", opt, exitCode(err), want, out)
		}
	}
	if _, err := os.Stat("/sys/module/apparmor/parameters/enabled"); err != nil {
		out, err := docker(t, e.Host, "run", "--rm", "--security-opt", "apparmor=docker-default", "busybox", "true")
		if exitCode(err) != 125 || !strings.Contains(out, "AppArmor is not enabled on the host") {
			t.Errorf("apparmor profile: %v\n%s", err, out)
		}
	}
	// The CLI refuses an option without a value itself; the API answers
	// as dockerd does.
	code, body := e.createRaw(t, `{"Image":"busybox","HostConfig":{"SecurityOpt":["bogus"]}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `invalid --security-opt 1: \"bogus\"`) {
		t.Errorf("SecurityOpt bogus: %d %s", code, body)
	}
	if out, _ := docker(t, e.Host, "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("refused creates left containers: %q", out)
	}

	// systempaths=unconfined: nothing masked (/proc/interrupts is, by
	// default, and exists on every kernel), /proc/sys not read-only.
	if out := mustDocker(t, e.Host, "run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/interrupts; grep -c ' /proc/sys ro,' /proc/self/mountinfo; true"); out != "0\n1\n" {
		t.Errorf("default: /proc/interrupts masked and /proc/sys read-only expected, got %q", out)
	}
	out := mustDocker(t, e.Host, "run", "--rm", "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c",
		"wc -c < /proc/interrupts; grep -c -e ' /proc/interrupts ' -e ' /proc/sys ' /proc/self/mountinfo; true")
	if f := strings.Fields(out); len(f) != 2 || f[0] == "0" || f[1] != "0" {
		t.Errorf("systempaths=unconfined: want /proc/interrupts readable and no masked or read-only mounts, got %q", out)
	}
	mustDocker(t, e.Host, "create", "--name", "sp", "--security-opt", "systempaths=unconfined", "busybox")
	insp := mustDocker(t, e.Host, "inspect", "-f", "{{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}} {{json .HostConfig.SecurityOpt}}", "sp")
	if strings.TrimSpace(insp) != "[] [] null" {
		t.Errorf("inspect of a systempaths=unconfined container: %s", insp)
	}
	code, body = e.createRaw(t, `{"Image":"busybox","HostConfig":{"MaskedPaths":["/proc/kcore"]}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "MaskedPaths") {
		t.Errorf("custom MaskedPaths: %d %s", code, body)
	}

	// docker info says what containers get.
	var opts []string
	if err := json.Unmarshal([]byte(mustDocker(t, e.Host, "info", "--format", "{{json .SecurityOptions}}")), &opts); err != nil {
		t.Fatal(err)
	}
	want := []string{"name=seccomp,profile=builtin"}
	if isCgroup2Host() {
		want = append(want, "name=cgroupns")
	}
	if strings.Join(opts, " ") != strings.Join(want, " ") {
		t.Errorf("SecurityOptions = %q, want %q", opts, want)
	}
}

func isCgroup2Host() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// createRaw posts a container create body and returns the status and body.
func (e *engined) createRaw(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := unixClient(e.Sock).Post("http://engined/v1.51/containers/create", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	if _, err := io.Copy(b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.String()
}

// A profile whose default action kills the thread (SCMP_ACT_KILL) ends
// the init's main thread before it execs, while its other threads keep
// libcontainer's sync socket open: the start must fail, not hang, and the
// container must not be left starting. Several in a row, and engined
// still runs containers afterwards.
func TestSeccompKillThreadProfileFailsStart(t *testing.T) {
	e := runEngine(t)
	profile := filepath.Join(t.TempDir(), "kill.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_KILL"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, err = docker(t, e.Host, "run", "--rm", "--security-opt", "seccomp="+profile, "busybox", "echo", "hi")
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || strings.Contains(out, "hi") {
				t.Fatalf("run %d with a kill-thread profile: %v %q", i, err, out)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("run %d with a kill-thread profile hangs", i)
		}
	}
	if out := mustDocker(t, e.Host, "run", "--rm", "busybox", "echo", "ok"); out != "ok\n" {
		t.Errorf("a run after the failed ones: %q", out)
	}
	if ps := strings.TrimSpace(mustDocker(t, e.Host, "ps", "-aq")); ps != "" {
		t.Errorf("containers left: %q", ps)
	}
}
