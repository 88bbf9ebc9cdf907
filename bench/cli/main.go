// Command cli times one `docker run --rm busybox true` through engined's
// own CLI (bin/docker, gRPC) against the Docker CLI (REST, through the
// gateway) on the same engined, and `runc run` of the same root
// filesystem as a floor: what a container costs with no engine at all.
// The three take turns, run by run, so a change in the machine's load
// falls on all alike. runc's bundles have a network namespace with
// loopback only, so the engines are also timed with --network none; one
// has runc's default spec, the other the spec engined makes (Docker's
// seccomp profile, capabilities and masked paths): the same bundle.
//
//	go run ./bench/cli -engined ./bin/engined -cli ./bin/docker
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/engined/engined/bench/engines"
)

const dockerCLI = "/usr/local/bin/docker"

func main() {
	enginedBin := flag.String("engined", "./bin/engined", "engined binary")
	ourCLI := flag.String("cli", "./bin/docker", "engined's docker CLI")
	runs := flag.Int("runs", 20, "runs per client and network mode")
	flag.Parse()
	cliPath, err := filepath.Abs(*ourCLI)
	check(err)

	work, err := os.MkdirTemp("", "bench-cli-")
	check(err)
	defer os.RemoveAll(work)
	imgTar, err := engines.BusyboxTar(work)
	check(err)

	e, err := engines.Engined(work, *enginedBin, engines.Options{Netns: true})
	check(err)
	defer e.Stop()
	run(dockerCLI, e.Host, "load", "-i", imgTar)

	// The bundle: the image's files, as a container of it sees them.
	bundle := filepath.Join(work, "bundle")
	check(os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755))
	id := strings.TrimSpace(run(dockerCLI, e.Host, "create", "busybox"))
	exp := exec.Command("sh", "-c", fmt.Sprintf("%s -H %s export %s | tar -C %s -x", dockerCLI, e.Host, id, filepath.Join(bundle, "rootfs")))
	if out, err := exp.CombinedOutput(); err != nil {
		log.Fatalf("export: %v\n%s", err, out)
	}
	run(dockerCLI, e.Host, "rm", id)
	runc, err := exec.LookPath("runc")
	// The same rootfs in a second bundle with the spec engined gives a
	// --network none container (Docker's seccomp profile, capabilities
	// and masked paths): the "same bundle". runc's own default
	// spec has no seccomp filter, whose compilation is most of a start.
	sameBundle := filepath.Join(work, "engined-bundle")
	if err == nil {
		spec := exec.Command(runc, "spec")
		spec.Dir = bundle
		if out, err := spec.CombinedOutput(); err != nil {
			log.Fatalf("runc spec: %v\n%s", err, out)
		}
		setProcess(filepath.Join(bundle, "config.json"))
		enginedSpec(e, filepath.Join(bundle, "rootfs"), sameBundle)
	} else {
		fmt.Println("runc: not installed (apt-get install runc), engines only")
	}

	type client struct {
		name string
		cmd  func(i int, none bool) *exec.Cmd
	}
	clients := []client{
		{"bin/docker (gRPC)", func(_ int, none bool) *exec.Cmd { return dockerCmd(cliPath, e.Host, none) }},
		{"docker CLI (REST)", func(_ int, none bool) *exec.Cmd { return dockerCmd(dockerCLI, e.Host, none) }},
	}
	if runc != "" {
		clients = append(clients, client{"runc run (runc spec)", func(i int, _ bool) *exec.Cmd {
			return exec.Command(runc, "--root", filepath.Join(work, "runc"), "run", "--bundle", bundle, fmt.Sprintf("bench-%d", i))
		}}, client{"runc run (engined's spec)", func(i int, _ bool) *exec.Cmd {
			return exec.Command(runc, "--root", filepath.Join(work, "runc"), "run", "--bundle", sameBundle, fmt.Sprintf("bench-same-%d", i))
		}})
	}
	// Warm up.
	for _, c := range clients {
		for _, none := range []bool{false, true} {
			mustRun(c.cmd(-1, none))
		}
	}
	times := map[string][]time.Duration{}
	cpu := map[string][]time.Duration{} // the client process's own CPU time
	key := func(c string, none bool) string {
		if none {
			return c + ", --network none"
		}
		return c + ", default bridge"
	}
	for i := 0; i < *runs; i++ {
		for _, none := range []bool{false, true} {
			for _, c := range clients {
				if strings.HasPrefix(c.name, "runc run") && !none {
					continue
				}
				start := time.Now()
				cmd := c.cmd(i, none)
				mustRun(cmd)
				times[key(c.name, none)] = append(times[key(c.name, none)], time.Since(start))
				cpu[key(c.name, none)] = append(cpu[key(c.name, none)], cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			}
		}
	}
	fmt.Printf("load average: %s", loadAvg())
	fmt.Printf("docker run --rm busybox true against one engined, and runc run of the same rootfs (%d runs each, taking turns)\n", *runs)
	for _, none := range []bool{false, true} {
		for _, c := range clients {
			ts, ok := times[key(c.name, none)]
			if !ok {
				continue
			}
			fmt.Printf("  %-42s median %8v  min %8v  max %8v   client CPU median %7v\n", key(c.name, none), ms(engines.Median(ts)), ms(slices.Min(ts)), ms(slices.Max(ts)),
				ms(engines.Median(cpu[key(c.name, none)])))
		}
	}
}

