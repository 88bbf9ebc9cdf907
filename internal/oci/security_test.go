package oci

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/engined/engined/internal/sysinfo"
)

// allows reports whether p has a rule that allows name unconditionally.
func allows(p *specs.LinuxSeccomp, name string) bool {
	return slices.ContainsFunc(p.Syscalls, func(r specs.LinuxSyscall) bool {
		return r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name)
	})
}

func TestParseSecurityOpt(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		opts []string
		want Security
		err  string
	}{
		{opts: nil, want: Security{}},
		{opts: []string{"seccomp=unconfined"}, want: Security{Seccomp: "unconfined"}},
		{opts: []string{"seccomp:unconfined"}, want: Security{Seccomp: "unconfined"}},
		{opts: []string{"seccomp=builtin"}, want: Security{Seccomp: "builtin"}},
		{opts: []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`}, want: Security{Seccomp: `{"defaultAction":"SCMP_ACT_ALLOW"}`}},
		{opts: []string{"no-new-privileges"}, want: Security{NoNewPrivileges: &yes}},
		{opts: []string{"no-new-privileges=true"}, want: Security{NoNewPrivileges: &yes}},
		{opts: []string{"no-new-privileges:true"}, want: Security{NoNewPrivileges: &yes}},
		{opts: []string{"no-new-privileges", "no-new-privileges=false"}, want: Security{NoNewPrivileges: &no}},
		{opts: []string{"no-new-privileges=maybe"}, err: `invalid --security-opt 2: "no-new-privileges=maybe"`},
		{opts: []string{"apparmor=unconfined", "label=disable", "label:disable", "disable"}, want: Security{}},
		{opts: []string{"systempaths=unconfined"}, want: Security{SystemPathsUnconfined: true}},
		{opts: []string{"systempaths=strict"}, err: `invalid --security-opt 2: "systempaths=strict"`},
		{opts: []string{"bogus"}, err: `invalid --security-opt 1: "bogus"`},
		{opts: []string{"bogus=1"}, err: `invalid --security-opt 2: "bogus=1"`},
		{opts: []string{"seccomp=unconfined", "writable-cgroups=true"}, err: `invalid --security-opt 2: "writable-cgroups=true"`},
		{opts: []string{"label=type:svirt_t"}, err: `invalid --security-opt "label=type:svirt_t": engined does not apply SELinux labels`},
	} {
		got, err := ParseSecurityOpt(tc.opts)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%q: err = %v, want %s", tc.opts, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.opts, err)
		case tc.err == "" && js(got) != js(tc.want):
			t.Errorf("%q: got %s, want %s", tc.opts, js(got), js(tc.want))
		}
	}
	if !appArmorEnabled() {
		_, err := ParseSecurityOpt([]string{"apparmor=docker-default"})
		if err == nil || err.Error() != `invalid --security-opt "apparmor=docker-default": AppArmor is not enabled on the host` {
			t.Errorf("apparmor profile without AppArmor: err = %v", err)
		}
	}
}

func TestSeccompDefault(t *testing.T) {
	if !sysinfo.SeccompEnabled() {
		s := mustSpec(t, base(t))
		if s.Linux.Seccomp != nil {
			t.Fatal("a seccomp profile in a build or on a kernel without seccomp")
		}
		if err := ValidateSecurityOpt([]string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`}); err != errNoSeccomp {
			t.Errorf("a custom profile without seccomp support: err = %v", err)
		}
		if _, err := Spec(withSecurityOpt(base(t), `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`)); err == nil {
			t.Error("a custom profile without seccomp support started")
		}
		t.Skip("not built with -tags seccomp, or no seccomp in the kernel: the rest needs the profile")
	}
	s := mustSpec(t, base(t))
	p := s.Linux.Seccomp
	if p == nil || p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
		t.Fatalf("default profile: %s", js(p))
	}
	// Filtered by capabilities, as dockerd does: mount, unshare and
	// reboot only with the capabilities that guard them; the key
	// management calls never.
	for _, name := range []string{"mount", "unshare", "reboot", "add_key", "keyctl", "request_key"} {
		if allows(p, name) {
			t.Errorf("default profile allows %s", name)
		}
	}
	if !allows(p, "mkdir") || !allows(p, "read") {
		t.Error("default profile does not allow mkdir and read")
	}
	o := base(t)
	o.CapAdd = []string{"SYS_ADMIN", "SYS_BOOT"}
	p = mustSpec(t, o).Linux.Seccomp
	if !allows(p, "mount") || !allows(p, "unshare") || !allows(p, "reboot") || allows(p, "add_key") {
		t.Errorf("with SYS_ADMIN and SYS_BOOT: mount %v unshare %v reboot %v add_key %v",
			allows(p, "mount"), allows(p, "unshare"), allows(p, "reboot"), allows(p, "add_key"))
	}
	if p = mustSpec(t, withSecurityOpt(base(t), "seccomp=builtin")).Linux.Seccomp; p == nil || allows(p, "mount") {
		t.Error("seccomp=builtin is not the default profile")
	}
}

