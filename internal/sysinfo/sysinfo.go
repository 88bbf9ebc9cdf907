// Package sysinfo reads the facts about this host that `docker info` and
// `docker version` report. Every value comes from the kernel or /etc, read
// at call time, so the answers stay true when the host changes.
package sysinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Host is one reading of the host, shaped after dockerd's /info fields.
type Host struct {
	KernelVersion   string // uname release
	OperatingSystem string // os-release PRETTY_NAME; empty if there is no os-release
	OSVersion       string // os-release VERSION_ID
	OSType          string
	Architecture    string // uname machine, which is what dockerd reports (x86_64, not amd64)
	NCPU            int    // CPUs this process may run on, not CPUs installed
	MemTotal        int64  // bytes
	Hostname        string
	CgroupVersion   string // "1" or "2"; a hybrid host is "1"
	CgroupDriver    string

	MemoryLimit    bool
	SwapLimit      bool
	CPUCfsPeriod   bool
	CPUCfsQuota    bool
	CPUShares      bool
	CPUSet         bool
	PidsLimit      bool
	OomKillDisable bool // cgroup v1 only; v2 has no equivalent knob
	KernelMemory   bool // always false: kernel memory limits are deprecated and gone in v2

	IPv4Forwarding    bool
	BridgeNfIptables  bool
	BridgeNfIP6tables bool

	SecurityOptions []string
	Warnings        []string
}

const cgroupRoot = "/sys/fs/cgroup"

// Read gathers the facts. Only uname is essential; any other source that is
// missing reads as "not supported" rather than failing the whole /info.
func Read() (*Host, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("sysinfo: uname: %w", err)
	}
	h := &Host{
		KernelVersion: unix.ByteSliceToString(u.Release[:]),
		Architecture:  unix.ByteSliceToString(u.Machine[:]),
		OSType:        runtime.GOOS,
		NCPU:          numCPU(),
		MemTotal:      memTotal(),
		CgroupDriver:  "cgroupfs",
	}
	h.Hostname, _ = os.Hostname()
	osr := readOSRelease()
	h.OperatingSystem = osr["PRETTY_NAME"]
	h.OSVersion = osr["VERSION_ID"]

	if isCgroup2() {
		h.CgroupVersion = "2"
		h.readCgroup2()
	} else {
		h.CgroupVersion = "1"
		h.readCgroup1()
	}

	h.IPv4Forwarding = readFlag("/proc/sys/net/ipv4/ip_forward")
	h.BridgeNfIptables = readFlag("/proc/sys/net/bridge/bridge-nf-call-iptables")
	h.BridgeNfIP6tables = readFlag("/proc/sys/net/bridge/bridge-nf-call-ip6tables")

	if SeccompEnabled() {
		h.SecurityOptions = append(h.SecurityOptions, "name=seccomp,profile=builtin")
	}
	if h.CgroupVersion == "2" {
		// Containers get a private cgroup namespace by default only on v2.
		h.SecurityOptions = append(h.SecurityOptions, "name=cgroupns")
	}
	h.Warnings = h.warnings()
	return h, nil
}

// warnings mirrors the texts dockerd prints, so `docker info` looks familiar.
func (h *Host) warnings() []string {
	var w []string
	add := func(ok bool, msg string) {
		if !ok {
			w = append(w, "WARNING: "+msg)
		}
	}
	add(h.MemoryLimit, "No memory limit support")
	add(h.SwapLimit, "No swap limit support")
	if h.CgroupVersion == "1" {
		// v2 has no such knob, so warning there would only be noise.
		add(h.OomKillDisable, "No oom kill disable support")
	}
	add(h.CPUCfsQuota, "No cpu cfs quota support")
	add(h.CPUCfsPeriod, "No cpu cfs period support")
	add(h.CPUShares, "No cpu shares support")
	add(h.CPUSet, "No cpuset support")
	add(h.IPv4Forwarding, "IPv4 forwarding is disabled")
	add(h.BridgeNfIptables, "bridge-nf-call-iptables is disabled")
	add(h.BridgeNfIP6tables, "bridge-nf-call-ip6tables is disabled")
	return w
}

