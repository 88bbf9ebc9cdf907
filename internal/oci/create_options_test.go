package oci

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func nsOf(s *specs.Spec, typ specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
	if i < 0 {
		return specs.LinuxNamespace{}, false
	}
	return s.Linux.Namespaces[i], true
}

func TestNamespaceModes(t *testing.T) {
	o := base(t)
	o.NetNSPath, o.PidNSPath, o.IpcNSPath, o.UTSHost, o.CgroupnsMode = "host", "/proc/42/ns/pid", "host", true, "private"
	s := mustSpec(t, o)
	for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if _, ok := nsOf(s, typ); ok {
			t.Errorf("%s namespace of its own with the host's asked for", typ)
		}
	}
	if n, ok := nsOf(s, specs.PIDNamespace); !ok || n.Path != "/proc/42/ns/pid" {
		t.Errorf("pid namespace %+v", n)
	}
	if _, ok := nsOf(s, specs.CgroupNamespace); !ok {
		t.Error("no cgroup namespace with CgroupnsMode private")
	}
	if s.Hostname != "" {
		t.Errorf("hostname %q with the host's UTS namespace", s.Hostname)
	}
	if slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" }) {
		t.Error("a /dev/shm of its own with the host's IPC (the caller binds the host's)")
	}
	o = base(t)
	o.CgroupnsMode = "host"
	if _, ok := nsOf(mustSpec(t, o), specs.CgroupNamespace); ok {
		t.Error("cgroup namespace with CgroupnsMode host")
	}
}

func TestDevicesAndRules(t *testing.T) {
	o := base(t)
	d, err := DeviceFromPath("/dev/null", "/dev/xnull", "rw")
	if err != nil {
		t.Fatal(err)
	}
	o.Devices, o.DeviceCgroupRules, o.OOMScoreAdj = []Device{d}, []string{"c 1:11 w", "a *:* m"}, 300
	s := mustSpec(t, o)
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/xnull" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	rules := s.Linux.Resources.Devices
	last := rules[len(rules)-3:]
	if *last[0].Major != 1 || *last[0].Minor != 3 || last[0].Access != "rw" || *last[1].Minor != 11 || last[1].Access != "w" || last[2].Major != nil || last[2].Access != "m" {
		t.Errorf("rules %+v", last)
	}
	if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != 300 {
		t.Errorf("oom score adj %v", s.Process.OOMScoreAdj)
	}
	if _, err := DeviceFromPath("/etc/hostname", "/x", "rwm"); err == nil {
		t.Error("a regular file taken as a device")
	}
	for _, bad := range []string{"c 1:3", "x 1:3 rwm", "c 1:3 rwx", "c a:3 r"} {
		if _, err := ParseDeviceCgroupRule(bad); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
}

func TestGroupAdd(t *testing.T) {
	o := base(t)
	o.GroupAdd = []string{"10", "nosuch"}
	if _, err := Spec(o); err == nil {
		t.Error("a group the image does not have was accepted")
	}
	o.GroupAdd = []string{"10", "4242"}
	s := mustSpec(t, o)
	if !slices.Contains(s.Process.User.AdditionalGids, 10) || !slices.Contains(s.Process.User.AdditionalGids, 4242) {
		t.Errorf("additional gids %v", s.Process.User.AdditionalGids)
	}
}