func withSecurityOpt(o Options, opts ...string) Options {
	o.SecurityOpt = opts
	return o
}

func TestSeccompChoices(t *testing.T) {
	if !sysinfo.SeccompEnabled() {
		t.Skip("not built with -tags seccomp, or no seccomp in the kernel")
	}
	if s := mustSpec(t, withSecurityOpt(base(t), "seccomp=unconfined")); s.Linux.Seccomp != nil {
		t.Error("seccomp=unconfined has a profile")
	}
	priv := base(t)
	priv.Privileged = true
	if s := mustSpec(t, priv); s.Linux.Seccomp != nil {
		t.Error("a privileged container has a profile it did not ask for")
	}
	if s := mustSpec(t, withSecurityOpt(priv, "seccomp=builtin")); s.Linux.Seccomp == nil || !allows(s.Linux.Seccomp, "mount") {
		// Privileged: every capability, so the default profile allows mount.
		t.Error("a privileged container does not get the builtin profile it asked for")
	}

	custom := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1},` +
		`{"name":"chroot","action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_SYS_CHROOT"]}}]}`
	for _, o := range []Options{base(t), priv} {
		s := mustSpec(t, withSecurityOpt(o, "seccomp="+custom))
		p := s.Linux.Seccomp
		if p == nil || p.DefaultAction != specs.ActAllow || len(p.Syscalls) != 1 || !slices.Equal(p.Syscalls[0].Names, []string{"mkdir", "mkdirat"}) {
			// The chroot rule is dropped: the container has CAP_SYS_CHROOT.
			t.Errorf("privileged=%v: custom profile became %s", o.Privileged, js(p))
		}
	}
	o := base(t)
	o.CapDrop = []string{"SYS_CHROOT"}
	if p := mustSpec(t, withSecurityOpt(o, "seccomp="+custom)).Linux.Seccomp; len(p.Syscalls) != 2 || p.Syscalls[1].Names[0] != "chroot" {
		t.Errorf("without CAP_SYS_CHROOT the chroot rule is missing: %s", js(p))
	}
	// An empty profile means no filter, as in dockerd.
	if s := mustSpec(t, withSecurityOpt(base(t), "seccomp={}")); s.Linux.Seccomp != nil {
		t.Errorf("empty profile: %s", js(s.Linux.Seccomp))
	}
}

func TestValidateSecurityOpt(t *testing.T) {
	if !sysinfo.SeccompEnabled() {
		t.Skip("not built with -tags seccomp, or no seccomp in the kernel: custom profiles are refused")
	}
	for _, ok := range [][]string{
		nil,
		{"seccomp=unconfined", "no-new-privileges", "apparmor=unconfined", "label=disable", "systempaths=unconfined"},
		{"seccomp=builtin"},
		{`seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`},
	} {
		if err := ValidateSecurityOpt(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for opt, want := range map[string]string{
		"seccomp={not json":                       "invalid --security-opt seccomp: Decoding seccomp profile failed: ",
		`seccomp={"defaultAction":"SCMP_ACT_NO"}`: "invalid --security-opt seccomp: ",
		`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ERRNO"}]}`: "invalid --security-opt seccomp: both 'name' and 'names'",
		"bogus": `invalid --security-opt 1: "bogus"`,
	} {
		err := ValidateSecurityOpt([]string{opt})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: err = %v, want %s...", opt, err, want)
		}
	}
}

func TestNoNewPrivilegesAndSystemPaths(t *testing.T) {
	o := base(t)
	if s := mustSpec(t, o); s.Process.NoNewPrivileges || len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
		t.Errorf("default: no new privileges %v, masked %q, read-only %q", s.Process.NoNewPrivileges, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s := mustSpec(t, withSecurityOpt(o, "no-new-privileges")); !s.Process.NoNewPrivileges {
		t.Error("no-new-privileges not set")
	}
	o.NoNewPrivileges = true // the daemon's default
	if s := mustSpec(t, withSecurityOpt(o, "no-new-privileges=false")); s.Process.NoNewPrivileges {
		t.Error("no-new-privileges=false does not override the daemon's default")
	}
	if s := mustSpec(t, withSecurityOpt(base(t), "systempaths=unconfined")); s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("systempaths=unconfined: masked %q, read-only %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if _, err := Spec(withSecurityOpt(base(t), "bogus=1")); err == nil || err.Error() != `invalid --security-opt 2: "bogus=1"` {
		t.Errorf("bogus option: err = %v", err)
	}
}
