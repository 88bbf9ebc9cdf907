// Package oci builds the OCI runtime spec of a container from its Docker
// configuration, with Docker's defaults.
package oci

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Mount is an extra mount.
type Mount struct {
	Source, Destination, Type string
	Options                   []string
}

// Ulimit is a resource limit.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// Options describe the container.
type Options struct {
	ID                                       string
	Rootfs                                   string
	ImageEntrypoint, ImageCmd                []string
	ImageEnv                                 []string
	ImageWorkingDir, ImageUser               string
	Entrypoint                               []string
	Cmd                                      []string
	Env                                      []string
	WorkingDir, User                         string
	Hostname, Domainname                     string
	Tty, OpenStdin                           bool
	Privileged                               bool
	CapAdd, CapDrop                          []string
	ReadonlyRootfs                           bool
	Memory, MemoryReservation, MemorySwap    int64
	NanoCPUs, CPUShares, CPUQuota, CPUPeriod int64
	CpusetCpus, CpusetMems                   string
	PidsLimit                                int64
	ShmSize                                  int64
	Sysctls                                  map[string]string
	Ulimits                                  []Ulimit
	Labels                                   map[string]string
	Mounts                                   []Mount
	HostsPath, ResolvConfPath, HostnamePath  string
	NetNSPath                                string
	CgroupsPath                              string
	NoNewPrivileges                          bool
	StopSignal                               string
	MaxRlimitNOFILE                          uint64
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCapabilities is Docker's default set.
func DefaultCapabilities() []string {
	return []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
}

var allCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}

func normCap(c string) (string, error) {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" {
		return c, nil
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	for _, k := range allCaps {
		if k == c {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown capability: %q", c)
}

func capabilities(o Options) ([]string, error) {
	if o.Privileged {
		return append([]string(nil), allCaps...), nil
	}
	set := map[string]bool{}
	for _, c := range DefaultCapabilities() {
		set[c] = true
	}
	for _, c := range o.CapDrop {
		n, err := normCap(c)
		if err != nil {
			return nil, fmt.Errorf("CapDrop: %w", err)
		}
		if n == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, n)
	}
	for _, c := range o.CapAdd {
		n, err := normCap(c)
		if err != nil {
			return nil, fmt.Errorf("CapAdd: %w", err)
		}
		if n == "ALL" {
			for _, k := range allCaps {
				set[k] = true
			}
			continue
		}
		set[n] = true
	}
	var out []string
	for _, k := range allCaps {
		if set[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	var out []string
	for _, list := range [][]string{base, over} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

// Spec builds the runtime spec.
func Spec(o Options) (*specs.Spec, error) {
	entry, cmd := o.ImageEntrypoint, o.ImageCmd
	if o.Entrypoint != nil {
		entry = o.Entrypoint
		if o.Cmd == nil {
			cmd = nil
		}
	}
	if o.Cmd != nil {
		cmd = o.Cmd
	}
	args := append(append([]string(nil), entry...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified")
	}
	user := o.ImageUser
	if o.User != "" {
		user = o.User
	}
	uid, gid, groups, home, err := ResolveUser(o.Rootfs, user)
	if err != nil {
		return nil, err
	}
	env := mergeEnv(o.ImageEnv, o.Env)
	if !hasEnv(env, "PATH") {
		env = append([]string{defaultPath}, env...)
	}
	env = mergeEnv([]string{"HOSTNAME=" + o.Hostname}, env)
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	if o.Tty && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	cwd := o.ImageWorkingDir
	if o.WorkingDir != "" {
		cwd = o.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	caps, err := capabilities(o)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version:    specs.Version,
		Root:       &specs.Root{Path: o.Rootfs, Readonly: o.ReadonlyRootfs},
		Hostname:   o.Hostname,
		Domainname: o.Domainname,
		Process: &specs.Process{
			Terminal: o.Tty, Args: args, Env: env, Cwd: cwd,
			User:            specs.User{UID: uid, GID: gid, AdditionalGids: groups},
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			NoNewPrivileges: o.NoNewPrivileges,
		},
		Annotations: o.Labels,
	}
	shm := o.ShmSize
	if shm <= 0 {
		shm = 64 << 20
	}
	s.Mounts = []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
	}
	for path, dst := range map[string]string{o.HostsPath: "/etc/hosts", o.ResolvConfPath: "/etc/resolv.conf", o.HostnamePath: "/etc/hostname"} {
		if path != "" {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: path, Options: []string{"rbind", "rprivate"}})
		}
	}
	for _, m := range o.Mounts {
		replaced := false
		for i := range s.Mounts {
			if s.Mounts[i].Destination == m.Destination {
				s.Mounts[i] = specs.Mount{Destination: m.Destination, Type: m.Type, Source: m.Source, Options: m.Options}
				replaced = true
			}
		}
		if !replaced {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: m.Type, Source: m.Source, Options: m.Options})
		}
	}
	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}}
	switch o.NetNSPath {
	case "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	case "host":
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: o.NetNSPath})
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	s.Linux = &specs.Linux{Namespaces: ns, CgroupsPath: o.CgroupsPath, Sysctl: o.Sysctls, Resources: resources(o)}
	if !o.Privileged {
		s.Linux.MaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
		s.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	}
	maxNofile := o.MaxRlimitNOFILE
	if maxNofile == 0 || maxNofile > 1048576 {
		maxNofile = 1048576
	}
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: maxNofile, Hard: maxNofile}}
	for _, u := range o.Ulimits {
		t := "RLIMIT_" + strings.ToUpper(u.Name)
		soft, hard := uint64(u.Soft), uint64(u.Hard)
		if t == "RLIMIT_NOFILE" {
			soft, hard = min(soft, maxNofile), min(hard, maxNofile)
			s.Process.Rlimits = s.Process.Rlimits[1:]
		}
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: t, Soft: soft, Hard: hard})
	}
	return s, nil
}

