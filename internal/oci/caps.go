package oci

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNames is indexed by capability number, so the compiler checks every
// name against the kernel's numbering.
var capNames = [...]string{
	unix.CAP_CHOWN:              "CAP_CHOWN",
	unix.CAP_DAC_OVERRIDE:       "CAP_DAC_OVERRIDE",
	unix.CAP_DAC_READ_SEARCH:    "CAP_DAC_READ_SEARCH",
	unix.CAP_FOWNER:             "CAP_FOWNER",
	unix.CAP_FSETID:             "CAP_FSETID",
	unix.CAP_KILL:               "CAP_KILL",
	unix.CAP_SETGID:             "CAP_SETGID",
	unix.CAP_SETUID:             "CAP_SETUID",
	unix.CAP_SETPCAP:            "CAP_SETPCAP",
	unix.CAP_LINUX_IMMUTABLE:    "CAP_LINUX_IMMUTABLE",
	unix.CAP_NET_BIND_SERVICE:   "CAP_NET_BIND_SERVICE",
	unix.CAP_NET_BROADCAST:      "CAP_NET_BROADCAST",
	unix.CAP_NET_ADMIN:          "CAP_NET_ADMIN",
	unix.CAP_NET_RAW:            "CAP_NET_RAW",
	unix.CAP_IPC_LOCK:           "CAP_IPC_LOCK",
	unix.CAP_IPC_OWNER:          "CAP_IPC_OWNER",
	unix.CAP_SYS_MODULE:         "CAP_SYS_MODULE",
	unix.CAP_SYS_RAWIO:          "CAP_SYS_RAWIO",
	unix.CAP_SYS_CHROOT:         "CAP_SYS_CHROOT",
	unix.CAP_SYS_PTRACE:         "CAP_SYS_PTRACE",
	unix.CAP_SYS_PACCT:          "CAP_SYS_PACCT",
	unix.CAP_SYS_ADMIN:          "CAP_SYS_ADMIN",
	unix.CAP_SYS_BOOT:           "CAP_SYS_BOOT",
	unix.CAP_SYS_NICE:           "CAP_SYS_NICE",
	unix.CAP_SYS_RESOURCE:       "CAP_SYS_RESOURCE",
	unix.CAP_SYS_TIME:           "CAP_SYS_TIME",
	unix.CAP_SYS_TTY_CONFIG:     "CAP_SYS_TTY_CONFIG",
	unix.CAP_MKNOD:              "CAP_MKNOD",
	unix.CAP_LEASE:              "CAP_LEASE",
	unix.CAP_AUDIT_WRITE:        "CAP_AUDIT_WRITE",
	unix.CAP_AUDIT_CONTROL:      "CAP_AUDIT_CONTROL",
	unix.CAP_SETFCAP:            "CAP_SETFCAP",
	unix.CAP_MAC_OVERRIDE:       "CAP_MAC_OVERRIDE",
	unix.CAP_MAC_ADMIN:          "CAP_MAC_ADMIN",
	unix.CAP_SYSLOG:             "CAP_SYSLOG",
	unix.CAP_WAKE_ALARM:         "CAP_WAKE_ALARM",
	unix.CAP_BLOCK_SUSPEND:      "CAP_BLOCK_SUSPEND",
	unix.CAP_AUDIT_READ:         "CAP_AUDIT_READ",
	unix.CAP_PERFMON:            "CAP_PERFMON",
	unix.CAP_BPF:                "CAP_BPF",
	unix.CAP_CHECKPOINT_RESTORE: "CAP_CHECKPOINT_RESTORE",
}

// DefaultCapabilities is Docker's default capability set.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// availableCaps is the engine's own bounding set: runc cannot grant a
// container a capability the engine lacks (it fails with EPERM), so
// privileged containers and "ALL" get these, not every name in capNames,
// just as dockerd does when it runs in a restricted environment.
var availableCaps = sync.OnceValue(func() []string {
	mask, err := boundingSet()
	if err != nil {
		return capNames[:]
	}
	var caps []string
	for i, name := range capNames {
		if mask&(1<<i) != 0 {
			caps = append(caps, name)
		}
	}
	return caps
})

func boundingSet() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no CapBnd in /proc/self/status")
}

// capabilities applies Docker's CapAdd/CapDrop/Privileged rules: adds win
// over drops, "ALL" in CapAdd starts from every available capability and
// "ALL" in CapDrop from none.
func capabilities(o Options) ([]string, error) {
	avail := availableCaps()
	if o.Privileged {
		return slices.Clone(avail), nil
	}
	add, err := normalizeCaps(o.CapAdd)
	if err != nil {
		return nil, fmt.Errorf("CapAdd: %w", err)
	}
	for _, c := range add {
		if c != "ALL" && !slices.Contains(avail, c) {
			return nil, fmt.Errorf("CapAdd: capability not supported by your kernel or not available in the current environment: %q", c)
		}
	}
	drop, err := normalizeCaps(o.CapDrop)
	if err != nil {
		return nil, fmt.Errorf("CapDrop: %w", err)
	}

	var base []string
	switch {
	case slices.Contains(add, "ALL"):
		base = avail
	case slices.Contains(drop, "ALL"):
	default:
		// A default the engine lacks could only make runc fail, so it is
		// left out rather than asked for.
		for _, c := range DefaultCapabilities() {
			if slices.Contains(avail, c) {
				base = append(base, c)
			}
		}
	}
	caps := []string{}
	for _, c := range base {
		if !slices.Contains(drop, c) {
			caps = append(caps, c)
		}
	}
	for _, c := range add {
		if c != "ALL" && !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

// normalizeCaps accepts the spellings the Docker API does ("net_admin",
// "CAP_NET_ADMIN", "ALL") and returns canonical CAP_ names.
func normalizeCaps(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if c != "ALL" && !slices.Contains(capNames[:], c) {
			return nil, fmt.Errorf("unknown capability: %q", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// ExecCapabilities are the capability sets of a process exec'd in a
// container whose init has base: a privileged exec gets every available
// capability, as in dockerd.
func ExecCapabilities(base *specs.LinuxCapabilities, privileged bool) *specs.LinuxCapabilities {
	if !privileged {
		return base
	}
	all := availableCaps()
	return &specs.LinuxCapabilities{Bounding: slices.Clone(all), Effective: slices.Clone(all), Permitted: slices.Clone(all)}
}
