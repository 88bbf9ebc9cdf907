package container

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/oci"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Create-time validation with dockerd's messages (its
// verifyContainerSettings): everything refused here would otherwise fail
// at start, or be applied half-way, or not at all.

const minMemory = 6 << 20 // dockerd's minimum memory limit and reservation

func invalid(format string, a ...any) error {
	return errdefs.InvalidArgument(fmt.Errorf(format, a...))
}

// validateConfig checks the Config part of a create request.
func validateConfig(cfg *enginev1.ContainerConfig) error {
	for _, e := range cfg.GetEnv() {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			return invalid("invalid environment variable: %s", e)
		}
	}
	if wd := cfg.GetWorkingDir(); wd != "" && !filepath.IsAbs(wd) {
		return invalid("the working directory '%s' is invalid, it needs to be an absolute path", wd)
	}
	if s := cfg.GetStopSignal(); s != "" {
		if _, err := parseSignal(s); err != nil {
			return err
		}
	}
	return validateHealthcheck(cfg.GetHealthcheck())
}

// minimumHealthDuration is dockerd's least health check interval,
// timeout, start period and start interval (0 means the default).
const minimumHealthDuration = time.Millisecond

// validateHealthcheck checks a create request's health check with
// dockerd's messages. Beyond dockerd, a test type that would never run
// (dockerd ignores it with a warning in its log) is refused.
func validateHealthcheck(h *enginev1.HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    int64
	}{{"Interval", h.GetInterval()}, {"Timeout", h.GetTimeout()}} {
		if d.v != 0 && time.Duration(d.v) < minimumHealthDuration {
			return invalid("%s in Healthcheck cannot be less than %s", d.name, minimumHealthDuration)
		}
	}
	if h.GetRetries() < 0 {
		return invalid("Retries in Healthcheck cannot be negative")
	}
	for _, d := range []struct {
		name string
		v    int64
	}{{"StartPeriod", h.GetStartPeriod()}, {"StartInterval", h.GetStartInterval()}} {
		if d.v != 0 && time.Duration(d.v) < minimumHealthDuration {
			return invalid("%s in Healthcheck cannot be less than %s", d.name, minimumHealthDuration)
		}
	}
	if t := h.GetTest(); len(t) > 0 {
		switch t[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(t) < 2 || len(t) == 2 && strings.TrimSpace(t[1]) == "" && t[0] == "CMD-SHELL" || t[0] == "CMD" && t[1] == "" {
				return invalid("Healthcheck %s needs a command: %q", t[0], t)
			}
		default:
			return invalid("unknown Healthcheck type '%s' (Test must start with NONE, CMD or CMD-SHELL)", t[0])
		}
	}
	return nil
}

// validNetworkMode: none, host, bridge or a network's name or ID.
var validNetworkMode = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// normalizeHostConfig fills in the modes engined applies when none is
// asked for, as dockerd records them, so inspect shows what runs.
func normalizeHostConfig(hc *enginev1.HostConfig) {
	switch hc.GetNetworkMode() {
	case "", "default":
		// dockerd records the default network by its name.
		hc.NetworkMode = "bridge"
	}
	if hc.GetIpcMode() == "" {
		hc.IpcMode = "private"
	}
	if hc.GetCgroupnsMode() == "" {
		hc.CgroupnsMode = oci.DefaultCgroupnsMode()
	}
	if hc.GetRuntime() == "" {
		hc.Runtime = "runc"
	}
	if hc.GetIsolation() == "default" {
		hc.Isolation = ""
	}
	if hc.GetLogConfig().GetType() == "" {
		if hc.LogConfig == nil {
			hc.LogConfig = &enginev1.LogConfig{}
		}
		hc.LogConfig.Type = "json-file"
	}
}

