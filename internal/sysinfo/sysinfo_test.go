package sysinfo

import (
	"os"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadMatchesKernel(t *testing.T) {
	h, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if want := unix.ByteSliceToString(u.Release[:]); h.KernelVersion != want || want == "" {
		t.Errorf("KernelVersion = %q, want %q", h.KernelVersion, want)
	}
	if h.NCPU < 1 || h.NCPU > runtime.NumCPU() {
		t.Errorf("NCPU = %d, NumCPU = %d", h.NCPU, runtime.NumCPU())
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	total := int64(si.Totalram) * int64(si.Unit)
	if diff := h.MemTotal - total; diff < -4096 || diff > 4096 {
		t.Errorf("MemTotal = %d, sysinfo says %d", h.MemTotal, total)
	}
	if _, err := os.Stat("/etc/os-release"); err == nil && (h.OperatingSystem == "" || h.OperatingSystem == "Linux") {
		t.Errorf("OperatingSystem = %q despite /etc/os-release", h.OperatingSystem)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil {
		want := "1"
		if st.Type == unix.CGROUP2_SUPER_MAGIC {
			want = "2"
		}
		if h.CgroupVersion != want {
			t.Errorf("CgroupVersion = %q, statfs says %q", h.CgroupVersion, want)
		}
	}
	if host, _ := os.Hostname(); h.Hostname != host {
		t.Errorf("Hostname = %q, want %q", h.Hostname, host)
	}
}

func TestParseOSRelease(t *testing.T) {
	in := `# comment
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME=Debian
VERSION_ID="12"

ID='debian'
bogus line
`
	got := ParseOSRelease([]byte(in))
	want := map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian", "VERSION_ID": "12", "ID": "debian"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d keys, want %d: %v", len(got), len(want), got)
	}
}

func TestOpenFDs(t *testing.T) {
	before := OpenFDs()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if after := OpenFDs(); after != before+1 {
		t.Errorf("OpenFDs went from %d to %d after opening one file", before, after)
	}
}
