package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// postJSON sends a JSON body to engined's REST API.
func (e *engined) postJSON(path, body string) (int, string) {
	e.t.Helper()
	resp, err := unixClient(e.Sock).Post("http://engined"+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// inspectJSON is GET /containers/{id}/json as a generic document.
func (e *engined) inspectJSON(id string) map[string]any {
	e.t.Helper()
	code, _, body := e.get("/containers/" + id + "/json")
	if code != http.StatusOK {
		e.t.Fatalf("inspect %s: %d %s", id, code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// TestCreateNothingIgnored walks the create request's fields (Config,
// HostConfig with its Resources, NetworkingConfig, from the v1.51
// schema), each set to a value that is not its default: either inspect
// shows it applied or the create is a 400 that names it.
func TestCreateNothingIgnored(t *testing.T) {
	e := runEngine(t)
	type tc struct {
		name    string
		config  string // extra Config members
		host    string // HostConfig members
		network string // NetworkingConfig
		refused string // a 400 naming this, or
		shown   string // inspect (JSON path into the document) ...
		want    string // ... showing this (JSON)
	}
	cases := []tc{
		// Config
		{name: "Hostname", config: `"Hostname":"h1"`, shown: "Config.Hostname", want: `"h1"`},
		{name: "Domainname", config: `"Domainname":"example.org"`, shown: "Config.Domainname", want: `"example.org"`},
		{name: "User", config: `"User":"nobody"`, shown: "Config.User", want: `"nobody"`},
		{name: "Env", config: `"Env":["A=1"]`, shown: "Config.Env", want: `["A=1"]`},
		{name: "WorkingDir", config: `"WorkingDir":"/tmp"`, shown: "Config.WorkingDir", want: `"/tmp"`},
		{name: "Labels", config: `"Labels":{"a":"b"}`, shown: "Config.Labels", want: `{"a":"b"}`},
		{name: "StopSignal", config: `"StopSignal":"SIGUSR1"`, shown: "Config.StopSignal", want: `"SIGUSR1"`},
		{name: "StopTimeout", config: `"StopTimeout":3`, shown: "Config.StopTimeout", want: `3`},
		{name: "Cmd string", config: `"Cmd":"echo hi"`, shown: "Config.Cmd", want: `["echo hi"]`},
		{name: "Volumes", config: `"Volumes":{"/data":{}}`, shown: "Config.Volumes", want: `{"/data":{}}`},
		{name: "Volumes relative", config: `"Volumes":{"data":{}}`, refused: "mount path must be absolute"},
		{name: "Healthcheck", config: `"Healthcheck":{"Test":["CMD","true"],"Interval":2000000000,"Retries":4}`, shown: "Config.Healthcheck",
			want: `{"Interval":2000000000,"Retries":4,"Test":["CMD","true"]}`},
		{name: "MacAddress", config: `"MacAddress":"02:42:ac:11:00:02"`, refused: "Config.MacAddress"},
		{name: "OnBuild", config: `"OnBuild":["RUN true"]`, refused: "Config.OnBuild"},
		{name: "Shell", config: `"Shell":["/bin/sh","-c"]`, refused: "Config.Shell"},
		{name: "ArgsEscaped", config: `"ArgsEscaped":true`, refused: "Config.ArgsEscaped"},
		// HostConfig
		{name: "NetworkMode bridge", host: `"NetworkMode":"bridge"`, shown: "HostConfig.NetworkMode", want: `"bridge"`},
		{name: "NetworkMode host", host: `"NetworkMode":"host"`, shown: "HostConfig.NetworkMode", want: `"host"`},
		{name: "NetworkMode default", host: `"NetworkMode":"default"`, shown: "HostConfig.NetworkMode", want: `"bridge"`},
		{name: "NetworkMode container", host: `"NetworkMode":"container:x"`, shown: "HostConfig.NetworkMode", want: `"container:x"`},
		{name: "NetworkMode container empty", host: `"NetworkMode":"container:"`, refused: "invalid container format container:"},
		{name: "PortBindings", host: `"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}`, shown: "HostConfig.PortBindings", want: `{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}`},
		{name: "PortBindings bad", host: `"PortBindings":{"80/tcp":[{"HostPort":"x"}]}`, refused: `invalid port specification: \"x\"`},
		{name: "PublishAllPorts", host: `"PublishAllPorts":true`, shown: "HostConfig.PublishAllPorts", want: `true`},
		{name: "Links", host: `"Links":["nosuch:b"]`, refused: "could not get container for nosuch"},
		{name: "ExposedPorts", config: `"ExposedPorts":{"53/udp":{},"80":{}}`, shown: "Config.ExposedPorts", want: `{"53/udp":{},"80/tcp":{}}`},
		{name: "VolumesFrom", host: `"VolumesFrom":[""]`, refused: "volumes-from specification cannot be an empty string"},
		{name: "VolumesFrom bad mode", host: `"VolumesFrom":["x:rshared"]`, refused: "invalid mode: rshared"},
		{name: "VolumeDriver local", host: `"VolumeDriver":"local"`, shown: "HostConfig.VolumeDriver", want: `"local"`},
		{name: "VolumeDriver other", host: `"VolumeDriver":"flocker"`, refused: "HostConfig.VolumeDriver"},
		{name: "Mounts bind", host: `"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/x"}]`, shown: "HostConfig.Mounts", want: `[{"Source":"/tmp","Target":"/x","Type":"bind"}]`},
		{name: "Mounts bind missing", host: `"Mounts":[{"Type":"bind","Source":"/nonexistent","Target":"/x"}]`, refused: "bind source path does not exist: /nonexistent"},
		{name: "Mounts volume", host: `"Mounts":[{"Type":"volume","Source":"vol","Target":"/x","VolumeOptions":{"NoCopy":true}}]`, shown: "HostConfig.Mounts", want: `[{"Source":"vol","Target":"/x","Type":"volume","VolumeOptions":{"NoCopy":true}}]`},
		{name: "Mounts image", host: `"Mounts":[{"Type":"image","Source":"busybox","Target":"/x"}]`, refused: "not supported"},
		{name: "Mounts tmpfs", host: `"Mounts":[{"Type":"tmpfs","Target":"/x","TmpfsOptions":{"SizeBytes":1048576}}]`,
			shown: "HostConfig.Mounts", want: `[{"Target":"/x","TmpfsOptions":{"SizeBytes":1048576},"Type":"tmpfs"}]`},
		{name: "Mounts tmpfs relative", host: `"Mounts":[{"Type":"tmpfs","Target":"x"}]`, refused: "mount path must be absolute"},
		{name: "Tmpfs", host: `"Tmpfs":{"/run":"size=1m"}`, shown: "HostConfig.Tmpfs", want: `{"/run":"size=1m"}`},
		{name: "Tmpfs relative", host: `"Tmpfs":{"run":""}`, refused: "mount path must be absolute"},
		{name: "Binds onto /", host: `"Binds":["/tmp:/"]`, refused: "destination can't be '/'"},
		{name: "Binds named volume", host: `"Binds":["vol:/data"]`, shown: "HostConfig.Binds", want: `["vol:/data"]`},
		{name: "Binds bad mode", host: `"Binds":["vol:/data:rw,ro"]`, refused: "invalid mode: rw,ro"},
		{name: "Annotations", host: `"Annotations":{"x":"y"}`, shown: "HostConfig.Annotations", want: `{"x":"y"}`},
		{name: "CgroupnsMode", host: `"CgroupnsMode":"private"`, shown: "HostConfig.CgroupnsMode", want: `"private"`},
		{name: "Dns", host: `"Dns":["1.1.1.1"]`, shown: "HostConfig.Dns", want: `["1.1.1.1"]`},
		{name: "DnsOptions", host: `"DnsOptions":["ndots:2"]`, shown: "HostConfig.DnsOptions", want: `["ndots:2"]`},
		{name: "DnsSearch", host: `"DnsSearch":["example.org"]`, shown: "HostConfig.DnsSearch", want: `["example.org"]`},
		{name: "ExtraHosts", host: `"ExtraHosts":["a:10.1.2.3"]`, shown: "HostConfig.ExtraHosts", want: `["a:10.1.2.3"]`},
		{name: "GroupAdd", host: `"GroupAdd":["10"]`, shown: "HostConfig.GroupAdd", want: `["10"]`},
		{name: "IpcMode", host: `"IpcMode":"shareable"`, shown: "HostConfig.IpcMode", want: `"shareable"`},
		{name: "IpcMode bad", host: `"IpcMode":"bogus"`, refused: "invalid IPC mode: bogus"},
		{name: "Cgroup", host: `"Cgroup":"container:x"`, refused: "HostConfig.Cgroup"},
		{name: "OomScoreAdj", host: `"OomScoreAdj":500`, shown: "HostConfig.OomScoreAdj", want: `500`},
		{name: "PidMode", host: `"PidMode":"host"`, shown: "HostConfig.PidMode", want: `"host"`},
		{name: "UTSMode", host: `"UTSMode":"host"`, shown: "HostConfig.UTSMode", want: `"host"`},
		{name: "UsernsMode", host: `"UsernsMode":"private"`, refused: "HostConfig.UsernsMode"},
		{name: "StorageOpt", host: `"StorageOpt":{"size":"1G"}`, refused: "HostConfig.StorageOpt"},
		{name: "Runtime", host: `"Runtime":"runc"`, shown: "HostConfig.Runtime", want: `"runc"`},
		{name: "Runtime other", host: `"Runtime":"kata"`, refused: "unknown or invalid runtime name: kata"},
		{name: "Isolation", host: `"Isolation":"hyperv"`, refused: "invalid isolation 'hyperv' on linux"},
		{name: "LogConfig", host: `"LogConfig":{"Type":"json-file","Config":{"max-size":"10mb"}}`, shown: "HostConfig.LogConfig", want: `{"Config":{"max-size":"10mb"},"Type":"json-file"}`},
		{name: "LogConfig syslog", host: `"LogConfig":{"Type":"syslog"}`, refused: "HostConfig.LogConfig.Type"},
		{name: "MaskedPaths", host: `"MaskedPaths":["/proc/x"],"ReadonlyPaths":[]`, refused: "MaskedPaths"},
		{name: "Umask", host: `"Umask":18`, refused: "HostConfig.Umask"},
		// Resources
		{name: "CgroupParent", host: `"CgroupParent":"/x"`, refused: "HostConfig.CgroupParent"},
		{name: "BlkioWeight", host: `"BlkioWeight":300`, refused: "HostConfig.BlkioWeight"},
		{name: "BlkioDeviceReadBps", host: `"BlkioDeviceReadBps":[{"Path":"/dev/sda","Rate":1}]`, refused: "HostConfig.BlkioDeviceReadBps"},
		{name: "CpuRealtimeRuntime", host: `"CpuRealtimeRuntime":1000`, refused: "HostConfig.CpuRealtimeRuntime"},
		{name: "Devices", host: `"Devices":[{"PathOnHost":"/dev/null","PathInContainer":"/dev/xnull","CgroupPermissions":"rwm"}]`,
			shown: "HostConfig.Devices", want: `[{"CgroupPermissions":"rwm","PathInContainer":"/dev/xnull","PathOnHost":"/dev/null"}]`},
		{name: "DeviceCgroupRules", host: `"DeviceCgroupRules":["c 1:3 rwm"]`, shown: "HostConfig.DeviceCgroupRules", want: `["c 1:3 rwm"]`},
		{name: "DeviceCgroupRules bad", host: `"DeviceCgroupRules":["x"]`, refused: "invalid device cgroup rule format"},
		{name: "DeviceRequests", host: `"DeviceRequests":[{"Count":-1,"Capabilities":[["gpu"]]}]`, refused: "HostConfig.DeviceRequests"},
		{name: "MemorySwappiness", host: `"MemorySwappiness":10`, refused: "HostConfig.MemorySwappiness"},
		{name: "OomKillDisable", host: `"OomKillDisable":true`, refused: "HostConfig.OomKillDisable"},
		{name: "CpuCount", host: `"CpuCount":1`, refused: "HostConfig.CpuCount"},
		{name: "IOMaximumIOps", host: `"IOMaximumIOps":1`, refused: "HostConfig.IOMaximumIOps"},
		// NetworkingConfig
		{name: "EndpointsConfig", network: `{"EndpointsConfig":{"bridge":{"DriverOpts":{"a":"b"}}}}`, refused: "NetworkingConfig.EndpointsConfig"},
		{name: "Aliases on the default bridge", host: `"NetworkMode":"bridge"`, network: `{"EndpointsConfig":{"bridge":{"Aliases":["a"]}}}`, refused: "network-scoped aliases are only supported for user-defined networks"},
		{name: "EndpointsConfig default", network: `{"EndpointsConfig":{"default":{"Aliases":null}}}`, shown: "HostConfig.NetworkMode", want: `"bridge"`},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			body := `{"Image":"busybox","Cmd":["true"]`
			if c.config != "" {
				body += "," + c.config
			}
			body += `,"HostConfig":{` + c.host + `}`
			if c.network != "" {
				body += `,"NetworkingConfig":` + c.network
			}
			body += "}"
			code, resp := e.postJSON("/containers/create", body)
			if c.refused != "" {
				if code != http.StatusBadRequest || !strings.Contains(resp, c.refused) {
					t.Errorf("%s: %d %s, want a 400 naming %q", body, code, resp, c.refused)
				}
				return
			}
			if code != http.StatusCreated {
				t.Fatalf("%s: %d %s", body, code, resp)
			}
			var created struct{ Id string }
			json.Unmarshal([]byte(resp), &created)
			var v any = e.inspectJSON(created.Id)
			for _, k := range strings.Split(c.shown, ".") {
				v = v.(map[string]any)[k]
			}
			got, _ := json.Marshal(v)
			if string(got) != c.want {
				t.Errorf("%s: inspect %s = %s, want %s", body, c.shown, got, c.want)
			}
		})
	}
}

// What the cheap options do, as seen from inside the container.
func TestCreateOptionsApplied(t *testing.T) {
	e := runEngine(t)
	out := mustDocker(t, e.Host, "run", "--rm", "--add-host", "db.example:10.9.8.7", "--add-host", "gw:host-gateway",
		"--dns", "9.9.9.9", "--dns-search", "corp.example", "--dns-option", "ndots:3", "busybox",
		"sh", "-c", "cat /etc/hosts /etc/resolv.conf")
	mustContain(t, "hosts and resolv.conf", out, "10.9.8.7\tdb.example\n", "\tgw\n", "nameserver 9.9.9.9\n", "search corp.example\n", "options ndots:3\n")

	out = mustDocker(t, e.Host, "run", "--rm", "--tmpfs", "/scratch:size=2m,mode=1770", "--mount", "type=tmpfs,destination=/m,tmpfs-size=3m,tmpfs-mode=0700",
		"busybox", "sh", "-c", "grep -E ' /(scratch|m) ' /proc/mounts; stat -c '%n %a' /scratch /m")
	mustContain(t, "tmpfs", out, "tmpfs /scratch tmpfs rw,nosuid,nodev,noexec", "size=2048k", "tmpfs /m tmpfs rw,nosuid,nodev,noexec", "size=3072k",
		"/scratch 1770", "/m 700")

	out = mustDocker(t, e.Host, "run", "--rm", "--device", "/dev/null:/dev/xnull", "busybox", "sh", "-c", "echo x > /dev/xnull && stat -c '%t:%T' /dev/xnull")
	mustContain(t, "device", out, "1:3")
	// Without the device's cgroup rule a node of it cannot be opened; with
	// --device-cgroup-rule it can.
	if out, err := docker(t, e.Host, "run", "--rm", "busybox", "sh", "-c", "mknod /dev/m c 1 11 && echo x > /dev/m"); err == nil {
		t.Errorf("opening /dev/kmsg's node without a rule worked:\n%s", out)
	}
	mustDocker(t, e.Host, "run", "--rm", "--device-cgroup-rule", "c 1:11 w", "busybox", "sh", "-c", "mknod /dev/m c 1 11 && echo x > /dev/m")

	out = mustDocker(t, e.Host, "run", "--rm", "--group-add", "10", "--group-add", "4242", "busybox", "id", "-G")
	mustContain(t, "group-add", out, " 10", " 4242")

	out = mustDocker(t, e.Host, "run", "--rm", "--oom-score-adj", "321", "busybox", "cat", "/proc/self/oom_score_adj")
	mustContain(t, "oom-score-adj", out, "321")

	// The host's namespaces.
	hostNet := mustReadlink(t, "/proc/self/ns/net")
	hostPid := mustReadlink(t, "/proc/self/ns/pid")
	hostUTS := mustReadlink(t, "/proc/self/ns/uts")
	out = mustDocker(t, e.Host, "run", "--rm", "--network", "host", "--pid", "host", "--uts", "host", "busybox",
		"sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/pid; readlink /proc/self/ns/uts; hostname")
	mustContain(t, "host namespaces", out, hostNet, hostPid, hostUTS, mustHostname(t))

	hostCgroup := mustReadlink(t, "/proc/self/ns/cgroup")
	out = mustDocker(t, e.Host, "run", "--rm", "--cgroupns", "private", "--ipc", "none", "busybox", "sh", "-c", "readlink /proc/self/ns/cgroup; ls -d /dev/shm || echo no-shm")
	if strings.Contains(out, hostCgroup) || !strings.Contains(out, "no-shm") {
		t.Errorf("--cgroupns private --ipc none:\n%s", out)
	}
	hostIPC := mustReadlink(t, "/proc/self/ns/ipc")
	out = mustDocker(t, e.Host, "run", "--rm", "--ipc", "host", "busybox", "sh", "-c", "readlink /proc/self/ns/ipc")
	mustContain(t, "--ipc host", out, hostIPC)

	// Another container's PID and IPC namespaces.
	mustDocker(t, e.Host, "run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sleep", "600")
	out = mustDocker(t, e.Host, "run", "--rm", "--pid", "container:donor", "--ipc", "container:donor", "busybox", "sh", "-c", "ps -o comm; readlink /proc/self/ns/ipc")
	donorIPC := strings.TrimSpace(mustDocker(t, e.Host, "exec", "donor", "sh", "-c", "readlink /proc/self/ns/ipc"))
	mustContain(t, "container namespaces", out, "sleep", donorIPC)
	mustDocker(t, e.Host, "run", "-d", "--name", "private", "busybox", "sleep", "600")
	if out, err := docker(t, e.Host, "run", "--rm", "--ipc", "container:private", "busybox", "true"); err == nil || !strings.Contains(out, "non-shareable IPC") {
		t.Errorf("joining a private IPC namespace: %v\n%s", err, out)
	}
	mustDocker(t, e.Host, "rm", "-f", "donor", "private")
	mustDocker(t, e.Host, "create", "--name", "stopped", "busybox", "true")
	if out, err := docker(t, e.Host, "run", "--rm", "--pid", "container:stopped", "busybox", "true"); err == nil || !strings.Contains(out, "cannot join PID of a non running container: stopped") {
		t.Errorf("joining a stopped container's PID namespace: %v\n%s", err, out)
	}

	// --log-driver none keeps no logs, and docker logs says so.
	mustDocker(t, e.Host, "run", "--name", "nolog", "--log-driver", "none", "busybox", "echo", "hi")
	if out, err := docker(t, e.Host, "logs", "nolog"); err == nil || !strings.Contains(out, "configured logging driver does not support reading") {
		t.Errorf("logs of a none-driver container: %v\n%s", err, out)
	}
}

// Create refuses what dockerd refuses at create, with its messages.
func TestCreateValidation(t *testing.T) {
	e := runEngine(t)
	cases := []struct{ body, want string }{
		{`"HostConfig":{"Memory":1}`, "Minimum memory limit allowed is 6MB"},
		{`"HostConfig":{"CpuShares":1}`, "the minimum allowed cpu-shares is 2"},
		{`"HostConfig":{"CpusetCpus":"999"}`, "Requested CPUs are not available - requested 999"},
		{`"HostConfig":{"NanoCpus":100000}`, "range of CPUs is from 0.01 to"},
		{`"HostConfig":{"NanoCpus":1}`, "range of CPUs is from 0.01 to"},
		{`"HostConfig":{"OomScoreAdj":5000}`, "Invalid value 5000, range for oom score adj is [-1000, 1000]"},
		{`"HostConfig":{"Binds":["/tmp:/"]}`, "destination can't be '/'"},
		{`"Env":["=x"]`, "invalid environment variable: =x"},
		{`"Healthcheck":{"Test":["CMD","true"],"Interval":-1}`, "Interval in Healthcheck cannot be less than 1ms"},
		{`"Healthcheck":{"Test":["CMD","true"],"Timeout":100}`, "Timeout in Healthcheck cannot be less than 1ms"},
		{`"Healthcheck":{"Test":["CMD","true"],"Retries":-1}`, "Retries in Healthcheck cannot be negative"},
		{`"Healthcheck":{"Test":["CMD","true"],"StartPeriod":999999}`, "StartPeriod in Healthcheck cannot be less than 1ms"},
		{`"Healthcheck":{"Test":["CMD","true"],"StartInterval":-5}`, "StartInterval in Healthcheck cannot be less than 1ms"},
		{`"Healthcheck":{"Test":["BOGUS","true"]}`, "unknown Healthcheck type 'BOGUS'"},
		{`"Healthcheck":{"Test":["CMD"]}`, "Healthcheck CMD needs a command"},
		{`"HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-size":"ten"}}}`, "invalid value for max-size: ten"},
		{`"HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-size":"1m","max-file":"x"}}}`, "invalid value for max-file: x"},
		{`"HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":-1}}`, "maximum retry count can only be used with 'on-failure' and cannot be negative"},
		{`"HostConfig":{"RestartPolicy":{"Name":"sometimes"}}`, "invalid restart policy: unknown policy 'sometimes'"},
	}
	for _, c := range cases {
		code, resp := e.postJSON("/containers/create", `{"Image":"busybox","Cmd":["true"],`+c.body+`}`)
		if code != http.StatusBadRequest || !strings.Contains(resp, c.want) {
			t.Errorf("%s: %d %s, want 400 %q", c.body, code, resp, c.want)
		}
	}
	// go-units sizes: 10mb and 1.5m are sizes, not 0.
	for _, size := range []string{"10mb", "1.5m"} {
		code, resp := e.postJSON("/containers/create", `{"Image":"busybox","Cmd":["true"],"HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-size":"`+size+`","max-file":"2"}}}}`)
		if code != http.StatusCreated {
			t.Errorf("max-size %s: %d %s", size, code, resp)
		}
	}

	mustDocker(t, e.Host, "run", "-d", "--name", "sleeper", "busybox", "sleep", "600")
	if code, resp := e.postJSON("/containers/sleeper/kill?signal=999", ""); code != http.StatusBadRequest || !strings.Contains(resp, "Invalid signal: 999") {
		t.Errorf("kill -s 999: %d %s", code, resp)
	}
	if code, resp := e.postJSON("/containers/sleeper/rename?name=sleeper", ""); code != http.StatusBadRequest || !strings.Contains(resp, "Renaming a container with the same name as its current name") {
		t.Errorf("rename to its own name: %d %s", code, resp)
	}
	// docker update: the same limits, and nothing it cannot change.
	for body, want := range map[string]string{`{"Memory":1}`: "Minimum memory limit allowed is 6MB", `{"BlkioWeight":300}`: "UpdateConfig.BlkioWeight"} {
		if code, resp := e.postJSON("/containers/sleeper/update", body); code != http.StatusBadRequest || !strings.Contains(resp, want) {
			t.Errorf("update %s: %d %s, want 400 %q", body, code, resp, want)
		}
	}
	mustDocker(t, e.Host, "rm", "-f", "sleeper")
}

// Generated names never run out: 2,000 unnamed containers.
func TestGeneratedNames(t *testing.T) {
	e := runEngine(t)
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	const n, workers = 2000, 8
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				if _, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"true"}}}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d creates failed, the first: %v", len(errs), errs[0])
	}
	_, _, body := e.get("/containers/json?all=1")
	var list []struct{ Names []string }
	json.Unmarshal([]byte(body), &list)
	names := map[string]bool{}
	for _, l := range list {
		names[l.Names[0]] = true
	}
	if len(list) != n || len(names) != n {
		t.Errorf("%d containers with %d names, want %d", len(list), len(names), n)
	}
}

