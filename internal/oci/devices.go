package oci

import (
	"fmt"
	"os"
	"regexp"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Device is a host device node given to a container (--device): the node
// created in its /dev and the cgroup rule that lets it be used.
type Device struct {
	Node specs.LinuxDevice
	Rule specs.LinuxDeviceCgroup
}

// DeviceFromPath reads the host's device node at src for a container's
// dst with cgroup permissions perms (r, w, m).
func DeviceFromPath(src, dst, perms string) (Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return Device{}, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return Device{}, fmt.Errorf("not a device node")
	}
	major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	return Device{
		Node: specs.LinuxDevice{Path: dst, Type: typ, Major: major, Minor: minor,
			FileMode: ptr(os.FileMode(st.Mode & 0o777)), UID: ptr(st.Uid), GID: ptr(st.Gid)},
		Rule: specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: ptr(major), Minor: ptr(minor), Access: perms},
	}, nil
}

var deviceCgroupRuleRe = regexp.MustCompile(`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`)

// ParseDeviceCgroupRule reads a --device-cgroup-rule ("c 1:3 rwm",
// "a *:* m").
func ParseDeviceCgroupRule(r string) (specs.LinuxDeviceCgroup, error) {
	m := deviceCgroupRuleRe.FindStringSubmatch(r)
	if m == nil {
		return specs.LinuxDeviceCgroup{}, fmt.Errorf("invalid device cgroup rule format: '%s'", r)
	}
	rule := specs.LinuxDeviceCgroup{Allow: true, Type: m[1], Access: m[4]}
	if m[1] == "a" {
		rule.Type = ""
	}
	num := func(s string) *int64 {
		if s == "*" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil
		}
		return &n
	}
	rule.Major, rule.Minor = num(m[2]), num(m[3])
	return rule, nil
}
