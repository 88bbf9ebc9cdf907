// Package oci builds the OCI runtime spec for a container with the defaults
// dockerd gives it (moby's oci.DefaultSpec plus daemon/oci_linux.go), so
// images behave as they do under Docker.
package oci

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/sysinfo"
)

// Mount is a mount the caller adds (binds, volumes, tmpfs).
type Mount struct {
	Source, Destination, Type string
	Options                   []string
}

// Ulimit is a Docker --ulimit: Name without the RLIMIT_ prefix ("nofile").
// -1 means unlimited.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// Options is a container's configuration, image and container parts kept
// apart so Spec can apply Docker's precedence between them.
type Options struct {
	ID     string
	Rootfs string // absolute path of the container's mounted root filesystem

	ImageEntrypoint, ImageCmd  []string
	ImageEnv                   []string
	ImageWorkingDir, ImageUser string

	Entrypoint       []string // non-nil replaces the image's (empty clears it); non-empty also drops ImageCmd
	Cmd              []string // non-empty overrides the image's
	Env              []string // merged over the image's by key; "KEY" alone unsets KEY
	WorkingDir, User string   // override the image's when non-empty

	Hostname, Domainname string
	Tty, OpenStdin       bool

	Privileged      bool
	CapAdd, CapDrop []string
	ReadonlyRootfs  bool

	Memory, MemoryReservation, MemorySwap    int64 // bytes; MemorySwap -1 = unlimited, 0 = 2*Memory
	NanoCPUs, CPUShares, CPUQuota, CPUPeriod int64
	CpusetCpus, CpusetMems                   string
	PidsLimit                                int64 // 0 = unset, -1 = unlimited
	ShmSize                                  int64 // 0 = 64 MiB

	Sysctls map[string]string
	Ulimits []Ulimit
	Labels  map[string]string // become spec annotations

	Mounts                                  []Mount // after the defaults; the same Destination replaces a default
	HostsPath, ResolvConfPath, HostnamePath string  // bound at /etc/hosts, /etc/resolv.conf, /etc/hostname
	NetNSPath                               string  // "" new netns, "host" the engine's, else a netns to join
	PidNSPath, IpcNSPath                    string  // the same for the PID and IPC namespaces
	IpcNone                                 bool    // IpcMode none: no /dev/shm
	UTSHost                                 bool    // UTSMode host: the engine's UTS namespace, no hostname of its own
	CgroupnsMode                            string  // "host", "private" or "" (DefaultCgroupnsMode)
	CgroupsPath                             string

	OOMScoreAdj       int
	GroupAdd          []string          // supplementary groups: names (from the container's /etc/group) or numbers
	Devices           []Device          // --device
	DeviceCgroupRules []string          // --device-cgroup-rule, "c 1:3 rwm"
	Annotations       map[string]string // HostConfig.Annotations, over the labels

	NoNewPrivileges bool     // the daemon's default; SecurityOpt may override it
	SecurityOpt     []string // HostConfig.SecurityOpt, see ParseSecurityOpt
	StopSignal      string   // not part of the spec

	// MaxRlimitNOFILE is the engine's RLIMIT_NOFILE hard limit; 0 = unknown.
	MaxRlimitNOFILE uint64
}

const (
	defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	defaultShmSize = 64 << 20
	defaultNOFILE  = 1 << 20
)