// validateHostConfig checks the HostConfig part of a create request; ncpu
// is the number of CPUs the engine may use.
func validateHostConfig(hc *enginev1.HostConfig) error {
	if err := validRestartPolicy(hc.GetRestartPolicy()); err != nil {
		return err
	}
	if hc.GetAutoRemove() && hc.GetRestartPolicy().GetName() != "" && hc.GetRestartPolicy().GetName() != "no" {
		return invalid("can't create 'AutoRemove' container with restart policy")
	}
	if err := oci.ValidateSecurityOpt(hc.GetSecurityOpt()); err != nil {
		return errdefs.InvalidArgument(err)
	}
	if len(hc.GetMaskedPaths()) > 0 || len(hc.GetReadonlyPaths()) > 0 {
		return invalid("HostConfig.MaskedPaths and ReadonlyPaths of the caller's own are not supported (use --security-opt systempaths=unconfined)")
	}
	if err := validateResources(hc); err != nil {
		return err
	}
	if hc.GetShmSize() < 0 {
		return invalid("SHM size can not be less than 0")
	}
	if v := hc.GetOomScoreAdj(); v < -1000 || v > 1000 {
		return invalid("Invalid value %d, range for oom score adj is [-1000, 1000]", v)
	}
	switch m := hc.GetNetworkMode(); {
	case m == "container" || m == "container:":
		return invalid("invalid network mode: invalid container format container:<name|id>")
	case strings.HasPrefix(m, "container:"):
	case !validNetworkMode.MatchString(m):
		return invalid("invalid network mode %q (HostConfig.NetworkMode)", m)
	}
	if m := hc.GetIpcMode(); !validNamespaceMode(m, "none", "private", "shareable", "host") {
		return invalid("invalid IPC mode: %v", m)
	}
	if m := hc.GetPidMode(); !validNamespaceMode(m, "", "host") {
		return invalid("invalid PID mode: %v", m)
	}
	if m := hc.GetUtsMode(); m != "" && m != "host" {
		return invalid("invalid UTS mode: %v", m)
	}
	if m := hc.GetCgroupnsMode(); m != "host" && m != "private" {
		return invalid("invalid cgroup namespace mode: %v", m)
	}
	if i := hc.GetIsolation(); i != "" {
		return invalid("invalid isolation '%s' on %s", i, runtime.GOOS)
	}
	if r := hc.GetRuntime(); r != "runc" {
		return invalid("unknown or invalid runtime name: %s", r)
	}
	if d := hc.GetVolumeDriver(); d != "" && d != "local" {
		return invalid("volume driver %q (HostConfig.VolumeDriver) is not supported: only local", d)
	}
	for k := range hc.GetAnnotations() {
		if k == "" {
			return invalid("invalid Annotations: the empty string is not permitted as an annotation key")
		}
	}
	switch t := hc.GetLogConfig().GetType(); t {
	case "json-file", "none":
	default:
		return invalid("logging driver %q (HostConfig.LogConfig.Type) is not supported: only json-file and none", t)
	}
	if hc.GetLogConfig().GetType() == "none" && len(hc.GetLogConfig().GetConfig()) > 0 {
		for k := range hc.GetLogConfig().GetConfig() {
			return invalid("unknown log opt '%s' for none log driver", k)
		}
	}
	if hc.GetLogConfig().GetType() == "json-file" {
		if _, _, err := logRotation(hc.GetLogConfig()); err != nil {
			return err
		}
	}
	for dst, opts := range hc.GetTmpfs() {
		if _, err := tmpfsMount(dst, opts); err != nil {
			return err
		}
	}
	for _, h := range hc.GetExtraHosts() {
		if _, _, err := parseExtraHost(h); err != nil {
			return err
		}
	}
	for _, d := range hc.GetDns() {
		if _, err := netip.ParseAddr(d); err != nil {
			return invalid("%s is not an ip address", d)
		}
	}
	for _, d := range hc.GetDevices() {
		if _, err := deviceFrom(d); err != nil {
			return err
		}
	}
	for _, r := range hc.GetDeviceCgroupRules() {
		if _, err := oci.ParseDeviceCgroupRule(r); err != nil {
			return errdefs.InvalidArgument(err)
		}
	}
	for _, g := range hc.GetGroupAdd() {
		if g == "" {
			return invalid("GroupAdd: an empty group name")
		}
	}
	if cs := hc.GetConsoleSize(); len(cs) != 0 && len(cs) != 2 {
		return invalid("ConsoleSize: want [height, width], got %d numbers", len(cs))
	}
	return nil
}

