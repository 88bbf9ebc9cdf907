package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/engineclient"
	"github.com/engined/engined/internal/sysinfo"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func uname(t *testing.T) (release, machine string) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
}

func mobyClient(t *testing.T, host string, opts ...client.Opt) *client.Client {
	t.Helper()
	c, err := client.New(append([]client.Opt{client.WithHost(host)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The official Go client pings, negotiates and decodes /version and /info.
func TestMobyClientSystem(t *testing.T) {
	e := startEngined(t, "--label", "team=core")
	ctx := context.Background()
	c := mobyClient(t, e.Host)

	ping, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatal(err)
	}
	if ping.APIVersion != "1.51" || ping.OSType != "linux" || ping.Experimental {
		t.Errorf("ping = %+v, want API 1.51, linux, not experimental", ping)
	}
	if ping.SwarmStatus == nil || ping.SwarmStatus.NodeState != "inactive" {
		t.Errorf("ping swarm status = %+v, want inactive", ping.SwarmStatus)
	}
	if got := c.ClientVersion(); got != "1.51" {
		t.Errorf("negotiated API version %q, want 1.51", got)
	}

	release, _ := uname(t)
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Platform.Name, "engined") || len(v.Components) == 0 || v.Components[0].Name != "Engine" {
		t.Fatalf("version platform/components = %+v / %+v", v.Platform, v.Components)
	}
	if v.APIVersion != "1.51" || v.MinAPIVersion != "1.24" || v.Os != "linux" || v.Arch != runtime.GOARCH || v.Components[0].Details["KernelVersion"] != release {
		t.Errorf("version = %+v", v)
	}

	res, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := res.Info
	host, err := sysinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	hostname, _ := os.Hostname()
	checks := []struct {
		name      string
		got, want any
	}{
		{"KernelVersion", info.KernelVersion, release},
		{"NCPU", info.NCPU, host.NCPU},
		{"MemTotal", info.MemTotal, host.MemTotal},
		{"DockerRootDir", info.DockerRootDir, e.DataRoot},
		{"OSType", info.OSType, "linux"},
		{"OperatingSystem", info.OperatingSystem, host.OperatingSystem},
		{"CgroupVersion", info.CgroupVersion, host.CgroupVersion},
		{"CgroupDriver", info.CgroupDriver, "cgroupfs"},
		{"Driver", info.Driver, "overlay2"},
		{"Name", info.Name, hostname},
		{"Containers", info.Containers, 0},
		{"Images", info.Images, 0},
		{"Swarm", string(info.Swarm.LocalNodeState), "inactive"},
		{"LoggingDriver", info.LoggingDriver, "json-file"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("info.%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if info.ID == "" || info.ServerVersion == "" || info.NGoroutines == 0 || info.NFd == 0 || info.SystemTime == "" {
		t.Errorf("info has empty fields: ID=%q ServerVersion=%q NGoroutines=%d NFd=%d SystemTime=%q", info.ID, info.ServerVersion, info.NGoroutines, info.NFd, info.SystemTime)
	}
	if len(info.Labels) != 1 || info.Labels[0] != "team=core" {
		t.Errorf("info.Labels = %v", info.Labels)
	}

	// The engine ID persists across restarts.
	e.stop()
	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	res2, err := mobyClient(t, e2.Host).Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Info.ID != info.ID {
		t.Errorf("engine ID changed across restart: %q then %q", info.ID, res2.Info.ID)
	}
}

// Our gRPC client calls the Engine service on the same socket the REST API
// is served on.
func TestGRPCOnSameSocket(t *testing.T) {
	e := startEngined(t)
	conn, err := engineclient.Dial(e.Host, engineclient.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v, err := conn.Engine.SystemVersion(context.Background(), &enginev1.SystemVersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	release, _ := uname(t)
	if v.GetApiVersion() != "1.51" || v.GetKernelVersion() != release || v.GetVersion() == "" {
		t.Errorf("gRPC SystemVersion = %v", v)
	}
	info, err := conn.Engine.SystemInfo(context.Background(), &enginev1.SystemInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetDockerRootDir() != e.DataRoot {
		t.Errorf("gRPC SystemInfo data root %q, want %q", info.GetDockerRootDir(), e.DataRoot)
	}

	// Our CLI shows the same.
	out, err := exec.Command(binDir+"/docker", "-H", e.Host, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("our docker version: %v\n%s", err, out)
	}
	mustContain(t, "our docker version", string(out), "Server: engined")
	// Laid out as the Docker CLI's: the values aligned after the labels.
	if !regexp.MustCompile(`(?m)^  API version:\s+1\.51 \(minimum version 1\.24\)$`).MatchString(string(out)) {
		t.Errorf("our docker version: no server API version line in:\n%s", out)
	}
	out, err = exec.Command(binDir+"/docker", "-H", e.Host, "info").CombinedOutput()
	if err != nil {
		t.Fatalf("our docker info: %v\n%s", err, out)
	}
	mustContain(t, "our docker info", string(out), "Kernel Version: "+release, "Docker Root Dir: "+e.DataRoot)
}

// The real docker CLI against engined.
func TestDockerCLIVersionInfo(t *testing.T) {
	e := startEngined(t)
	out, err := docker(t, e.Host, "version")
	if err != nil {
		t.Fatalf("docker version: %v\n%s", err, out)
	}
	mustContain(t, "docker version", out, "Server: engined", "API version:      1.51 (minimum version 1.24)", "OS/Arch:          linux/"+runtime.GOARCH)

	out, err = docker(t, e.Host, "version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
	if err != nil || strings.TrimSpace(out) != "1.51 linux" {
		t.Errorf("docker version --format = %q, %v", out, err)
	}

	release, arch := uname(t)
	out, err = docker(t, e.Host, "info")
	if err != nil {
		t.Fatalf("docker info: %v\n%s", err, out)
	}
	mustContain(t, "docker info", out, "Kernel Version: "+release, "Architecture: "+arch, "Docker Root Dir: "+e.DataRoot, "Storage Driver: overlay2", "Containers: 0")

	out, err = docker(t, e.Host, "info", "--format", "{{json .}}")
	if err != nil {
		t.Fatalf("docker info --format: %v\n%s", err, out)
	}
	var decoded map[string]any
	if err := json.Unmarshal([]byte(out), &decoded); err != nil {
		t.Fatalf("docker info json: %v\n%s", err, out)
	}
	if _, ok := decoded["NCPU"].(float64); !ok {
		t.Errorf("NCPU is not a number in %s", out)
	}
}