// Spec builds the runtime spec for o.
func Spec(o Options) (*specs.Spec, error) {
	if !filepath.IsAbs(o.Rootfs) {
		return nil, fmt.Errorf("Rootfs: %q is not an absolute path", o.Rootfs)
	}
	args, err := command(o)
	if err != nil {
		return nil, err
	}
	user := cmp.Or(o.User, o.ImageUser)
	uid, gid, sgids, home, err := ResolveUser(o.Rootfs, user)
	if err != nil {
		return nil, fmt.Errorf("User %q: %w", user, err)
	}
	for _, g := range o.GroupAdd {
		n, err := ResolveGroup(o.Rootfs, g)
		if err != nil {
			return nil, err
		}
		if n != gid && !slices.Contains(sgids, n) {
			sgids = append(sgids, n)
		}
	}
	cwd := cmp.Or(o.WorkingDir, o.ImageWorkingDir, "/")
	if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("WorkingDir: %q is not an absolute path", cwd)
	}
	caps, err := capabilities(o)
	if err != nil {
		return nil, err
	}
	sec, err := ParseSecurityOpt(o.SecurityOpt)
	if err != nil {
		return nil, err
	}
	noNewPrivs := o.NoNewPrivileges
	if sec.NoNewPrivileges != nil {
		noNewPrivs = *sec.NoNewPrivileges
	}
	res, err := resources(o)
	if err != nil {
		return nil, err
	}
	sysctls, err := sysctl(o)
	if err != nil {
		return nil, err
	}
	rlimits, err := rlimits(o)
	if err != nil {
		return nil, err
	}
	mounts, err := mounts(o)
	if err != nil {
		return nil, err
	}
	hostname := o.Hostname
	if hostname == "" && len(o.ID) >= 12 {
		hostname = o.ID[:12] // dockerd's default
	}
	annotations := maps.Clone(o.Labels)
	if len(o.Annotations) > 0 {
		if annotations == nil {
			annotations = map[string]string{}
		}
		maps.Copy(annotations, o.Annotations)
	}

	env := []string{defaultPathEnv, "HOSTNAME=" + hostname}
	if o.Tty {
		env = append(env, "TERM=xterm")
	}
	env = MergeEnv(env, MergeEnv(slices.Clone(o.ImageEnv), o.Env))
	// runc derives the same HOME at start, but only for the container's
	// first process; having it in the spec gives it to execs that reuse
	// Process.Env too. An empty HOME counts as unset, as it does for runc.
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "HOME=") && e != "HOME=" }) {
		env = MergeEnv(env, []string{"HOME=" + home})
	}

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: o.Tty,
			User: specs.User{
				UID: uid, GID: gid,
				// dockerd lists the primary group too, as initgroups(3)
				// would on a login.
				AdditionalGids: append([]uint32{gid}, slices.DeleteFunc(sgids, func(g uint32) bool { return g == gid })...),
			},
			Args: args,
			Env:  env,
			Cwd:  cwd,
			// Inheritable and ambient stay empty, as in dockerd since
			// CVE-2022-24769: file capabilities must not widen a process.
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
			Rlimits:         rlimits,
			NoNewPrivileges: noNewPrivs,
		},
		Root:        &specs.Root{Path: o.Rootfs, Readonly: o.ReadonlyRootfs},
		Hostname:    hostname,
		Domainname:  o.Domainname,
		Mounts:      mounts,
		Annotations: annotations,
		Linux: &specs.Linux{
			Namespaces:  namespaces(o),
			Resources:   res,
			CgroupsPath: o.CgroupsPath,
			Sysctl:      sysctls,
		},
	}
	// After the capabilities: the default profile depends on them.
	if s.Linux.Seccomp, err = seccompFor(sec, o.Privileged, s); err != nil {
		return nil, err
	}
	if o.OOMScoreAdj != 0 {
		s.Process.OOMScoreAdj = ptr(o.OOMScoreAdj)
	}
	if o.UTSHost {
		s.Hostname, s.Domainname = "", ""
	}
	if o.Privileged {
		s.Linux.Devices = hostDevices()
	}
	for _, d := range o.Devices {
		s.Linux.Devices = slices.DeleteFunc(s.Linux.Devices, func(e specs.LinuxDevice) bool { return e.Path == d.Node.Path })
		s.Linux.Devices = append(s.Linux.Devices, d.Node)
		if !o.Privileged {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, d.Rule)
		}
	}
	if !o.Privileged {
		for _, r := range o.DeviceCgroupRules {
			rule, err := ParseDeviceCgroupRule(r)
			if err != nil {
				return nil, err
			}
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rule)
		}
	}
	if masked, readonly := SystemPaths(o.Privileged, sec.SystemPathsUnconfined); len(masked)+len(readonly) > 0 {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = masked, readonly
	}
	return s, nil
}

// SystemPaths are the masked and read-only paths a container gets: none
// when privileged, empty lists with systempaths=unconfined, dockerd's
// lists otherwise.
func SystemPaths(privileged, unconfined bool) (masked, readonly []string) {
	return systemPaths(privileged, unconfined, thermalThrottle)
}