// validateNetContainerMode is dockerd's check of what cannot go with
// another container's network (--network container:<id>): that
// container's hostname, hosts, DNS and ports are the ones.
func validateNetContainerMode(cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig) error {
	if !strings.HasPrefix(hc.GetNetworkMode(), "container:") {
		return nil
	}
	switch {
	case cfg.GetHostname() != "":
		return invalid("conflicting options: hostname and the network mode")
	case len(hc.GetLinks()) > 0:
		return invalid("conflicting options: container type network can't be used with links. This would result in undefined behavior")
	case len(hc.GetDns()) > 0:
		return invalid("conflicting options: dns and the network mode")
	case len(hc.GetExtraHosts()) > 0:
		return invalid("conflicting options: custom host-to-IP mapping and the network mode")
	case len(cfg.GetExposedPorts()) > 0:
		return invalid("conflicting options: port exposing and the container type network mode")
	}
	return nil
}

func validNamespaceMode(m string, plain ...string) bool {
	for _, p := range plain {
		if m == p {
			return true
		}
	}
	ref, ok := strings.CutPrefix(m, "container:")
	return ok && ref != ""
}

// validateResources is dockerd's verifyPlatformContainerResources for the
// limits engined applies.
func validateResources(hc *enginev1.HostConfig) error {
	mem, swap, res := hc.GetMemory(), hc.GetMemorySwap(), hc.GetMemoryReservation()
	switch {
	case mem != 0 && mem < minMemory:
		return invalid("Minimum memory limit allowed is 6MB")
	case mem > 0 && swap > 0 && swap < mem:
		return invalid("Minimum memoryswap limit should be larger than memory limit, see usage")
	case mem == 0 && swap > 0:
		return invalid("You should always set the Memory limit when using Memoryswap limit, see usage")
	case res != 0 && res < minMemory:
		return invalid("Minimum memory reservation allowed is 6MB")
	case mem > 0 && res > 0 && mem < res:
		return invalid("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	nano, period, quota := hc.GetNanoCpus(), hc.GetCpuPeriod(), hc.GetCpuQuota()
	switch {
	case nano > 0 && period > 0:
		return invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	case nano > 0 && quota > 0:
		return invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	// dockerd checks only the upper end; below 0.01 CPUs the CFS quota
	// would be under the kernel's 1 ms minimum (runc then sets no limit at
	// all, or the kernel refuses it at start).
	if nc := int64(hostCPUs()); nano != 0 && (nano < 1e7 || nano > nc*1e9) {
		return invalid("range of CPUs is from 0.01 to %[1]d.00, as there are only %[1]d CPUs available", nc)
	}
	if s := hc.GetCpuShares(); s < 0 {
		return invalid("invalid CPU shares (%d): value must be a positive integer", s)
	} else if s > 0 && s < 2 {
		// The kernel's minimum (cgroup v1 turns 1 into 2, and runc then
		// fails the start with this message).
		return invalid("the minimum allowed cpu-shares is 2")
	} else if s > 262144 {
		return invalid("the maximum allowed cpu-shares is 262144")
	}
	if period != 0 && (period < 1000 || period > 1000000) {
		return invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if quota > 0 && quota < 1000 {
		return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if cpus := hc.GetCpusetCpus(); cpus != "" {
		if err := cpusetAvailable(cpus, "/sys/devices/system/cpu/online", "cpus", "CPUs"); err != nil {
			return err
		}
	}
	if mems := hc.GetCpusetMems(); mems != "" {
		if err := cpusetAvailable(mems, "/sys/devices/system/node/online", "mems", "memory nodes"); err != nil {
			return err
		}
	}
	return nil
}

// hostCPUs is the number of CPUs this process may run on.
func hostCPUs() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil && set.Count() > 0 {
		return set.Count()
	}
	return runtime.NumCPU()
}

// cpusetAvailable checks a cpuset list ("0-2,4") against the host's.
func cpusetAvailable(list, onlineFile, what, plural string) error {
	want, err := parseCPUSet(list)
	if err != nil {
		return invalid("Invalid value %s for cpuset %s: %v", list, what, err)
	}
	online := "0"
	if b, err := os.ReadFile(onlineFile); err == nil {
		online = strings.TrimSpace(string(b))
	}
	have, err := parseCPUSet(online)
	if err != nil {
		return nil // cannot tell; the runtime will
	}
	for n := range want {
		if !have[n] {
			return invalid("Requested %s are not available - requested %s, available: %s", plural, list, online)
		}
	}
	return nil
}

func parseCPUSet(s string) (map[int]bool, error) {
	out := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("invalid format: %s", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("invalid format: %s", s)
			}
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("invalid format: %s", s)
		}
		for i := a; i <= b; i++ {
			out[i] = true
		}
	}
	return out, nil
}

// tmpfsFlags are the mount flags a tmpfs option list may carry, besides
// the tmpfs options of their own (size, mode, uid, gid, nr_inodes,
// nr_blocks).
var tmpfsFlags = map[string]bool{"ro": true, "rw": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"exec": true, "noexec": true, "sync": true, "async": true, "dirsync": true, "remount": false, "mand": true, "nomand": true,
	"atime": true, "noatime": true, "diratime": true, "nodiratime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "private": true, "rprivate": true, "shared": true, "rshared": true,
	"slave": true, "rslave": true, "unbindable": true, "runbindable": true, "tmpcopyup": true}

var tmpfsSizeRe = regexp.MustCompile(`^[0-9]+[kKmMgG%]?$`)

// tmpfsMount is HostConfig.Tmpfs's dst: "opt,opt" as dockerd mounts it:
// noexec, nosuid and nodev unless the options say otherwise.
func tmpfsMount(dst, opts string) (oci.Mount, error) {
	if !filepath.IsAbs(dst) {
		return oci.Mount{}, invalid("invalid mount path: '%s' mount path must be absolute", dst)
	}
	if filepath.Clean(dst) == "/" {
		return oci.Mount{}, invalid("invalid specification: destination can't be '/'")
	}
	out := []string{"noexec", "nosuid", "nodev"}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			k, v, hasValue := strings.Cut(o, "=")
			switch {
			case hasValue && k == "size":
				if !tmpfsSizeRe.MatchString(v) {
					return oci.Mount{}, invalid("invalid tmpfs option %q for %s: bad size", o, dst)
				}
			case hasValue && k == "mode":
				if _, err := strconv.ParseUint(v, 8, 32); err != nil {
					return oci.Mount{}, invalid("invalid tmpfs option %q for %s: bad mode", o, dst)
				}
			case hasValue && (k == "uid" || k == "gid" || k == "nr_inodes" || k == "nr_blocks"):
				if _, err := strconv.ParseUint(strings.TrimRight(v, "kKmMgG"), 10, 64); err != nil {
					return oci.Mount{}, invalid("invalid tmpfs option %q for %s", o, dst)
				}
			case !hasValue && tmpfsFlags[o]:
			default:
				return oci.Mount{}, invalid("invalid tmpfs option %q for %s", o, dst)
			}
			out = append(out, o)
		}
	}
	return oci.Mount{Source: "tmpfs", Destination: dst, Type: "tmpfs", Options: out}, nil
}