// docker ps --filter before/since/name as dockerd.
func TestListFilters(t *testing.T) {
	e := runEngine(t)
	for _, n := range []string{"first", "second", "third", "fourth"} {
		mustDocker(t, e.Host, "create", "--name", n, "busybox", "true")
	}
	ps := func(filter string) string {
		return strings.Join(strings.Fields(mustDocker(t, e.Host, "ps", "-a", "--format", "{{.Names}}", "--filter", filter)), " ")
	}
	for filter, want := range map[string]string{
		"before=third": "second first", "since=second": "fourth third", "name=^/?(first|third)$": "third first",
		"name=ir": "third first", "name=/second": "second",
	} {
		if got := ps(filter); got != want {
			t.Errorf("--filter %s: %q, want %q", filter, got, want)
		}
	}
	if out, err := docker(t, e.Host, "ps", "--filter", "before=nosuch"); err == nil || !strings.Contains(out, "No such container: nosuch") {
		t.Errorf("before a missing container: %v %s", err, out)
	}
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	out, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// docker stats shows the host's memory as the limit of a container
// without one (not 8EiB).
func TestStatsUnlimitedMemory(t *testing.T) {
	e := runEngine(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "free", "busybox", "sleep", "600")
	out := mustDocker(t, e.Host, "stats", "--no-stream", "--format", "{{.MemUsage}}", "free")
	var total int64
	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(meminfo), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			total = kb << 10
		}
	}
	if want := units.BytesSize(float64(total)); !strings.HasSuffix(strings.TrimSpace(out), "/ "+want) {
		t.Errorf("docker stats MemUsage = %q, want the limit %s", out, want)
	}
	mustDocker(t, e.Host, "rm", "-f", "free")
}

// docker rmi of a repository's last tag removes its digest references,
// as dockerd does, even while another repository keeps the image.
func TestRmiLastTagDropsDigests(t *testing.T) {
	e := runEngine(t)
	if out := mustDocker(t, e.Host, "image", "inspect", "-f", "{{json .RepoDigests}}", "busybox"); !strings.Contains(out, "busybox@sha256:") {
		t.Fatalf("pulled busybox has no digest reference: %s", out)
	}
	mustDocker(t, e.Host, "tag", "busybox", "mine:v1")
	out := mustDocker(t, e.Host, "rmi", "busybox")
	mustContain(t, "rmi output", out, "Untagged: busybox:latest", "Untagged: busybox@sha256:")
	if out := mustDocker(t, e.Host, "image", "inspect", "-f", "{{json .RepoDigests}}", "mine:v1"); strings.Contains(out, "busybox@") {
		t.Errorf("digest reference of the removed repository left: %s", out)
	}
}