func systemPaths(privileged, unconfined bool, throttle func() []string) (masked, readonly []string) {
	switch {
	case privileged:
		return nil, nil
	case unconfined:
		return []string{}, []string{}
	}
	return maskedPaths(throttle()), []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// command merges entrypoint and cmd as dockerd does at create time: a
// non-empty container entrypoint replaces the image's entrypoint and cmd
// together, an empty non-nil one clears only the image's entrypoint, and a
// non-empty container cmd replaces the image's cmd.
func command(o Options) ([]string, error) {
	ep, cmd := o.Entrypoint, o.Cmd
	if len(ep) == 0 {
		if len(cmd) == 0 {
			cmd = o.ImageCmd
		}
		if ep == nil {
			ep = o.ImageEntrypoint
		}
	}
	// The CLI sends --entrypoint "" as [""], meaning "no entrypoint".
	if len(ep) == 1 && ep[0] == "" {
		ep = nil
	}
	if len(ep) == 0 && len(cmd) == 0 {
		return nil, errors.New("no command specified")
	}
	return append(slices.Clone(ep), cmd...), nil
}

// MergeEnv overrides base by key, appends new keys and, as the Docker API
// does, treats an entry without "=" as a request to unset that key.
func MergeEnv(base, over []string) []string {
	for _, e := range over {
		key, _, set := strings.Cut(e, "=")
		i := slices.IndexFunc(base, func(b string) bool { k, _, _ := strings.Cut(b, "="); return k == key })
		switch {
		case !set && i >= 0:
			base = slices.Delete(base, i, i+1)
		case !set:
		case i >= 0:
			base[i] = e
		default:
			base = append(base, e)
		}
	}
	return base
}

func namespaces(o Options) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	join := func(typ specs.LinuxNamespaceType, path string) {
		switch path {
		case "host":
		case "":
			ns = append(ns, specs.LinuxNamespace{Type: typ})
		default:
			ns = append(ns, specs.LinuxNamespace{Type: typ, Path: path})
		}
	}
	join(specs.NetworkNamespace, o.NetNSPath)
	if !o.UTSHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	join(specs.PIDNamespace, o.PidNSPath)
	join(specs.IPCNamespace, o.IpcNSPath)
	if cmp.Or(o.CgroupnsMode, DefaultCgroupnsMode()) == "private" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// DefaultCgroupnsMode is dockerd's: "private" on cgroup v2 and "host" on
// v1, where a namespace would hide nothing useful and break tools that
// read /proc/self/cgroup to find their limits.
func DefaultCgroupnsMode() string {
	if cgroup2() {
		return "private"
	}
	return "host"
}

var cgroup2 = sync.OnceValue(func() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
})

// mounts puts the caller's mounts (and the engine's /etc files) after
// Docker's default filesystems, dropping a default whose destination the
// caller mounts over, and all of /dev's when the caller mounts /dev.
func mounts(o Options) ([]specs.Mount, error) {
	shm := o.ShmSize
	switch {
	case shm == 0:
		shm = defaultShmSize
	case shm < 0:
		return nil, fmt.Errorf("ShmSize: %d is negative", shm)
	}
	// Privileged containers may write to sysfs and cgroupfs, as in dockerd.
	ro := "ro"
	if o.Privileged {
		ro = "rw"
	}
	defaults := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", ro}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{ro, "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
	}
	// IpcMode none has no /dev/shm at all; host has the host's, which the
	// caller passes in Mounts.
	if o.IpcNone || o.IpcNSPath == "host" {
		defaults = slices.DeleteFunc(defaults, func(m specs.Mount) bool { return m.Destination == "/dev/shm" })
	}

	var extra []specs.Mount
	add := func(m specs.Mount) {
		m.Destination = filepath.Clean(m.Destination)
		if i := slices.IndexFunc(extra, func(e specs.Mount) bool { return e.Destination == m.Destination }); i >= 0 {
			extra[i] = m
		} else {
			extra = append(extra, m)
		}
	}
	etcOpts := []string{"rbind", "rprivate"}
	if o.ReadonlyRootfs {
		etcOpts = append(etcOpts, "ro")
	}
	for _, f := range [][2]string{{"/etc/hosts", o.HostsPath}, {"/etc/resolv.conf", o.ResolvConfPath}, {"/etc/hostname", o.HostnamePath}} {
		if f[1] != "" {
			add(specs.Mount{Destination: f[0], Type: "bind", Source: f[1], Options: slices.Clone(etcOpts)})
		}
	}
	for _, m := range o.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return nil, fmt.Errorf("Mounts: destination %q is not an absolute path", m.Destination)
		}
		add(specs.Mount{Destination: m.Destination, Type: cmp.Or(m.Type, "bind"), Source: m.Source, Options: slices.Clone(m.Options)})
	}
	// Parents before children, or a later parent mount would hide a child.
	depth := func(p string) int { return strings.Count(p, "/") }
	sort.SliceStable(extra, func(i, j int) bool { return depth(extra[i].Destination) < depth(extra[j].Destination) })

	over := func(dst string) bool {
		return slices.ContainsFunc(extra, func(e specs.Mount) bool {
			return e.Destination == dst || (e.Destination == "/dev" && strings.HasPrefix(dst, "/dev/"))
		})
	}
	out := slices.DeleteFunc(defaults, func(m specs.Mount) bool { return over(m.Destination) })
	return append(out, extra...), nil
}