// mountFrom is a tmpfs HostConfig.Mounts entry as a mount.
func mountFrom(m *enginev1.Mount) (oci.Mount, error) {
	t := m.GetType()
	if t != "tmpfs" {
		if t == "" {
			return oci.Mount{}, invalid("invalid mount config: mount type unknown")
		}
		return oci.Mount{}, invalid("mount of type %q is not a tmpfs", t)
	}
	dst := m.GetTarget()
	prefix := `invalid mount config for type "tmpfs": `
	switch {
	case dst == "":
		return oci.Mount{}, invalid("%sfield Target must not be empty", prefix)
	case !filepath.IsAbs(dst):
		return oci.Mount{}, invalid("%sinvalid mount path: '%s' mount path must be absolute", prefix, dst)
	case filepath.Clean(dst) == "/":
		return oci.Mount{}, invalid("%sinvalid specification: destination can't be '/'", prefix)
	case m.GetSource() != "":
		return oci.Mount{}, invalid("%sfield Source must not be specified", prefix)
	case m.GetTmpfsSize() < 0:
		return oci.Mount{}, invalid("%sinvalid tmpfs size", prefix)
	}
	opts := []string{"noexec", "nosuid", "nodev"}
	if m.GetReadOnly() {
		opts = append(opts, "ro")
	}
	if n := m.GetTmpfsSize(); n > 0 {
		opts = append(opts, "size="+strconv.FormatInt(n, 10))
	}
	if mode := m.GetTmpfsMode(); mode != 0 {
		opts = append(opts, "mode="+strconv.FormatUint(uint64(mode&0o7777), 8))
	}
	return oci.Mount{Source: "tmpfs", Destination: dst, Type: "tmpfs", Options: opts}, nil
}