func resources(o Options) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if o.Privileged {
		r.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		r.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
		c := func(major, minor int64, access string) specs.LinuxDeviceCgroup {
			d := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: access}
			if minor >= 0 {
				d.Minor = &minor
			}
			return d
		}
		r.Devices = append(r.Devices, c(1, 3, "rwm"), c(1, 5, "rwm"), c(1, 7, "rwm"), c(1, 8, "rwm"), c(1, 9, "rwm"),
			c(5, 0, "rwm"), c(5, 1, "rwm"), c(5, 2, "rwm"), c(136, -1, "rwm"), c(10, 200, "rwm"))
	}
	if o.Memory > 0 || o.MemoryReservation > 0 || o.MemorySwap != 0 {
		m := &specs.LinuxMemory{}
		if o.Memory > 0 {
			m.Limit = &o.Memory
			swap := o.MemorySwap
			if swap == 0 {
				swap = 2 * o.Memory
			}
			m.Swap = &swap
		}
		if o.MemoryReservation > 0 {
			m.Reservation = &o.MemoryReservation
		}
		r.Memory = m
	}
	cpu := &specs.LinuxCPU{Cpus: o.CpusetCpus, Mems: o.CpusetMems}
	if o.CPUShares > 0 {
		s := uint64(o.CPUShares)
		cpu.Shares = &s
	}
	if o.NanoCPUs > 0 {
		period := uint64(100000)
		quota := o.NanoCPUs * int64(period) / 1e9
		cpu.Period, cpu.Quota = &period, &quota
	} else {
		if o.CPUPeriod > 0 {
			p := uint64(o.CPUPeriod)
			cpu.Period = &p
		}
		if o.CPUQuota > 0 {
			cpu.Quota = &o.CPUQuota
		}
	}
	r.CPU = cpu
	if o.PidsLimit != 0 {
		limit := o.PidsLimit
		if limit < 0 {
			limit = -1
		}
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return r
}

// ResolveUser maps a user spec to IDs using the image's passwd and group
// files, read inside rootfs.
func ResolveUser(rootfs, user string) (uid, gid uint32, additionalGids []uint32, home string, err error) {
	home = "/"
	u, g, _ := strings.Cut(user, ":")
	if u == "" {
		u = "0"
	}
	passwd := readDB(rootfs, "/etc/passwd")
	found := false
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		uid = uint32(n)
		for _, e := range passwd {
			if len(e) >= 6 && e[2] == u {
				if n, err := strconv.ParseUint(e[3], 10, 32); err == nil {
					gid = uint32(n)
				}
				home, found = e[5], true
				break
			}
		}
	} else {
		for _, e := range passwd {
			if len(e) >= 6 && e[0] == u {
				n, _ := strconv.ParseUint(e[2], 10, 32)
				m, _ := strconv.ParseUint(e[3], 10, 32)
				uid, gid, home, found = uint32(n), uint32(m), e[5], true
				break
			}
		}
		if !found {
			return 0, 0, nil, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file", u)
		}
	}
	groups := readDB(rootfs, "/etc/group")
	if g != "" {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			ok := false
			for _, e := range groups {
				if len(e) >= 3 && e[0] == g {
					n, _ := strconv.ParseUint(e[2], 10, 32)
					gid, ok = uint32(n), true
				}
			}
			if !ok {
				return 0, 0, nil, "", fmt.Errorf("unable to find group %s: no matching entries in group file", g)
			}
		}
	}
	name := u
	for _, e := range passwd {
		if len(e) >= 3 && e[2] == strconv.Itoa(int(uid)) {
			name = e[0]
		}
	}
	for _, e := range groups {
		if len(e) >= 4 {
			for _, m := range strings.Split(e[3], ",") {
				if m == name && m != "" {
					if n, err := strconv.ParseUint(e[2], 10, 32); err == nil && uint32(n) != gid {
						additionalGids = append(additionalGids, uint32(n))
					}
				}
			}
		}
	}
	if home == "" {
		home = "/"
	}
	return uid, gid, additionalGids, home, nil
}

func readDB(rootfs, path string) [][]string {
	p, err := securejoin.SecureJoin(rootfs, path)
	if err != nil {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