// maskedPaths is dockerd's list, including the per-CPU thermal_throttle
// files it masks since GHSA-6fw5-f8r9-fgfm.
func maskedPaths(throttle []string) []string {
	p := []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	return append(p, throttle...)
}

func thermalThrottle() []string {
	paths, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	return paths
}

// shownThrottle is thermalThrottle as inspect shows it, found again at
// most once a second: globbing sysfs was most of the cost of an inspect
// view, and the first list after engined starts makes one per container.
// A spec always globs afresh.
var shownThrottle struct {
	sync.Mutex
	at    time.Time
	paths []string
}

// ShownSystemPaths is SystemPaths for display.
func ShownSystemPaths(privileged, unconfined bool) (masked, readonly []string) {
	return systemPaths(privileged, unconfined, func() []string {
		shownThrottle.Lock()
		defer shownThrottle.Unlock()
		if time.Since(shownThrottle.at) > time.Second {
			shownThrottle.paths, shownThrottle.at = thermalThrottle(), time.Now()
		}
		return slices.Clip(shownThrottle.paths)
	})
}

func resources(o Options) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{Devices: deviceRules(o.Privileged)}

	// Combinations dockerd refuses at create time, which runc would
	// otherwise reject late or apply half-way.
	switch {
	case o.NanoCPUs != 0 && (o.CPUQuota != 0 || o.CPUPeriod != 0):
		return nil, errors.New("NanoCPUs: conflicts with CPUQuota and CPUPeriod; set one or the other")
	case o.NanoCPUs < 0 || o.CPUShares < 0 || o.CPUPeriod < 0:
		return nil, errors.New("NanoCPUs, CPUShares, CPUPeriod: must not be negative")
	case o.MemorySwap > 0 && o.Memory <= 0:
		return nil, errors.New("MemorySwap: needs Memory to be set as well")
	case o.MemorySwap > 0 && o.MemorySwap < o.Memory:
		return nil, errors.New("MemorySwap: must not be smaller than Memory (it is memory plus swap)")
	}

	var mem specs.LinuxMemory
	if o.Memory > 0 {
		mem.Limit = ptr(o.Memory)
		swap := o.MemorySwap
		if swap == 0 {
			swap = 2 * o.Memory
		}
		// As dockerd does: without swap accounting runc could not write
		// the limit and the container would not start. Leaving swap unset
		// is also how -1 (unlimited) is expressed.
		if swap > 0 && swapAccounting() {
			mem.Swap = &swap
		}
	}
	if o.MemoryReservation > 0 {
		mem.Reservation = ptr(o.MemoryReservation)
	}
	if mem != (specs.LinuxMemory{}) {
		r.Memory = &mem
	}

	var cpu specs.LinuxCPU
	if o.CPUShares > 0 {
		cpu.Shares = ptr(uint64(o.CPUShares))
	}
	if o.NanoCPUs > 0 {
		const period = 100000 // µs, the kernel's default CFS period
		cpu.Period = ptr(uint64(period))
		cpu.Quota = ptr(o.NanoCPUs * period / 1e9)
	}
	if o.CPUPeriod > 0 {
		cpu.Period = ptr(uint64(o.CPUPeriod))
	}
	if o.CPUQuota != 0 {
		cpu.Quota = ptr(o.CPUQuota)
	}
	cpu.Cpus, cpu.Mems = o.CpusetCpus, o.CpusetMems
	if cpu != (specs.LinuxCPU{}) {
		r.CPU = &cpu
	}

	switch {
	case o.PidsLimit > 0:
		r.Pids = &specs.LinuxPids{Limit: ptr(o.PidsLimit)}
	case o.PidsLimit < 0:
		r.Pids = &specs.LinuxPids{Limit: ptr(int64(-1))}
	}
	return r, nil
}

var swapAccounting = sync.OnceValue(func() bool {
	h, err := sysinfo.Read()
	return err == nil && h.SwapLimit
})

func ptr[T any](v T) *T { return &v }

