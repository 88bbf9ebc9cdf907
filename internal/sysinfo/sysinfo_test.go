package sysinfo

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func read(t *testing.T) *Host {
	t.Helper()
	h, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestUname(t *testing.T) {
	h := read(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if want := unix.ByteSliceToString(u.Release[:]); want == "" || h.KernelVersion != want {
		t.Errorf("KernelVersion = %q, uname says %q", h.KernelVersion, want)
	}
	if want := unix.ByteSliceToString(u.Machine[:]); want == "" || h.Architecture != want {
		t.Errorf("Architecture = %q, uname says %q", h.Architecture, want)
	}
	if h.OSType != "linux" {
		t.Errorf("OSType = %q", h.OSType)
	}
	if host, err := os.Hostname(); err != nil || h.Hostname != host {
		t.Errorf("Hostname = %q, os.Hostname = %q (%v)", h.Hostname, host, err)
	}
}

// cpusAllowed counts the CPUs in /proc/self/status Cpus_allowed_list, such
// as "0-3,8,10-11".
func cpusAllowed(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		list, ok := strings.CutPrefix(s.Text(), "Cpus_allowed_list:")
		if !ok {
			continue
		}
		n := 0
		for r := range strings.SplitSeq(strings.TrimSpace(list), ",") {
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				t.Fatalf("bad Cpus_allowed_list %q", list)
			}
			n += b - a + 1
		}
		return n
	}
	t.Skip("no Cpus_allowed_list")
	return 0
}

func TestNCPU(t *testing.T) {
	h := read(t)
	if h.NCPU < 1 || h.NCPU > runtime.NumCPU() {
		t.Errorf("NCPU = %d, runtime.NumCPU = %d", h.NCPU, runtime.NumCPU())
	}
	if want := cpusAllowed(t); h.NCPU != want {
		t.Errorf("NCPU = %d, Cpus_allowed_list has %d", h.NCPU, want)
	}
}

func TestMemTotal(t *testing.T) {
	h := read(t)
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	// Both come from totalram_pages; meminfo only rounds down to KiB.
	total := int64(si.Totalram) * int64(si.Unit)
	if h.MemTotal <= 0 || h.MemTotal > total || total-h.MemTotal >= 1024 {
		t.Errorf("MemTotal = %d, sysinfo(2) says %d", h.MemTotal, total)
	}
}

// TestOSRelease lets a real shell evaluate os-release, which is the format's
// reference parser.
func TestOSRelease(t *testing.T) {
	h := read(t)
	path := "/etc/os-release"
	if _, err := os.Stat(path); err != nil {
		path = "/usr/lib/os-release"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skip("no os-release on this host")
	}
	pretty, version := shellVars(t, path)
	if pretty == "" || h.OperatingSystem != pretty {
		t.Errorf("OperatingSystem = %q, shell says %q", h.OperatingSystem, pretty)
	}
	if h.OSVersion != version {
		t.Errorf("OSVersion = %q, shell says %q", h.OSVersion, version)
	}
}

func shellVars(t *testing.T, path string) (pretty, version string) {
	t.Helper()
	out, err := exec.Command("sh", "-c", `. "$1" && printf '%s\n%s' "$PRETTY_NAME" "$VERSION_ID"`, "sh", path).Output()
	if err != nil {
		t.Skipf("sh: %v", err)
	}
	pretty, version, _ = strings.Cut(string(out), "\n")
	return pretty, version
}