// parseExtraHost reads "name:ip" or "name=ip" ("host-gateway" for the IP
// too), as dockerd's ValidateExtraHost.
func parseExtraHost(h string) (name, ip string, err error) {
	name, ip, ok := strings.Cut(h, "=")
	if !ok {
		name, ip, ok = strings.Cut(h, ":")
	}
	if !ok || name == "" {
		return "", "", invalid("bad format for add-host: %q", h)
	}
	if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
		ip = ip[1 : len(ip)-1]
	}
	if ip == "host-gateway" {
		return name, ip, nil
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", "", invalid("invalid IP address in add-host: %q", ip)
	}
	return name, ip, nil
}

// deviceFrom checks a --device mapping and reads the host's node.
func deviceFrom(d *enginev1.DeviceMapping) (oci.Device, error) {
	src, dst, perms := d.GetPathOnHost(), d.GetPathInContainer(), d.GetCgroupPermissions()
	if dst == "" {
		dst = src
	}
	if perms == "" {
		perms = "rwm"
	}
	if !filepath.IsAbs(src) || !filepath.IsAbs(dst) {
		return oci.Device{}, invalid("invalid device specification: %s:%s: the paths must be absolute", src, dst)
	}
	for _, c := range perms {
		if c != 'r' && c != 'w' && c != 'm' {
			return oci.Device{}, invalid("invalid device specification: %s:%s:%s: permissions are r, w and m", src, dst, perms)
		}
	}
	dev, err := oci.DeviceFromPath(src, dst, perms)
	if err != nil {
		return oci.Device{}, invalid("error gathering device information while adding custom device %q: %v", src, err)
	}
	return dev, nil
}

var errLogsNotSupported = errors.New("configured logging driver does not support reading")

// extraHosts are the /etc/hosts lines for --add-host; host-gateway is
// the host's address on its default route (dockerd's is its bridge's
// gateway, which engined does not have yet).
func extraHosts(list []string) (string, error) {
	var b strings.Builder
	for _, h := range list {
		name, ip, err := parseExtraHost(h)
		if err != nil {
			return "", err
		}
		if ip == "host-gateway" {
			if ip, err = hostGatewayIP(); err != nil {
				return "", invalid("unable to resolve host-gateway for --add-host %s: %v", h, err)
			}
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	return b.String(), nil
}

// hostGatewayIP is the source address the host would use on its default
// route (a UDP connect sends nothing).
func hostGatewayIP() (string, error) {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "", fmt.Errorf("the host has no default route: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}
