package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs/validate"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const testID = "0123456789abcdef0123456789abcdef"

// base is a minimal valid configuration: an empty rootfs and a command.
func base(t *testing.T) Options {
	t.Helper()
	return Options{ID: testID, Rootfs: t.TempDir(), ImageCmd: []string{"/bin/sh"}}
}

func mustSpec(t *testing.T, o Options) *specs.Spec {
	t.Helper()
	s, err := Spec(o)
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	return s
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		imgEP, imgCmd, ep, cmd []string
		want                   []string
	}{
		{name: "image entrypoint and cmd", imgEP: []string{"/ep", "-x"}, imgCmd: []string{"a"}, want: []string{"/ep", "-x", "a"}},
		{name: "image cmd only", imgCmd: []string{"/bin/sh", "-c", "true"}, want: []string{"/bin/sh", "-c", "true"}},
		{name: "cmd overrides image cmd, keeps entrypoint", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, cmd: []string{"b"}, want: []string{"/ep", "b"}},
		{name: "entrypoint overrides both", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, ep: []string{"/x"}, want: []string{"/x"}},
		{name: "entrypoint and cmd", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, ep: []string{"/x"}, cmd: []string{"b"}, want: []string{"/x", "b"}},
		{name: "empty entrypoint clears image's", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, ep: []string{}, want: []string{"a"}},
		{name: "empty entrypoint with cmd", imgEP: []string{"/ep"}, ep: []string{}, cmd: []string{"/c"}, want: []string{"/c"}},
		{name: "CLI --entrypoint empty string", imgEP: []string{"/ep"}, ep: []string{""}, cmd: []string{"/c"}, want: []string{"/c"}},
		{name: "nothing", want: nil},
		{name: "cleared entrypoint and no cmd", imgEP: []string{"/ep"}, ep: []string{}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.ImageEntrypoint, o.ImageCmd, o.Entrypoint, o.Cmd = tc.imgEP, tc.imgCmd, tc.ep, tc.cmd
			s, err := Spec(o)
			if tc.want == nil {
				if err == nil || err.Error() != "no command specified" {
					t.Fatalf("err = %v, want no command specified", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, tc.want) {
				t.Fatalf("Args = %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, tc := range []struct {
		name          string
		image, env    []string
		tty           bool
		hostname      string
		want          []string
		passwdForRoot string
	}{
		{name: "defaults", want: []string{path, "HOSTNAME=0123456789ab", "HOME=/"}},
		{name: "tty", tty: true, hostname: "web", want: []string{path, "HOSTNAME=web", "TERM=xterm", "HOME=/"}},
		{
			name:  "container wins by key, bare key unsets",
			image: []string{"PATH=/opt/bin", "A=1", "B=2", "C=3"},
			env:   []string{"B=20", "D=4", "C", "A=1=one"},
			want:  []string{"PATH=/opt/bin", "HOSTNAME=0123456789ab", "A=1=one", "B=20", "D=4", "HOME=/"},
		},
		{name: "image overrides HOSTNAME and TERM", image: []string{"HOSTNAME=img", "TERM=dumb"}, tty: true, want: []string{path, "HOSTNAME=img", "TERM=dumb", "HOME=/"}},
		{name: "HOME from container", env: []string{"HOME=/data"}, want: []string{path, "HOSTNAME=0123456789ab", "HOME=/data"}},
		{name: "empty HOME is filled", image: []string{"HOME="}, passwdForRoot: "/root", want: []string{path, "HOSTNAME=0123456789ab", "HOME=/root"}},
		{name: "HOME from passwd", passwdForRoot: "/root", want: []string{path, "HOSTNAME=0123456789ab", "HOME=/root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.ImageEnv, o.Env, o.Tty, o.Hostname = tc.image, tc.env, tc.tty, tc.hostname
			if tc.passwdForRoot != "" {
				writeFile(t, o.Rootfs, "etc/passwd", "root:x:0:0:root:"+tc.passwdForRoot+":/bin/sh\n")
			}
			s := mustSpec(t, o)
			if !slices.Equal(s.Process.Env, tc.want) {
				t.Fatalf("Env = %q\nwant  %q", s.Process.Env, tc.want)
			}
			if s.Process.Terminal != tc.tty {
				t.Fatalf("Terminal = %v", s.Process.Terminal)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	defaults := DefaultCapabilities()
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		wantErr    string
	}{
		{name: "default", want: defaults},
		{name: "add short lower-case name", add: []string{"net_admin"}, want: append(slices.Clone(defaults), "CAP_NET_ADMIN")},
		{name: "add CAP_ name, twice", add: []string{"CAP_SYS_PTRACE", "sys_ptrace"}, want: append(slices.Clone(defaults), "CAP_SYS_PTRACE")},
		{name: "add a default again", add: []string{"CHOWN"}, want: defaults},
		{name: "drop", drop: []string{"chown", "CAP_NET_RAW"}, want: without(defaults, "CAP_CHOWN", "CAP_NET_RAW")},
		{name: "add wins over drop", add: []string{"KILL"}, drop: []string{"KILL"}, want: append(without(defaults, "CAP_KILL"), "CAP_KILL")},
		{name: "drop ALL then add", add: []string{"NET_BIND_SERVICE"}, drop: []string{"all"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop ALL", drop: []string{"ALL"}, want: []string{}},
		{name: "add ALL minus drop", add: []string{"ALL"}, drop: []string{"MKNOD"}, want: without(availableCaps(), "CAP_MKNOD")},
		{name: "privileged", privileged: true, drop: []string{"ALL"}, want: availableCaps()},
		{name: "unknown add", add: []string{"NET_ADMIN", "FLY"}, wantErr: `CapAdd: unknown capability: "CAP_FLY"`},
		{name: "unknown drop", drop: []string{"CAP_NOPE"}, wantErr: `CapDrop: unknown capability: "CAP_NOPE"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.CapAdd, o.CapDrop, o.Privileged = tc.add, tc.drop, tc.privileged
			s, err := Spec(o)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			if !slices.Equal(c.Bounding, tc.want) || !slices.Equal(c.Effective, tc.want) || !slices.Equal(c.Permitted, tc.want) {
				t.Fatalf("capabilities = %+v, want %q in bounding, effective and permitted", c, tc.want)
			}
			if c.Inheritable != nil || c.Ambient != nil {
				t.Fatalf("inheritable %q, ambient %q: want none", c.Inheritable, c.Ambient)
			}
		})
	}

	t.Run("known but unavailable", func(t *testing.T) {
		i := slices.IndexFunc(capNames[:], func(c string) bool { return !slices.Contains(availableCaps(), c) })
		if i < 0 {
			t.Skip("this process has every capability in its bounding set")
		}
		o := base(t)
		o.CapAdd = []string{capNames[i]}
		if _, err := Spec(o); err == nil || !strings.Contains(err.Error(), "not available") {
			t.Fatalf("err = %v, want not available", err)
		}
	})
}

func TestPrivileged(t *testing.T) {
	o := base(t)
	normal := mustSpec(t, o)
	o.Privileged = true
	priv := mustSpec(t, o)

	if len(normal.Linux.MaskedPaths) < 12 || !slices.Contains(normal.Linux.MaskedPaths, "/proc/kcore") ||
		!slices.Equal(normal.Linux.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
		t.Fatalf("unprivileged masked %q, readonly %q", normal.Linux.MaskedPaths, normal.Linux.ReadonlyPaths)
	}
	if priv.Linux.MaskedPaths != nil || priv.Linux.ReadonlyPaths != nil {
		t.Fatalf("privileged masked %q, readonly %q: want none", priv.Linux.MaskedPaths, priv.Linux.ReadonlyPaths)
	}
	if got := priv.Linux.Resources.Devices; !reflect.DeepEqual(got, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}) {
		t.Fatalf("privileged device rules = %+v", got)
	}
	for _, dst := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := mountAt(t, normal, dst); !slices.Contains(m.Options, "ro") {
			t.Errorf("unprivileged %s options %q: want ro", dst, m.Options)
		}
		if m := mountAt(t, priv, dst); slices.Contains(m.Options, "ro") {
			t.Errorf("privileged %s options %q: want writable", dst, m.Options)
		}
	}
	// A privileged container sees the host's devices, as under dockerd.
	var st unix.Stat_t
	if unix.Stat("/dev/null", &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR {
		i := slices.IndexFunc(priv.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/null" })
		if i < 0 || priv.Linux.Devices[i].Type != "c" || priv.Linux.Devices[i].Major != 1 || priv.Linux.Devices[i].Minor != 3 {
			t.Fatalf("privileged devices lack /dev/null 1:3: %+v", priv.Linux.Devices)
		}
	}
	if normal.Linux.Devices != nil {
		t.Fatalf("unprivileged devices = %+v", normal.Linux.Devices)
	}
}

func TestDeviceRules(t *testing.T) {
	s := mustSpec(t, base(t))
	rules := s.Linux.Resources.Devices
	if rules[0].Allow || rules[0].Access != "rwm" || rules[0].Type != "" {
		t.Fatalf("first rule %+v, want deny all", rules[0])
	}
	key := func(r specs.LinuxDeviceCgroup) string {
		n := func(p *int64) string {
			if p == nil {
				return "*"
			}
			return strconv.FormatInt(*p, 10)
		}
		return r.Type + " " + n(r.Major) + ":" + n(r.Minor) + " " + r.Access
	}
	var got []string
	for _, r := range rules[1:] {
		if !r.Allow {
			t.Fatalf("unexpected deny rule %+v", r)
		}
		got = append(got, key(r))
	}
	want := []string{"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
		"c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"}
	if !slices.Equal(got, want) {
		t.Fatalf("rules = %q\nwant    %q", got, want)
	}
}

func mountAt(t *testing.T, s *specs.Spec, dst string) specs.Mount {
	t.Helper()
	i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == dst })
	if i < 0 {
		t.Fatalf("no mount at %s in %+v", dst, s.Mounts)
	}
	return s.Mounts[i]
}

func destinations(s *specs.Spec) []string {
	var d []string
	for _, m := range s.Mounts {
		d = append(d, m.Destination)
	}
	return d
}

func TestMounts(t *testing.T) {
	defaults := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}
	for _, tc := range []struct {
		name    string
		mod     func(*Options)
		want    []string
		check   func(*testing.T, *specs.Spec)
		wantErr string
	}{
		{
			name: "defaults",
			want: defaults,
			check: func(t *testing.T, s *specs.Spec) {
				if m := mountAt(t, s, "/dev/shm"); !slices.Contains(m.Options, "size=67108864") || m.Type != "tmpfs" {
					t.Errorf("/dev/shm = %+v, want tmpfs of 64 MiB", m)
				}
				if m := mountAt(t, s, "/dev"); !reflect.DeepEqual(m.Options, []string{"nosuid", "strictatime", "mode=755", "size=65536k"}) {
					t.Errorf("/dev options %q", m.Options)
				}
				if m := mountAt(t, s, "/dev/pts"); m.Type != "devpts" || !slices.Contains(m.Options, "newinstance") || !slices.Contains(m.Options, "gid=5") {
					t.Errorf("/dev/pts = %+v", m)
				}
			},
		},
		{
			name: "shm size and engine files",
			mod: func(o *Options) {
				o.ShmSize = 1 << 20
				o.HostsPath, o.ResolvConfPath, o.HostnamePath = "/c/hosts", "/c/resolv.conf", "/c/hostname"
				o.ReadonlyRootfs = true
			},
			want: append(slices.Clone(defaults), "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"),
			check: func(t *testing.T, s *specs.Spec) {
				if m := mountAt(t, s, "/dev/shm"); !slices.Contains(m.Options, "size=1048576") {
					t.Errorf("/dev/shm options %q", m.Options)
				}
				if m := mountAt(t, s, "/etc/hosts"); m.Source != "/c/hosts" || m.Type != "bind" || !reflect.DeepEqual(m.Options, []string{"rbind", "rprivate", "ro"}) {
					t.Errorf("/etc/hosts = %+v", m)
				}
				if !s.Root.Readonly {
					t.Error("root not read-only")
				}
			},
		},
		{
			name: "caller replaces defaults and engine files, sorted parents first",
			mod: func(o *Options) {
				o.HostsPath = "/c/hosts"
				o.Mounts = []Mount{
					{Source: "/v/b", Destination: "/data/b", Options: []string{"rbind"}},
					{Source: "/v/a", Destination: "/data/", Type: "bind", Options: []string{"rbind", "ro"}},
					{Source: "tmpfs", Destination: "/dev/shm", Type: "tmpfs", Options: []string{"size=1k"}},
					{Source: "/my/hosts", Destination: "/etc/hosts", Type: "bind", Options: []string{"bind"}},
				}
			},
			want: []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/data", "/etc/hosts", "/data/b", "/dev/shm"},
			check: func(t *testing.T, s *specs.Spec) {
				if m := mountAt(t, s, "/etc/hosts"); m.Source != "/my/hosts" {
					t.Errorf("/etc/hosts = %+v, want the caller's", m)
				}
				if m := mountAt(t, s, "/dev/shm"); m.Source != "tmpfs" || !slices.Equal(m.Options, []string{"size=1k"}) {
					t.Errorf("/dev/shm = %+v, want the caller's", m)
				}
				if m := mountAt(t, s, "/data/b"); m.Type != "bind" {
					t.Errorf("untyped mount became %q, want bind", m.Type)
				}
			},
		},
		{
			name: "caller's /dev replaces every /dev default",
			mod: func(o *Options) {
				o.Mounts = []Mount{{Source: "/dev", Destination: "/dev", Type: "bind", Options: []string{"rbind"}}}
			},
			want: []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev"},
		},
		{
			name:    "relative destination",
			mod:     func(o *Options) { o.Mounts = []Mount{{Source: "/x", Destination: "data"}} },
			wantErr: `Mounts: destination "data" is not an absolute path`,
		},
		{name: "negative shm", mod: func(o *Options) { o.ShmSize = -1 }, wantErr: "ShmSize: -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			if tc.mod != nil {
				tc.mod(&o)
			}
			s, err := Spec(o)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := destinations(s); !slices.Equal(got, tc.want) {
				t.Fatalf("mounts = %q\nwant     %q", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestResources(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	swap := func(v int64) *int64 {
		if !swapAccounting() {
			return nil // dropped, as dockerd does, when the host cannot limit swap
		}
		return &v
	}
	for _, tc := range []struct {
		name    string
		mod     func(*Options)
		mem     *specs.LinuxMemory
		cpu     *specs.LinuxCPU
		pids    *specs.LinuxPids
		wantErr string
	}{
		{name: "none", mod: func(*Options) {}},
		{name: "NanoCPUs", mod: func(o *Options) { o.NanoCPUs = 1.5e9 }, cpu: &specs.LinuxCPU{Quota: i64(150000), Period: u64(100000)}},
		{
			name: "shares, quota, period, cpuset",
			mod: func(o *Options) {
				o.CPUShares, o.CPUQuota, o.CPUPeriod, o.CpusetCpus, o.CpusetMems = 512, 50000, 200000, "0-1", "0"
			},
			cpu: &specs.LinuxCPU{Shares: u64(512), Quota: i64(50000), Period: u64(200000), Cpus: "0-1", Mems: "0"},
		},
		{name: "memory only: swap is twice memory", mod: func(o *Options) { o.Memory = 64 << 20 }, mem: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: swap(128 << 20)}},
		{name: "memory and swap", mod: func(o *Options) { o.Memory, o.MemorySwap = 64<<20, 96<<20 }, mem: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: swap(96 << 20)}},
		{name: "unlimited swap", mod: func(o *Options) { o.Memory, o.MemorySwap = 64<<20, -1 }, mem: &specs.LinuxMemory{Limit: i64(64 << 20)}},
		{name: "reservation", mod: func(o *Options) { o.MemoryReservation = 32 << 20 }, mem: &specs.LinuxMemory{Reservation: i64(32 << 20)}},
		{name: "pids", mod: func(o *Options) { o.PidsLimit = 100 }, pids: &specs.LinuxPids{Limit: i64(100)}},
		{name: "pids unlimited", mod: func(o *Options) { o.PidsLimit = -1 }, pids: &specs.LinuxPids{Limit: i64(-1)}},
		{name: "NanoCPUs with quota", mod: func(o *Options) { o.NanoCPUs, o.CPUQuota = 1e9, 50000 }, wantErr: "NanoCPUs: conflicts with CPUQuota and CPUPeriod; set one or the other"},
		{name: "swap below memory", mod: func(o *Options) { o.Memory, o.MemorySwap = 64<<20, 32<<20 }, wantErr: "MemorySwap: must not be smaller than Memory (it is memory plus swap)"},
		{name: "swap without memory", mod: func(o *Options) { o.MemorySwap = 32 << 20 }, wantErr: "MemorySwap: needs Memory to be set as well"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			tc.mod(&o)
			s, err := Spec(o)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := s.Linux.Resources
			if !reflect.DeepEqual(r.Memory, tc.mem) {
				t.Errorf("memory = %s, want %s", js(r.Memory), js(tc.mem))
			}
			if !reflect.DeepEqual(r.CPU, tc.cpu) {
				t.Errorf("cpu = %s, want %s", js(r.CPU), js(tc.cpu))
			}
			if !reflect.DeepEqual(r.Pids, tc.pids) {
				t.Errorf("pids = %s, want %s", js(r.Pids), js(tc.pids))
			}
		})
	}
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestRlimits(t *testing.T) {
	nofile := func(soft, hard uint64) specs.POSIXRlimit {
		return specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: soft, Hard: hard}
	}
	for _, tc := range []struct {
		name    string
		max     uint64
		ulimits []Ulimit
		want    []specs.POSIXRlimit
		wantErr string
	}{
		{name: "default", want: []specs.POSIXRlimit{nofile(1048576, 1048576)}},
		{name: "default clamped", max: 20000, want: []specs.POSIXRlimit{nofile(20000, 20000)}},
		{name: "default under the engine's limit", max: 1 << 30, want: []specs.POSIXRlimit{nofile(1048576, 1048576)}},
		{
			name: "given nofile clamped, others kept", max: 20000,
			ulimits: []Ulimit{{Name: "nproc", Soft: 100, Hard: 200}, {Name: "NOFILE", Soft: 1024, Hard: 4000000}},
			want:    []specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Soft: 100, Hard: 200}, nofile(1024, 20000)},
		},
		{
			name: "unlimited nofile clamped", max: 20000,
			ulimits: []Ulimit{{Name: "nofile", Soft: -1, Hard: -1}},
			want:    []specs.POSIXRlimit{nofile(20000, 20000)},
		},
		{
			name:    "later entry wins",
			ulimits: []Ulimit{{Name: "core", Soft: 1, Hard: 1}, {Name: "rlimit_core", Soft: 0, Hard: -1}},
			want:    []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 0, Hard: ^uint64(0)}, nofile(1048576, 1048576)},
		},
		{name: "unknown", ulimits: []Ulimit{{Name: "files", Soft: 1, Hard: 1}}, wantErr: `Ulimits: unknown name "files"`},
		{name: "soft above hard", ulimits: []Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}, wantErr: "Ulimits: nofile soft limit 10 exceeds hard limit 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.MaxRlimitNOFILE, o.Ulimits = tc.max, tc.ulimits
			s, err := Spec(o)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.Rlimits, tc.want) {
				t.Fatalf("rlimits = %+v, want %+v", s.Process.Rlimits, tc.want)
			}
		})
	}
}

func TestSysctlsAndNamespaces(t *testing.T) {
	types := func(s *specs.Spec) (out []string) {
		for _, n := range s.Linux.Namespaces {
			out = append(out, string(n.Type)+n.Path)
		}
		return out
	}
	cg := []string{}
	if cgroup2() {
		cg = []string{"cgroup"}
	}

	o := base(t)
	o.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1024", "fs.mqueue.msg_max": "20"}
	s := mustSpec(t, o)
	if want := append([]string{"mount", "network", "uts", "pid", "ipc"}, cg...); !slices.Equal(types(s), want) {
		t.Fatalf("namespaces = %q, want %q", types(s), want)
	}
	for k, v := range o.Sysctls {
		if s.Linux.Sysctl[k] != v {
			t.Errorf("sysctl %s = %q, want %q", k, s.Linux.Sysctl[k], v)
		}
	}
	if sysctlExists("net.ipv4.ip_unprivileged_port_start") && s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("a new network namespace lacks dockerd's unprivileged port default: %v", s.Linux.Sysctl)
	}

	o.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}
	o.NetNSPath = "/run/netns/x"
	s = mustSpec(t, o)
	if want := append([]string{"mount", "network/run/netns/x", "uts", "pid", "ipc"}, cg...); !slices.Equal(types(s), want) {
		t.Fatalf("namespaces = %q, want %q", types(s), want)
	}
	if !reflect.DeepEqual(s.Linux.Sysctl, o.Sysctls) {
		t.Errorf("joined netns sysctls = %v, want only the caller's", s.Linux.Sysctl)
	}

	o.NetNSPath, o.Sysctls = "host", nil
	s = mustSpec(t, o)
	if want := append([]string{"mount", "uts", "pid", "ipc"}, cg...); !slices.Equal(types(s), want) {
		t.Fatalf("host network namespaces = %q, want %q", types(s), want)
	}
	if s.Linux.Sysctl != nil {
		t.Errorf("host network sysctls = %v, want none", s.Linux.Sysctl)
	}

	for _, bad := range []struct {
		netns, key string
	}{{"", "kernel.panic"}, {"", "vm.swappiness"}, {"host", "net.ipv4.ip_forward"}, {"", "kernel.hostname"}} {
		o.NetNSPath, o.Sysctls = bad.netns, map[string]string{bad.key: "1"}
		if _, err := Spec(o); err == nil || !strings.HasPrefix(err.Error(), "Sysctls: ") {
			t.Errorf("sysctl %s with netns %q: err = %v, want a Sysctls error", bad.key, bad.netns, err)
		}
	}
}

func TestSpecFields(t *testing.T) {
	o := base(t)
	writeFile(t, o.Rootfs, "etc/passwd", "app:x:1000:1000::/home/app:/bin/sh\n")
	writeFile(t, o.Rootfs, "etc/group", "app:x:1000:app\nstaff:x:50:app\n")
	o.ImageUser, o.ImageWorkingDir = "app", "/srv"
	o.Labels = map[string]string{"com.example": "x"}
	o.CgroupsPath, o.Domainname, o.NoNewPrivileges, o.StopSignal = "/engined/"+testID, "example.org", true, "SIGQUIT"
	s := mustSpec(t, o)

	if s.Hostname != "0123456789ab" || s.Domainname != "example.org" {
		t.Errorf("hostname %q, domainname %q", s.Hostname, s.Domainname)
	}
	u := s.Process.User
	if u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{1000, 50}) {
		t.Errorf("user = %+v, want 1000:1000 with groups 1000, 50", u)
	}
	if s.Process.Cwd != "/srv" || !slices.Contains(s.Process.Env, "HOME=/home/app") {
		t.Errorf("cwd %q, env %q", s.Process.Cwd, s.Process.Env)
	}
	if !reflect.DeepEqual(s.Annotations, o.Labels) || s.Linux.CgroupsPath != o.CgroupsPath || !s.Process.NoNewPrivileges {
		t.Errorf("annotations %v, cgroups path %q, no new privileges %v", s.Annotations, s.Linux.CgroupsPath, s.Process.NoNewPrivileges)
	}
	if s.Process.OOMScoreAdj != nil || s.Root.Path != o.Rootfs {
		t.Errorf("oom %v, root %+v", s.Process.OOMScoreAdj, s.Root)
	}
	o.Labels["com.example"] = "changed"
	if s.Annotations["com.example"] != "x" {
		t.Error("annotations share the caller's map")
	}

	o.User, o.WorkingDir = "1234:5678", "/tmp"
	s = mustSpec(t, o)
	if u := s.Process.User; u.UID != 1234 || u.GID != 5678 || !slices.Equal(u.AdditionalGids, []uint32{5678}) || s.Process.Cwd != "/tmp" {
		t.Errorf("overridden user %+v, cwd %q", u, s.Process.Cwd)
	}

	o.User = "nobody"
	if _, err := Spec(o); err == nil || err.Error() != `User "nobody": unable to find user nobody: no matching entries in passwd file` {
		t.Errorf("err = %v", err)
	}
	o.User, o.WorkingDir = "", "srv"
	if _, err := Spec(o); err == nil || !strings.HasPrefix(err.Error(), "WorkingDir: ") {
		t.Errorf("relative working dir: err = %v", err)
	}
	o.WorkingDir, o.Rootfs = "", ""
	if _, err := Spec(o); err == nil || !strings.HasPrefix(err.Error(), "Rootfs: ") {
		t.Errorf("empty rootfs: err = %v", err)
	}
}

// TestSpecValid round-trips a full spec through JSON, as the engine hands it
// to the shim, and runs it through the conversion and validation runc
// applies before creating the container.
func TestSpecValid(t *testing.T) {
	for _, privileged := range []bool{false, true} {
		o := base(t)
		o.Rootfs, _ = filepath.EvalSymlinks(o.Rootfs) // runc insists on a resolved rootfs
		writeFile(t, o.Rootfs, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
		o.ImageEntrypoint, o.ImageCmd, o.ImageEnv = []string{"/docker-entrypoint.sh"}, []string{"nginx", "-g", "daemon off;"}, []string{"NGINX_VERSION=1.27"}
		o.Env, o.Tty, o.OpenStdin, o.Privileged = []string{"A=b"}, true, true, privileged
		o.CapAdd, o.CapDrop = []string{"NET_ADMIN"}, []string{"MKNOD"}
		o.Memory, o.MemoryReservation, o.NanoCPUs, o.CPUShares, o.PidsLimit = 256<<20, 128<<20, 5e8, 512, 64
		o.CpusetCpus, o.ShmSize = "0", 8<<20
		o.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
		o.Ulimits = []Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 512, Hard: 512}}
		o.Labels = map[string]string{"a": "b"}
		o.Mounts = []Mount{{Source: t.TempDir(), Destination: "/data", Type: "bind", Options: []string{"rbind", "ro"}}}
		o.HostsPath, o.ResolvConfPath, o.HostnamePath = "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"
		o.CgroupsPath, o.MaxRlimitNOFILE, o.NoNewPrivileges = "/engined/"+testID, 20000, true
		s := mustSpec(t, o)

		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back specs.Spec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&back, s) {
			t.Fatalf("privileged=%v: spec changed through JSON:\n%s\n%s", privileged, b, js(&back))
		}
		if back.Version != specs.Version || back.Process == nil || back.Linux == nil || back.Root == nil {
			t.Fatalf("incomplete spec: %s", b)
		}
		cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: testID, Spec: &back})
		if err != nil {
			t.Fatalf("privileged=%v: runc conversion: %v", privileged, err)
		}
		if err := validate.Validate(cfg); err != nil {
			t.Fatalf("privileged=%v: runc validation: %v", privileged, err)
		}
	}
}

func writeFile(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/passwd", `# comment
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
broken:x:notanumber:0::/:/bin/sh

`)
	writeFile(t, root, "etc/group", `root:x:0:
daemon:x:1:
staff:x:50:other,app
app:x:1000:
audio:x:29:app
`)
	empty := t.TempDir()

	type result struct {
		uid, gid uint32
		groups   []uint32
		home     string
	}
	for _, tc := range []struct {
		rootfs, user string
		want         result
		wantErr      string
	}{
		{root, "", result{0, 0, nil, "/root"}, ""},
		{root, "root", result{0, 0, nil, "/root"}, ""},
		{root, "app", result{1000, 1000, []uint32{50, 29}, "/home/app"}, ""},
		{root, "1000", result{1000, 1000, []uint32{50, 29}, "/home/app"}, ""},
		{root, "app:staff", result{1000, 50, nil, "/home/app"}, ""},
		{root, "1000:50", result{1000, 50, nil, "/home/app"}, ""},
		{root, "app:4242", result{1000, 4242, nil, "/home/app"}, ""},
		{root, "4242", result{4242, 0, nil, "/"}, ""},
		{root, "4242:audio", result{4242, 29, nil, "/"}, ""},
		{root, ":staff", result{0, 50, nil, "/root"}, ""},
		{root, "nohome", result{1001, 1001, nil, "/"}, ""},
		{empty, "", result{0, 0, nil, "/"}, ""},
		{empty, "1000", result{1000, 0, nil, "/"}, ""},
		{empty, "1000:1000", result{1000, 1000, nil, "/"}, ""},
		{root, "nobody", result{}, "unable to find user nobody: no matching entries in passwd file"},
		{root, "broken", result{}, "unable to find user broken: no matching entries in passwd file"},
		{empty, "app", result{}, "unable to find user app: no matching entries in passwd file"},
		{root, "app:nogroup", result{}, "unable to find group nogroup: no matching entries in group file"},
		{empty, "1000:app", result{}, "unable to find group app: no matching entries in group file"},
		{root, "app:staff:x", result{}, `invalid user "app:staff:x": want user[:group]`},
		{root, "-1", result{}, `uids and gids must be in range 0-2147483647: "-1"`},
		{root, "99999999999", result{}, `uids and gids must be in range 0-2147483647: "99999999999"`},
		{root, "app:2147483648", result{}, `uids and gids must be in range 0-2147483647: "2147483648"`},
		{"", "0", result{}, `rootfs "" is not an absolute path`},
	} {
		t.Run(tc.user, func(t *testing.T) {
			uid, gid, groups, home, err := ResolveUser(tc.rootfs, tc.user)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := (result{uid, gid, groups, home}); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// An image cannot point the engine at files outside its rootfs.
func TestResolveUserSymlinks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "passwd")
	writeFile(t, filepath.Dir(outside), "passwd", "outsider:x:4321:4321::/outside:/bin/sh\n")

	t.Run("absolute symlink", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, root, outside, "outsider:x:1234:1234::/inside:/bin/sh\n")
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		uid, gid, _, home, err := ResolveUser(root, "outsider")
		if err != nil || uid != 1234 || gid != 1234 || home != "/inside" {
			t.Fatalf("got %d:%d %q %v, want the copy inside the rootfs (1234:1234 /inside)", uid, gid, home, err)
		}
	})
	t.Run("symlink to a missing file", func(t *testing.T) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if _, _, _, _, err := ResolveUser(root, "outsider"); err == nil || !strings.Contains(err.Error(), "no matching entries in passwd file") {
			t.Fatalf("err = %v: the host file was read", err)
		}
	})
	t.Run("etc escaping by ..", func(t *testing.T) {
		root := t.TempDir()
		rel, err := filepath.Rel(root, filepath.Dir(outside))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(rel, filepath.Join(root, "etc")); err != nil {
			t.Fatal(err)
		}
		if _, _, _, _, err := ResolveUser(root, "outsider"); err == nil {
			t.Fatal("resolved a user from outside the rootfs")
		}
	})
	t.Run("fifo does not hang", func(t *testing.T) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, _, _, err := ResolveUser(root, "0"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v, want not a regular file", err)
		}
	})
}

func TestDefaultCapabilities(t *testing.T) {
	got := DefaultCapabilities()
	if len(got) != 14 || !slices.Contains(got, "CAP_AUDIT_WRITE") || slices.Contains(got, "CAP_SYS_ADMIN") {
		t.Fatalf("DefaultCapabilities = %q", got)
	}
	for _, c := range got {
		if !slices.Contains(capNames[:], c) {
			t.Errorf("%s is not a known capability", c)
		}
	}
	if len(capNames) != unix.CAP_LAST_CAP+1 || slices.Contains(capNames[:], "") {
		t.Fatalf("capNames has %d entries or gaps, want %d", len(capNames), unix.CAP_LAST_CAP+1)
	}
}