func TestParseOSRelease(t *testing.T) {
	const in = `# a comment
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME=Debian
VERSION_ID="12"

  # indented comment
ID='debian'
HOME_URL="https://x/\"q\"/\$HOME/\\"
EMPTY=
not a pair
`
	want := map[string]string{
		"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
		"NAME":        "Debian",
		"VERSION_ID":  "12",
		"ID":          "debian",
		"HOME_URL":    `https://x/"q"/$HOME/\`,
		"EMPTY":       "",
	}
	got := parseOSRelease([]byte(in))
	if len(got) != len(want) {
		t.Errorf("got %d keys, want %d: %q", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}

	// The same input through a shell must agree on the quoted values.
	f := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(f, []byte(strings.ReplaceAll(in, "not a pair\n", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if pretty, _ := shellVars(t, f); pretty != want["PRETTY_NAME"] {
		t.Errorf("shell read PRETTY_NAME %q", pretty)
	}
	out, err := exec.Command("sh", "-c", `. "$1" && printf '%s' "$HOME_URL"`, "sh", f).Output()
	if err == nil && string(out) != want["HOME_URL"] {
		t.Errorf("shell read HOME_URL %q, parser %q", out, got["HOME_URL"])
	}
}

func TestCgroup(t *testing.T) {
	h := read(t)
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		t.Skip(err)
	}
	want := "1"
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = "2"
	}
	if h.CgroupVersion != want {
		t.Fatalf("CgroupVersion = %q, statfs magic %#x says %q", h.CgroupVersion, st.Type, want)
	}
	if h.CgroupDriver != "cgroupfs" || h.KernelMemory {
		t.Errorf("CgroupDriver = %q, KernelMemory = %v", h.CgroupDriver, h.KernelMemory)
	}
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(cgroupRoot, p))
		return err == nil
	}
	if h.CgroupVersion == "1" {
		checks := []struct {
			name string
			got  bool
			path string
		}{
			{"MemoryLimit", h.MemoryLimit, "memory/memory.limit_in_bytes"},
			{"SwapLimit", h.SwapLimit, "memory/memory.memsw.limit_in_bytes"},
			{"OomKillDisable", h.OomKillDisable, "memory/memory.oom_control"},
			{"CPUCfsPeriod", h.CPUCfsPeriod, "cpu/cpu.cfs_period_us"},
			{"CPUCfsQuota", h.CPUCfsQuota, "cpu/cpu.cfs_quota_us"},
			{"CPUShares", h.CPUShares, "cpu/cpu.shares"},
			{"CPUSet", h.CPUSet, "cpuset/cpuset.cpus"},
			{"PidsLimit", h.PidsLimit, "pids/tasks"},
		}
		for _, c := range checks {
			if c.got != exists(c.path) {
				t.Errorf("%s = %v but %s exists = %v", c.name, c.got, c.path, !c.got)
			}
		}
		if slices.Contains(h.SecurityOptions, "name=cgroupns") {
			t.Errorf("cgroupns reported on cgroup v1: %q", h.SecurityOptions)
		}
		return
	}
	data, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl := strings.Fields(string(data))
	if h.MemoryLimit != slices.Contains(ctrl, "memory") || h.PidsLimit != slices.Contains(ctrl, "pids") ||
		h.CPUShares != slices.Contains(ctrl, "cpu") || h.CPUSet != slices.Contains(ctrl, "cpuset") {
		t.Errorf("flags %+v disagree with controllers %q", h, ctrl)
	}
	if h.OomKillDisable || !slices.Contains(h.SecurityOptions, "name=cgroupns") {
		t.Errorf("OomKillDisable = %v, SecurityOptions = %q on cgroup v2", h.OomKillDisable, h.SecurityOptions)
	}
}

func TestSysctlsAndWarnings(t *testing.T) {
	h := read(t)
	sysctl := func(name string) bool {
		data, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			return false
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && n == 1
	}
	checks := []struct {
		got  bool
		key  string
		warn string
	}{
		{h.IPv4Forwarding, "net/ipv4/ip_forward", "WARNING: IPv4 forwarding is disabled"},
		{h.BridgeNfIptables, "net/bridge/bridge-nf-call-iptables", "WARNING: bridge-nf-call-iptables is disabled"},
		{h.BridgeNfIP6tables, "net/bridge/bridge-nf-call-ip6tables", "WARNING: bridge-nf-call-ip6tables is disabled"},
		{h.SwapLimit, "", "WARNING: No swap limit support"},
		{h.MemoryLimit, "", "WARNING: No memory limit support"},
	}
	for _, c := range checks {
		if c.key != "" && c.got != sysctl(c.key) {
			t.Errorf("%s: got %v, /proc/sys says %v", c.key, c.got, !c.got)
		}
		if slices.Contains(h.Warnings, c.warn) == c.got {
			t.Errorf("flag %v but warning %q present = %v", c.got, c.warn, !c.got)
		}
	}

	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	// The kernel shows a Seccomp line only with CONFIG_SECCOMP; the profile
	// is applied only by binaries built with the seccomp tag.
	kernel := strings.HasPrefix(string(status), "Seccomp:") || strings.Contains(string(status), "\nSeccomp:")
	if slices.Contains(h.SecurityOptions, "name=seccomp,profile=builtin") != (kernel && seccompBuilt) {
		t.Errorf("SecurityOptions = %q, Seccomp line present = %v, built with seccomp = %v", h.SecurityOptions, kernel, seccompBuilt)
	}
}

func TestOpenFDs(t *testing.T) {
	before := OpenFDs()
	if before < 3 {
		t.Errorf("OpenFDs = %d, want at least stdin/stdout/stderr", before)
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if after := OpenFDs(); after != before+1 {
		t.Errorf("OpenFDs went from %d to %d after opening one file", before, after)
	}
}