// isCgroup2 reports a pure cgroup v2 host. A hybrid host mounts cgroup2 only
// at /sys/fs/cgroup/unified with no controllers, so it must be driven as v1.
func isCgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func (h *Host) readCgroup1() {
	exists := func(p ...string) bool {
		_, err := os.Stat(filepath.Join(append([]string{cgroupRoot}, p...)...))
		return err == nil
	}
	h.MemoryLimit = exists("memory", "memory.limit_in_bytes")
	// memsw files appear only when the kernel does swap accounting
	// (swapaccount=1 or CONFIG_MEMCG_SWAP_ENABLED).
	h.SwapLimit = exists("memory", "memory.memsw.limit_in_bytes")
	h.OomKillDisable = exists("memory", "memory.oom_control")
	h.CPUCfsPeriod = exists("cpu", "cpu.cfs_period_us")
	h.CPUCfsQuota = exists("cpu", "cpu.cfs_quota_us")
	h.CPUShares = exists("cpu", "cpu.shares")
	h.CPUSet = exists("cpuset", "cpuset.cpus")
	// pids.max exists only below the root, so the hierarchy is the evidence.
	h.PidsLimit = exists("pids")
}

func (h *Host) readCgroup2() {
	data, _ := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	has := map[string]bool{}
	for _, c := range strings.Fields(string(data)) {
		has[c] = true
	}
	h.MemoryLimit = has["memory"]
	h.SwapLimit = has["memory"] && swapAccounting()
	// The v2 "cpu" controller provides cpu.max (quota and period) and
	// cpu.weight (shares) together.
	h.CPUCfsPeriod = has["cpu"]
	h.CPUCfsQuota = has["cpu"]
	h.CPUShares = has["cpu"]
	h.CPUSet = has["cpuset"]
	h.PidsLimit = has["pids"]
}

// swapAccounting looks below the root, where the interface files live: a
// child with memory enabled but no memory.swap.max means swap accounting is
// off. With no such child to inspect, trust the controller as dockerd does.
func swapAccounting() bool {
	children, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "memory.current"))
	for _, c := range children {
		if _, err := os.Stat(filepath.Join(filepath.Dir(c), "memory.swap.max")); err == nil {
			return true
		}
	}
	return len(children) == 0
}

// SeccompEnabled reports whether containers get seccomp filters: the
// kernel must support filter mode and the shim must be built with cgo and
// the seccomp tag, without which its libcontainer applies no profile.
// engined and the shim are built by one command with the same tags (make
// build checks the shim's), so engined's own build tag stands for the
// shim's without engined linking libseccomp.
func SeccompEnabled() bool { return seccompBuilt && kernelSeccomp() }

// kernelSeccomp asks the kernel as dockerd does: PR_GET_SECCOMP fails with
// EINVAL without CONFIG_SECCOMP, and PR_SET_SECCOMP in filter mode with a
// NULL filter fails with EFAULT (and installs nothing) only when
// CONFIG_SECCOMP_FILTER is there.
var kernelSeccomp = sync.OnceValue(func() bool {
	if err := unix.Prctl(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == unix.EINVAL {
		return false
	}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0, 0, 0) == unix.EFAULT
})

// numCPU honours the affinity mask (taskset, cpuset cgroups), which is what
// bounds the containers we start.
func numCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil && set.Count() > 0 {
		return set.Count()
	}
	return runtime.NumCPU()
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "MemTotal:       16318500 kB"; the kernel's "kB" is KiB.
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func readFlag(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

func readOSRelease() map[string]string {
	// os-release(5): /etc wins, /usr/lib is the vendor fallback.
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := os.ReadFile(p); err == nil {
			return parseOSRelease(data)
		}
	}
	return map[string]string{}
}

// parseOSRelease reads os-release(5): KEY=value lines in a shell-compatible
// subset, so values may be single- or double-quoted and double-quoted ones
// may escape \ " $ and `. Comments, blank and malformed lines are skipped.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		if n := len(v); n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n-1] == v[0] {
			quote := v[0]
			v = v[1 : n-1]
			if quote == '"' {
				v = unescapeDouble(v)
			}
		}
		out[k] = v
	}
	return out
}

// unescapeDouble undoes the backslash escapes a POSIX shell honours inside
// double quotes; other backslashes are literal there.
func unescapeDouble(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`\"$`+"`", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// OpenFDs counts this process's open file descriptors, 0 if /proc is
// unavailable.
func OpenFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	// ReadDir holds the directory itself open while listing it.
	return len(entries) - 1
}