// enginedSpec writes a bundle at dir running `true` in rootfs with the
// OCI spec engined made for a --network none container, less what names
// that container's own files (its hosts, hostname and resolv.conf binds,
// its cgroup).
func enginedSpec(e *engines.Engine, rootfs, dir string) {
	id := strings.TrimSpace(run(dockerCLI, e.Host, "run", "-d", "--network", "none", "busybox", "sleep", "3600"))
	defer run(dockerCLI, e.Host, "rm", "-f", id)
	b, err := os.ReadFile(filepath.Join(e.ExecRoot, "containers", id, "config.json"))
	check(err)
	var spec map[string]any
	check(json.Unmarshal(b, &spec))
	spec["root"] = map[string]any{"path": rootfs}
	p := spec["process"].(map[string]any)
	p["terminal"] = false
	p["args"] = []string{"true"}
	delete(spec, "hooks")
	linux := spec["linux"].(map[string]any)
	delete(linux, "cgroupsPath")
	var mounts []any
	for _, m := range spec["mounts"].([]any) {
		if src, _ := m.(map[string]any)["source"].(string); strings.Contains(src, id) {
			continue
		}
		mounts = append(mounts, m)
	}
	spec["mounts"] = mounts
	if _, ok := linux["seccomp"]; !ok {
		log.Fatalf("engined's spec has no seccomp profile: %s", b)
	}
	b, err = json.MarshalIndent(spec, "", "  ")
	check(err)
	check(os.MkdirAll(dir, 0o755))
	check(os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))
}

func dockerCmd(bin, host string, none bool) *exec.Cmd {
	args := []string{"-H", host, "run", "--rm"}
	if none {
		args = append(args, "--network", "none")
	}
	cmd := exec.Command(bin, append(args, "busybox", "true")...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+os.TempDir()+"/bench-docker-config")
	return cmd
}

// setProcess makes runc's default spec run `true` without a terminal.
func setProcess(path string) {
	b, err := os.ReadFile(path)
	check(err)
	var spec map[string]any
	check(json.Unmarshal(b, &spec))
	p := spec["process"].(map[string]any)
	p["terminal"] = false
	p["args"] = []string{"true"}
	b, err = json.MarshalIndent(spec, "", "  ")
	check(err)
	check(os.WriteFile(path, b, 0o644))
}

func run(bin, host string, args ...string) string {
	cmd := exec.Command(bin, append([]string{"-H", host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+os.TempDir()+"/bench-docker-config")
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("docker %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func mustRun(cmd *exec.Cmd) {
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}