// deviceRules is the device cgroup: deny everything, then allow the devices
// every container gets (runc's default set, which dockerd relies on), or
// everything for a privileged container.
func deviceRules(privileged bool) []specs.LinuxDeviceCgroup {
	if privileged {
		return []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	rule := func(typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	c := func(major, minor int64) specs.LinuxDeviceCgroup { return rule("c", &major, &minor, "rwm") }
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", nil, nil, "m"), // mknod of any device; opening it stays denied
		rule("b", nil, nil, "m"),
		c(1, 3),                                // null
		c(1, 5),                                // zero
		c(1, 7),                                // full
		c(1, 8),                                // random
		c(1, 9),                                // urandom
		c(5, 0),                                // tty
		c(5, 1),                                // console
		c(5, 2),                                // ptmx
		rule("c", ptr(int64(136)), nil, "rwm"), // pts/*
		c(10, 200),                             // net/tun
	}
}

// hostDevices lists the host's device nodes, which dockerd creates in a
// privileged container's /dev. Like containerd it skips the directories the
// container gets its own instances of, and the host's console.
func hostDevices() []specs.LinuxDevice {
	var devs []specs.LinuxDevice
	filepath.WalkDir("/dev", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&os.ModeDevice == 0 || path == "/dev/console" {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) != nil {
			return nil
		}
		typ := "b"
		if st.Mode&unix.S_IFMT == unix.S_IFCHR {
			typ = "c"
		}
		devs = append(devs, specs.LinuxDevice{
			Path: path, Type: typ,
			Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			FileMode: ptr(os.FileMode(st.Mode & 0o777)), UID: ptr(st.Uid), GID: ptr(st.Gid),
		})
		return nil
	})
	return devs
}

// rlimitNames are the names Docker's --ulimit accepts, plus "as".
var rlimitNames = []string{
	"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
}

// rlimits gives only the limits asked for, plus RLIMIT_NOFILE, which
// dockerd's containers inherit as 1048576 from its systemd unit. NOFILE is
// clamped to the engine's own hard limit: without CAP_SYS_RESOURCE the
// runtime cannot raise it and the container would fail to start.
func rlimits(o Options) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	for _, u := range o.Ulimits {
		name := strings.TrimPrefix(strings.ToLower(u.Name), "rlimit_")
		if !slices.Contains(rlimitNames, name) {
			return nil, fmt.Errorf("Ulimits: unknown name %q", u.Name)
		}
		if u.Soft < -1 || u.Hard < -1 {
			return nil, fmt.Errorf("Ulimits: %s limits must be -1 (unlimited) or more", name)
		}
		// -1 converts to RLIM_INFINITY.
		rl := specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)}
		if rl.Soft > rl.Hard {
			return nil, fmt.Errorf("Ulimits: %s soft limit %d exceeds hard limit %d", name, u.Soft, u.Hard)
		}
		if i := slices.IndexFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == rl.Type }); i >= 0 {
			out[i] = rl
		} else {
			out = append(out, rl)
		}
	}
	i := slices.IndexFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == "RLIMIT_NOFILE" })
	if i < 0 {
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: defaultNOFILE, Hard: defaultNOFILE})
		i = len(out) - 1
	}
	if limit := o.MaxRlimitNOFILE; limit > 0 {
		out[i].Soft, out[i].Hard = min(out[i].Soft, limit), min(out[i].Hard, limit)
	}
	return out, nil
}

// sysctl accepts what runc can set inside the container's own namespaces
// (anything else would change the host or fail at start), and adds
// dockerd's defaults for a new network namespace: ping and ports below 1024
// without capabilities. The caller's values win.
func sysctl(o Options) (map[string]string, error) {
	out := map[string]string{}
	if o.NetNSPath == "" {
		if sysctlExists("net.ipv4.ping_group_range") && !inUserNS() {
			out["net.ipv4.ping_group_range"] = "0 2147483647"
		}
		if sysctlExists("net.ipv4.ip_unprivileged_port_start") {
			out["net.ipv4.ip_unprivileged_port_start"] = "0"
		}
	}
	ipc := []string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
	for k, v := range o.Sysctls {
		switch {
		case slices.Contains(ipc, k), strings.HasPrefix(k, "fs.mqueue."), k == "kernel.domainname":
		case strings.HasPrefix(k, "net."):
			if o.NetNSPath == "host" {
				return nil, fmt.Errorf("Sysctls: %q cannot be set with the host's network namespace", k)
			}
		default:
			return nil, fmt.Errorf("Sysctls: %q is not namespaced, so it cannot be set for a container", k)
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func sysctlExists(name string) bool {
	_, err := os.Stat("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	return err == nil
}

// inUserNS: a user namespace cannot map the whole GID range that dockerd's
// ping_group_range default names, so runc would fail to write it.
var inUserNS = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295"
})
