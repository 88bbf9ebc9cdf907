package oci

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/engined/engined/internal/sysinfo"
)

// The special seccomp profile names, as dockerd spells them.
const (
	SeccompUnconfined = "unconfined"
	SeccompBuiltin    = "builtin"
)

// Security is what a container's HostConfig.SecurityOpt asks for.
type Security struct {
	// Seccomp is "" (the daemon's default: Docker's profile), "builtin"
	// (Docker's profile, even for a privileged container), "unconfined",
	// or a JSON profile in Docker's format, which the Docker CLI reads
	// from the file named by --security-opt seccomp=/path.json.
	Seccomp string
	// NoNewPrivileges overrides the daemon's default when set.
	NoNewPrivileges *bool
	// SystemPathsUnconfined drops the masked and read-only /proc and /sys
	// paths (the Docker CLI's --security-opt systempaths=unconfined, which
	// the gateway receives as empty HostConfig.MaskedPaths/ReadonlyPaths).
	SystemPathsUnconfined bool
}

// SystemPathsUnconfined is the option engined's API carries for empty
// MaskedPaths and ReadonlyPaths.
const SystemPathsUnconfined = "systempaths=unconfined"

// ParseSecurityOpt parses HostConfig.SecurityOpt as dockerd does: "key=value"
// or the legacy "key:value", plus a bare "no-new-privileges" (and a bare
// "disable", dockerd's old spelling of label=disable). Options engined
// cannot honour on this host are errors, never ignored. The messages for
// malformed and unknown options are dockerd's.
func ParseSecurityOpt(opts []string) (Security, error) {
	var sec Security
	for _, opt := range opts {
		switch opt {
		case "no-new-privileges":
			sec.NoNewPrivileges = ptr(true)
			continue
		case "disable":
			continue // label=disable, see below
		}
		var k, v string
		var ok bool
		if strings.Contains(opt, "=") {
			k, v, ok = strings.Cut(opt, "=")
		} else {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			return Security{}, fmt.Errorf("invalid --security-opt 1: %q", opt)
		}
		switch k {
		case "seccomp":
			sec.Seccomp = v
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Security{}, fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
			sec.NoNewPrivileges = &b
		case "apparmor":
			// Nothing confines a container with AppArmor here, so
			// "unconfined" is simply true; a profile would be ignored.
			if v != "unconfined" {
				if appArmorEnabled() {
					return Security{}, fmt.Errorf("invalid --security-opt %q: engined does not apply AppArmor profiles", opt)
				}
				return Security{}, fmt.Errorf("invalid --security-opt %q: AppArmor is not enabled on the host", opt)
			}
		case "label":
			// engined never labels containers for SELinux, so a container
			// is unlabeled already and "disable" asks for exactly that.
			// Any other label option (user:, role:, type:, level:,
			// filetype:, nested) asks for a label engined would not set.
			if v != "disable" {
				return Security{}, fmt.Errorf("invalid --security-opt %q: engined does not apply SELinux labels", opt)
			}
		case "systempaths":
			if v != "unconfined" {
				return Security{}, fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
			sec.SystemPathsUnconfined = true
		default:
			return Security{}, fmt.Errorf("invalid --security-opt 2: %q", opt)
		}
	}
	return sec, nil
}

// ValidateSecurityOpt checks opts at create time, including a custom
// seccomp profile (its JSON and what runc would refuse in it: unknown
// actions, operators or architectures), so a bad option is a 400 then
// rather than a failed start.
func ValidateSecurityOpt(opts []string) error {
	sec, err := ParseSecurityOpt(opts)
	if err != nil {
		return err
	}
	switch sec.Seccomp {
	case "", SeccompBuiltin, SeccompUnconfined:
		return nil
	}
	if !sysinfo.SeccompEnabled() {
		return errNoSeccomp
	}
	// The profile's conditions depend on the container's capabilities,
	// which only the full spec has; the default set is enough to check
	// its form.
	caps := DefaultCapabilities()
	_, err = seccompProfile(sec.Seccomp, &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
	return err
}

var errNoSeccomp = errors.New("invalid --security-opt seccomp: seccomp is not enabled in the kernel or in this build of engined, cannot run a custom seccomp profile")

// seccompFor is the container's seccomp filter, chosen as dockerd does:
// none when unconfined; none for a privileged container unless a profile is
// given explicitly; Docker's default profile otherwise. s must have its
// capabilities set: the default profile allows some syscalls only to
// containers with the capabilities that guard them.
func seccompFor(sec Security, privileged bool, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	switch {
	case sec.Seccomp == SeccompUnconfined:
		return nil, nil
	case privileged && sec.Seccomp == "":
		return nil, nil
	case !sysinfo.SeccompEnabled():
		if sec.Seccomp != "" && sec.Seccomp != SeccompBuiltin {
			return nil, errNoSeccomp
		}
		// As dockerd does without seccomp: the container runs without
		// the default profile, and `docker info` does not claim it.
		return nil, nil
	case sec.Seccomp == "" || sec.Seccomp == SeccompBuiltin:
		p, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
		return p, nil
	default:
		return seccompProfile(sec.Seccomp, s)
	}
}

// seccompProfile converts a Docker-format JSON profile to the spec's form
// for s, and checks it the way runc will.
func seccompProfile(body string, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	p, err := seccomp.LoadProfile(body, s)
	if err != nil {
		return nil, fmt.Errorf("invalid --security-opt seccomp: %w", err)
	}
	if p == nil {
		// No default action and no syscalls: dockerd runs such a
		// container unconfined too.
		return nil, nil
	}
	if err := checkSeccomp(p); err != nil {
		return nil, fmt.Errorf("invalid --security-opt seccomp: %w", err)
	}
	return p, nil
}

// What the shim's libcontainer accepts in a profile. engined checks it
// here, at create, so a profile it would refuse is a 400 then and not a
// failed start; engined itself does not link libcontainer or libseccomp.
var (
	seccompActions = map[specs.LinuxSeccompAction]bool{
		specs.ActKill: true, specs.ActKillProcess: true, specs.ActKillThread: true, specs.ActTrap: true,
		specs.ActErrno: true, specs.ActTrace: true, specs.ActAllow: true, specs.ActLog: true,
	}
	seccompOperators = map[specs.LinuxSeccompOperator]bool{
		specs.OpNotEqual: true, specs.OpLessThan: true, specs.OpLessEqual: true, specs.OpEqualTo: true,
		specs.OpGreaterEqual: true, specs.OpGreaterThan: true, specs.OpMaskedEqual: true,
	}
	seccompArches = map[specs.Arch]bool{
		specs.ArchX86: true, specs.ArchX86_64: true, specs.ArchX32: true, specs.ArchARM: true, specs.ArchAARCH64: true,
		specs.ArchMIPS: true, specs.ArchMIPS64: true, specs.ArchMIPS64N32: true, specs.ArchMIPSEL: true,
		specs.ArchMIPSEL64: true, specs.ArchMIPSEL64N32: true, specs.ArchPPC: true, specs.ArchPPC64: true,
		specs.ArchPPC64LE: true, specs.ArchS390: true, specs.ArchS390X: true, specs.ArchRISCV64: true,
		specs.ArchLOONGARCH64: true,
	}
	seccompFlags = map[specs.LinuxSeccompFlag]bool{
		specs.LinuxSeccompFlagLog: true, specs.LinuxSeccompFlagSpecAllow: true,
		specs.LinuxSeccompFlagWaitKillableRecv: true,
	}
)

// checkSeccomp refuses what libcontainer would refuse at start.
func checkSeccomp(p *specs.LinuxSeccomp) error {
	if !seccompActions[p.DefaultAction] {
		return fmt.Errorf("default action %q is not a seccomp action engined can apply", p.DefaultAction)
	}
	for _, a := range p.Architectures {
		if !seccompArches[a] {
			return fmt.Errorf("unknown architecture %q", a)
		}
	}
	for _, f := range p.Flags {
		if !seccompFlags[f] {
			return fmt.Errorf("unsupported seccomp flag %q", f)
		}
	}
	if p.ListenerPath != "" {
		return errors.New("seccomp listener paths (SCMP_ACT_NOTIFY agents) are not supported")
	}
	for _, sc := range p.Syscalls {
		if !seccompActions[sc.Action] {
			return fmt.Errorf("action %q for %v is not a seccomp action engined can apply", sc.Action, sc.Names)
		}
		if len(sc.Names) == 0 {
			return errors.New("a syscall rule without names")
		}
		if len(sc.Args) > 6 {
			return fmt.Errorf("%v: more than 6 argument conditions", sc.Names)
		}
		for _, a := range sc.Args {
			if a.Index > 5 {
				return fmt.Errorf("%v: argument index %d out of range (0-5)", sc.Names, a.Index)
			}
			if !seccompOperators[a.Op] {
				return fmt.Errorf("%v: unknown comparison operator %q", sc.Names, a.Op)
			}
		}
	}
	return nil
}

// appArmorEnabled is how runc and dockerd tell that the kernel has AppArmor.
func appArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(b) > 0 && b[0] == 'Y'
}
