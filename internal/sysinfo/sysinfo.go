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

	"golang.org/x/sys/unix"
)

// Host is one reading of the host.
type Host struct {
	KernelVersion     string
	OperatingSystem   string
	OSVersion         string
	OSType            string
	Architecture      string
	NCPU              int
	MemTotal          int64
	Hostname          string
	CgroupVersion     string
	CgroupDriver      string
	MemoryLimit       bool
	SwapLimit         bool
	CPUCfsPeriod      bool
	CPUCfsQuota       bool
	CPUShares         bool
	CPUSet            bool
	PidsLimit         bool
	OomKillDisable    bool
	IPv4Forwarding    bool
	BridgeNfIptables  bool
	BridgeNfIP6tables bool
	SecurityOptions   []string
	Warnings          []string
}

const cgroupRoot = "/sys/fs/cgroup"

// Read gathers the facts. Only uname is essential; anything else missing
// reads as "not supported".
func Read() (*Host, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	h := &Host{
		KernelVersion: unix.ByteSliceToString(u.Release[:]),
		Architecture:  unix.ByteSliceToString(u.Machine[:]),
		OSType:        runtime.GOOS,
		NCPU:          numCPU(),
		CgroupDriver:  "cgroupfs",
	}
	h.Hostname, _ = os.Hostname()
	osr := readOSRelease()
	h.OperatingSystem = osr["PRETTY_NAME"]
	if h.OperatingSystem == "" {
		h.OperatingSystem = "Linux"
	}
	h.OSVersion = osr["VERSION_ID"]
	h.MemTotal = memTotal()
	h.IPv4Forwarding = readFlag("/proc/sys/net/ipv4/ip_forward")
	h.BridgeNfIptables = readFlag("/proc/sys/net/bridge/bridge-nf-call-iptables")
	h.BridgeNfIP6tables = readFlag("/proc/sys/net/bridge/bridge-nf-call-ip6tables")
	if IsCgroup2() {
		h.CgroupVersion = "2"
		h.readCgroup2()
	} else {
		h.CgroupVersion = "1"
		h.readCgroup1()
	}
	if seccompSupported() {
		h.SecurityOptions = append(h.SecurityOptions, "name=seccomp,profile=builtin")
	}
	if h.CgroupVersion == "2" {
		h.SecurityOptions = append(h.SecurityOptions, "name=cgroupns")
	}
	if !h.MemoryLimit {
		h.Warnings = append(h.Warnings, "WARNING: No memory limit support")
	}
	if h.MemoryLimit && !h.SwapLimit {
		h.Warnings = append(h.Warnings, "WARNING: No swap limit support")
	}
	if !h.IPv4Forwarding {
		h.Warnings = append(h.Warnings, "WARNING: IPv4 forwarding is disabled")
	}
	return h, nil
}

// IsCgroup2 reports a pure cgroup v2 host; a hybrid host (v1 controllers
// with an empty unified hierarchy) is managed as v1.
func IsCgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func (h *Host) readCgroup1() {
	exists := func(p ...string) bool {
		_, err := os.Stat(filepath.Join(append([]string{cgroupRoot}, p...)...))
		return err == nil
	}
	h.MemoryLimit = exists("memory", "memory.limit_in_bytes")
	h.SwapLimit = exists("memory", "memory.memsw.limit_in_bytes")
	h.OomKillDisable = exists("memory", "memory.oom_control")
	h.CPUCfsPeriod = exists("cpu", "cpu.cfs_period_us")
	h.CPUCfsQuota = exists("cpu", "cpu.cfs_quota_us")
	h.CPUShares = exists("cpu", "cpu.shares")
	h.CPUSet = exists("cpuset", "cpuset.cpus")
	h.PidsLimit = exists("pids")
}

func (h *Host) readCgroup2() {
	data, _ := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	has := map[string]bool{}
	for _, c := range strings.Fields(string(data)) {
		has[c] = true
	}
	h.MemoryLimit = has["memory"]
	// memory.swap.max exists only below the root.
	h.SwapLimit = has["memory"] && swapAccounting()
	h.CPUCfsPeriod = has["cpu"]
	h.CPUCfsQuota = has["cpu"]
	h.CPUShares = has["cpu"]
	h.CPUSet = has["cpuset"]
	h.PidsLimit = has["pids"]
}

func swapAccounting() bool {
	matches, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "memory.swap.max"))
	return len(matches) > 0
}

func seccompSupported() bool {
	data, err := os.ReadFile("/proc/self/status")
	return err == nil && bytes.Contains(data, []byte("\nSeccomp:"))
}

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
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := os.ReadFile(p); err == nil {
			return ParseOSRelease(data)
		}
	}
	return map[string]string{}
}

// ParseOSRelease parses os-release(5): KEY=value lines, values optionally
// quoted, comments and blank lines ignored.
func ParseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		out[k] = v
	}
	return out
}

// OpenFDs counts this process's open file descriptors.
func OpenFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	// One of them is the directory being read.
	return len(entries) - 1
}
