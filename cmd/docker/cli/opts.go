package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"

	"github.com/engined/engined/gateway"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// createOptions are the flags `docker create` and `docker run` share,
// with the Docker CLI's names.
type createOptions struct {
	name, platform, pull                         string
	attach, env, envFile, labels, labelFile      []string
	volumes, mounts, publish, expose, tmpfs      []string
	capAdd, capDrop, securityOpt, dns, dnsSearch []string
	dnsOpt, addHost, groupAdd, devices, logOpt   []string
	sysctls, annotations, ulimits, aliases       []string
	stdin, tty, publishAll, privileged, readOnly bool
	init, noHealthcheck                          bool
	workdir, user, entrypoint, restart, hostname string
	domainname, netMode, ip, mac, stopSignal     string
	logDriver, pid, ipc, uts, cgroupns, runtime  string
	memory, memorySwap, memoryReservation, shm   string
	cpus                                         float64
	cpuShares, cpuPeriod, cpuQuota, pidsLimit    int64
	cpusetCpus, cpusetMems                       string
	stopTimeout, oomScoreAdj                     int
	autoRemove                                   bool
	consoleSize                                  [2]uint // height, width: the CLI's terminal for -t

	// The rest of the Docker CLI's create flags: put into the create
	// body, where engined applies or refuses them (never ignores).
	blkioWeight                                   uint16
	blkioWeightDevice, readBps, readIops          []string
	writeBps, writeIops, deviceCgroupRules        []string
	links, linkLocalIPs, storageOpts, volumesFrom []string
	cgroupParent, cidfile, gpus, ip6, isolation   string
	kernelMemory, ioMaxBandwidth, userns          string
	volumeDriver, healthCmd                       string
	cpuCount, cpuPercent, cpuRtPeriod, cpuRtRun   int64
	memorySwappiness                              int64
	ioMaxIops                                     uint64
	healthRetries                                 int
	healthInterval, healthTimeout                 time.Duration
	healthStartPeriod, healthStartInterval        time.Duration
	oomKillDisable, quiet, contentTrust, apiSock  bool
}

func (o *createOptions) flags(fs *pflag.FlagSet) {
	// -h is --hostname here, as with the Docker CLI: --help has no shorthand.
	fs.Bool("help", false, "Print usage")
	fs.Uint16Var(&o.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fs.StringArrayVar(&o.blkioWeightDevice, "blkio-weight-device", nil, "Block IO weight (relative device weight)")
	fs.StringArrayVar(&o.readBps, "device-read-bps", nil, "Limit read rate (bytes per second) from a device")
	fs.StringArrayVar(&o.readIops, "device-read-iops", nil, "Limit read rate (IO per second) from a device")
	fs.StringArrayVar(&o.writeBps, "device-write-bps", nil, "Limit write rate (bytes per second) to a device")
	fs.StringArrayVar(&o.writeIops, "device-write-iops", nil, "Limit write rate (IO per second) to a device")
	fs.StringArrayVar(&o.deviceCgroupRules, "device-cgroup-rule", nil, "Add a rule to the cgroup allowed devices list")
	fs.StringArrayVar(&o.links, "link", nil, "Add link to another container")
	fs.StringArrayVar(&o.linkLocalIPs, "link-local-ip", nil, "Container IPv4/IPv6 link-local addresses")
	fs.StringArrayVar(&o.storageOpts, "storage-opt", nil, "Storage driver options for the container")
	fs.StringArrayVar(&o.volumesFrom, "volumes-from", nil, "Mount volumes from the specified container(s)")
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")
	fs.StringVar(&o.cidfile, "cidfile", "", "Write the container ID to the file")
	fs.StringVar(&o.gpus, "gpus", "", "GPU devices to add to the container ('all' to pass all GPUs)")
	fs.StringVar(&o.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fs.StringVar(&o.isolation, "isolation", "", "Container isolation technology")
	fs.StringVar(&o.kernelMemory, "kernel-memory", "", "Kernel memory limit")
	fs.StringVar(&o.ioMaxBandwidth, "io-maxbandwidth", "", "Maximum IO bandwidth limit for the system drive (Windows only)")
	fs.Uint64Var(&o.ioMaxIops, "io-maxiops", 0, "Maximum IOps limit for the system drive (Windows only)")
	fs.StringVar(&o.userns, "userns", "", "User namespace to use")
	fs.StringVar(&o.volumeDriver, "volume-driver", "", "Optional volume driver for the container")
	fs.StringVar(&o.healthCmd, "health-cmd", "", "Command to run to check health")
	fs.IntVar(&o.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fs.DurationVar(&o.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	fs.Int64Var(&o.cpuCount, "cpu-count", 0, "CPU count (Windows only)")
	fs.Int64Var(&o.cpuPercent, "cpu-percent", 0, "CPU percent (Windows only)")
	fs.Int64Var(&o.cpuRtPeriod, "cpu-rt-period", 0, "Limit CPU real-time period in microseconds")
	fs.Int64Var(&o.cpuRtRun, "cpu-rt-runtime", 0, "Limit CPU real-time runtime in microseconds")
	fs.Int64Var(&o.memorySwappiness, "memory-swappiness", -1, "Tune container memory swappiness (0 to 100)")
	fs.BoolVar(&o.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the pull output")
	fs.BoolVar(&o.contentTrust, "disable-content-trust", true, "Skip image verification")
	fs.BoolVar(&o.apiSock, "use-api-socket", false, "Bind mount Docker API socket and required auth")
	// Windows-only: the Docker CLI hides them for a Linux engine.
	for _, n := range []string{"cpu-count", "cpu-percent", "io-maxbandwidth", "io-maxiops"} {
		fs.MarkHidden(n)
	}
	fs.StringVar(&o.name, "name", "", "Assign a name to the container")
	fs.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	fs.BoolVar(&o.autoRemove, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	fs.StringVar(&o.pull, "pull", "missing", `Pull image before creating ("always", "missing", "never")`)
	fs.StringArrayVarP(&o.attach, "attach", "a", nil, "Attach to STDIN, STDOUT or STDERR")
	fs.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	fs.StringArrayVar(&o.envFile, "env-file", nil, "Read in a file of environment variables")
	fs.StringArrayVarP(&o.labels, "label", "l", nil, "Set meta data on a container")
	fs.StringArrayVar(&o.labelFile, "label-file", nil, "Read in a line delimited file of labels")
	fs.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume")
	fs.StringArrayVar(&o.mounts, "mount", nil, "Attach a filesystem mount to the container")
	fs.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	fs.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fs.StringArrayVar(&o.expose, "expose", nil, "Expose a port or a range of ports")
	fs.StringArrayVar(&o.tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	fs.StringArrayVar(&o.capAdd, "cap-add", nil, "Add Linux capabilities")
	fs.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fs.StringArrayVar(&o.securityOpt, "security-opt", nil, "Security Options")
	fs.StringArrayVar(&o.dns, "dns", nil, "Set custom DNS servers")
	fs.StringArrayVar(&o.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	fs.StringArrayVar(&o.dnsOpt, "dns-option", nil, "Set DNS options")
	fs.StringArrayVar(&o.addHost, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	fs.StringArrayVar(&o.groupAdd, "group-add", nil, "Add additional groups to join")
	fs.StringArrayVar(&o.devices, "device", nil, "Add a host device to the container")
	fs.StringArrayVar(&o.logOpt, "log-opt", nil, "Log driver options")
	fs.StringArrayVar(&o.sysctls, "sysctl", nil, "Sysctl options")
	fs.StringArrayVar(&o.annotations, "annotation", nil, "Add an annotation to the container (passed through to the OCI runtime)")
	fs.StringArrayVar(&o.ulimits, "ulimit", nil, "Ulimit options")
	fs.StringArrayVar(&o.aliases, "network-alias", nil, "Add network-scoped alias for the container")
	fs.BoolVarP(&o.stdin, "interactive", "i", false, "Keep STDIN open even if not attached")
	fs.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	fs.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fs.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fs.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	fs.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	fs.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fs.StringVar(&o.restart, "restart", "no", "Restart policy to apply when a container exits")
	fs.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	fs.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	fs.StringVar(&o.netMode, "network", "", "Connect a container to a network")
	fs.StringVar(&o.netMode, "net", "", "Connect a container to a network")
	fs.MarkHidden("net")
	fs.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fs.StringVar(&o.mac, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fs.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	fs.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fs.StringVar(&o.logDriver, "log-driver", "", "Logging driver for the container")
	fs.StringVar(&o.pid, "pid", "", "PID namespace to use")
	fs.StringVar(&o.ipc, "ipc", "", "IPC mode to use")
	fs.StringVar(&o.uts, "uts", "", "UTS namespace to use")
	fs.StringVar(&o.cgroupns, "cgroupns", "", "Cgroup namespace to use (host|private)\n"+
		"'host':    Run the container in the Docker host's cgroup namespace\n"+
		"'private': Run the container in its own private cgroup namespace\n"+
		"'':        Use the cgroup namespace as configured by the\n"+
		"           default-cgroupns-mode option on the daemon (default)")
	fs.StringVar(&o.runtime, "runtime", "", "Runtime to use for this container")
	fs.StringVarP(&o.memory, "memory", "m", "", "Memory limit")
	fs.StringVar(&o.memorySwap, "memory-swap", "", `Swap limit equal to memory plus swap: '-1' to enable unlimited swap`)
	fs.StringVar(&o.memoryReservation, "memory-reservation", "", "Memory soft limit")
	fs.StringVar(&o.shm, "shm-size", "", "Size of /dev/shm")
	fs.Float64Var(&o.cpus, "cpus", 0, "Number of CPUs")
	fs.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fs.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fs.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
}

// flagErrorf is a bad flag value, reported as the Docker CLI reports flag
// errors (with the usage line, exit 125).
func flagErrorf(format string, args ...any) error { return flagError{fmt.Errorf(format, args...)} }

// readKVFile reads an --env-file or --label-file: KEY=VALUE lines, # comments,
// a bare KEY taken from the environment (env files only).
func readKVFile(path string, fromEnv bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, hasValue := strings.Cut(line, "=")
		if strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("variable '%s' contains whitespaces", k)
		}
		if !hasValue && fromEnv {
			if v, ok := os.LookupEnv(k); ok {
				line = k + "=" + v
			} else {
				continue
			}
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// envValue expands a bare -e NAME from the CLI's environment, as the Docker CLI.
func envValue(kv string) (string, bool) {
	if strings.Contains(kv, "=") {
		return kv, true
	}
	v, ok := os.LookupEnv(kv)
	if !ok {
		return "", false
	}
	return kv + "=" + v, true
}

func parseSize(flag, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if v == "-1" {
		return -1, nil
	}
	n, err := units.RAMInBytes(v)
	if err != nil {
		name := "--" + flag
		if flag == "memory" {
			name = "-m, --memory"
		}
		return 0, flagErrorf("invalid argument %q for %q flag: %w", v, name, err)
	}
	return n, nil
}

func parseRestart(v string) (container.RestartPolicy, error) {
	name, count, _ := strings.Cut(v, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return p, fmt.Errorf("invalid restart policy format: maximum retry count must be an integer")
		}
		p.MaximumRetryCount = n
	}
	if name == "" {
		p.Name = container.RestartPolicyDisabled
	}
	return p, nil
}

// parsePublish reads -p [ip:][hostPort:]containerPort[/proto] (ranges allowed).
func parsePublish(v string, exposed network.PortSet, bindings network.PortMap) error {
	spec, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	var ip, hostPort, ctrPort string
	// An IPv6 host address is in brackets.
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]")
		if end < 0 {
			return fmt.Errorf("invalid IP address: %s", spec)
		}
		ip, spec = spec[1:end], strings.TrimPrefix(spec[end+1:], ":")
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 1:
		ctrPort = parts[0]
	case 2:
		hostPort, ctrPort = parts[0], parts[1]
	case 3:
		ip, hostPort, ctrPort = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("invalid proto: %s", v)
	}
	if ctrPort == "" {
		return fmt.Errorf("no port specified: %s<empty>", v)
	}
	var addr netip.Addr
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("invalid IP address: %s", ip)
		}
		addr = a
	}
	cr, err := network.ParsePortRange(ctrPort + "/" + proto)
	if err != nil {
		return fmt.Errorf("invalid containerPort: %s", ctrPort)
	}
	start, end := cr.Start(), cr.End()
	var hStart, hEnd uint16
	if hostPort != "" {
		hr, err := network.ParsePortRange(hostPort)
		if err != nil {
			return fmt.Errorf("invalid hostPort: %s", hostPort)
		}
		hStart, hEnd = hr.Start(), hr.End()
		if end != start && hEnd-hStart != end-start {
			return fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", ctrPort, hostPort)
		}
	}
	for p := uint32(start); p <= uint32(end); p++ {
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", p, proto))
		if err != nil {
			return err
		}
		exposed[port] = struct{}{}
		hp := ""
		switch {
		case hostPort == "":
		case end != start:
			hp = strconv.Itoa(int(hStart) + int(p-uint32(start)))
		case hEnd != hStart:
			hp = fmt.Sprintf("%d-%d", hStart, hEnd)
		default:
			hp = strconv.Itoa(int(hStart))
		}
		bindings[port] = append(bindings[port], network.PortBinding{HostIP: addr, HostPort: hp})
	}
	return nil
}

// parseMount reads --mount type=...,source=...,target=...,readonly.
func parseMount(v string) (mount.Mount, error) {
	m := mount.Mount{Type: mount.TypeVolume}
	for _, field := range strings.Split(v, ",") {
		key, val, hasVal := strings.Cut(field, "=")
		switch strings.ToLower(key) {
		case "type":
			m.Type = mount.Type(strings.ToLower(val))
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "readonly", "ro":
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return m, fmt.Errorf("invalid value for %s: %s", key, val)
				}
			}
			m.ReadOnly = b
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(val)
		case "tmpfs-size":
			n, err := units.RAMInBytes(val)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(n)
		default:
			return m, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if m.Target == "" {
		return m, fmt.Errorf("target is required")
	}
	return m, nil
}

// request builds the Engine's create request: the Docker create body the
// Docker CLI would send, through the gateway's own conversion.
func (o *createOptions) request(fs *pflag.FlagSet, img string, cmd []string) (*enginev1.ContainerCreateRequest, error) {
	cfg := &container.Config{
		Image: img, Hostname: o.hostname, Domainname: o.domainname, User: o.user, WorkingDir: o.workdir,
		Tty: o.tty, OpenStdin: o.stdin, StdinOnce: o.stdin, StopSignal: o.stopSignal, Labels: map[string]string{},
		ExposedPorts: network.PortSet{}, Volumes: map[string]struct{}{},
	}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	if fs.Changed("entrypoint") {
		cfg.Entrypoint = []string{}
		if o.entrypoint != "" {
			cfg.Entrypoint = []string{o.entrypoint}
		}
	}
	if fs.Changed("stop-timeout") {
		t := o.stopTimeout
		cfg.StopTimeout = &t
	}
	// Attach: -a, or all three for a foreground run (decided by the caller).
	for _, a := range o.attach {
		switch strings.ToLower(a) {
		case "stdin":
			cfg.AttachStdin = true
		case "stdout":
			cfg.AttachStdout = true
		case "stderr":
			cfg.AttachStderr = true
		default:
			return nil, flagErrorf("invalid argument %q for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR", a)
		}
	}
	for _, f := range o.envFile {
		kvs, err := readKVFile(f, true)
		if err != nil {
			return nil, err
		}
		cfg.Env = append(cfg.Env, kvs...)
	}
	for _, e := range o.env {
		if kv, ok := envValue(e); ok {
			cfg.Env = append(cfg.Env, kv)
		}
	}
	for _, f := range o.labelFile {
		kvs, err := readKVFile(f, false)
		if err != nil {
			return nil, err
		}
		o.labels = append(kvs, o.labels...)
	}
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(o.netMode), PortBindings: network.PortMap{}, PublishAllPorts: o.publishAll,
		Privileged: o.privileged, ReadonlyRootfs: o.readOnly, CapAdd: o.capAdd, CapDrop: o.capDrop, SecurityOpt: o.securityOpt,
		DNSOptions: o.dnsOpt, DNSSearch: o.dnsSearch, ExtraHosts: o.addHost, GroupAdd: o.groupAdd,
		PidMode: container.PidMode(o.pid), IpcMode: container.IpcMode(o.ipc), UTSMode: container.UTSMode(o.uts),
		CgroupnsMode: container.CgroupnsMode(o.cgroupns), Runtime: o.runtime, OomScoreAdj: o.oomScoreAdj,
		LogConfig: container.LogConfig{Type: o.logDriver}, AutoRemove: o.autoRemove, ConsoleSize: o.consoleSize,
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "default"
	}
	for _, d := range o.dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, flagErrorf("invalid argument %q for \"--dns\" flag: %s is not an ip address", d, d)
		}
		hc.DNS = append(hc.DNS, a)
	}
	if fs.Changed("init") {
		hc.Init = &o.init
	}
	if o.noHealthcheck {
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	}
	var err error
	if hc.RestartPolicy, err = parseRestart(o.restart); err != nil {
		return nil, err
	}
	for _, lo := range o.logOpt {
		k, v, _ := strings.Cut(lo, "=")
		if hc.LogConfig.Config == nil {
			hc.LogConfig.Config = map[string]string{}
		}
		hc.LogConfig.Config[k] = v
	}
	for _, v := range o.volumes {
		if strings.Contains(v, ":") {
			hc.Binds = append(hc.Binds, v)
		} else {
			cfg.Volumes[v] = struct{}{}
		}
	}
	for _, m := range o.mounts {
		mt, err := parseMount(m)
		if err != nil {
			return nil, flagErrorf("invalid argument %q for \"--mount\" flag: %w", m, err)
		}
		hc.Mounts = append(hc.Mounts, mt)
	}
	for _, t := range o.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[dst] = opts
	}
	for _, p := range o.publish {
		if err := parsePublish(p, cfg.ExposedPorts, hc.PortBindings); err != nil {
			return nil, err // the Docker CLI's words: no flag name
		}
	}
	for _, e := range o.expose {
		if !strings.Contains(e, "/") {
			e += "/tcp"
		}
		pr, err := network.ParsePortRange(e)
		if err != nil {
			return nil, fmt.Errorf("invalid range format for --expose: %s, error: %w", e, err)
		}
		for p := uint32(pr.Start()); p <= uint32(pr.End()); p++ {
			port, _ := network.ParsePort(fmt.Sprintf("%d/%s", p, pr.Proto()))
			cfg.ExposedPorts[port] = struct{}{}
		}
	}
	for _, d := range o.devices {
		parts := strings.Split(d, ":")
		dm := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		if len(parts) > 1 {
			dm.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			dm.CgroupPermissions = parts[2]
		}
		hc.Devices = append(hc.Devices, dm)
	}
	for _, s := range o.sysctls {
		k, v, _ := strings.Cut(s, "=")
		if hc.Sysctls == nil {
			hc.Sysctls = map[string]string{}
		}
		hc.Sysctls[k] = v
	}
	for _, a := range o.annotations {
		k, v, _ := strings.Cut(a, "=")
		if hc.Annotations == nil {
			hc.Annotations = map[string]string{}
		}
		hc.Annotations[k] = v
	}
	for _, u := range o.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return nil, flagErrorf("invalid argument %q for \"--ulimit\" flag: %w", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: ul.Name, Soft: ul.Soft, Hard: ul.Hard})
	}
	if hc.Memory, err = parseSize("memory", o.memory); err != nil {
		return nil, err
	}
	if hc.MemorySwap, err = parseSize("memory-swap", o.memorySwap); err != nil {
		return nil, err
	}
	if hc.MemoryReservation, err = parseSize("memory-reservation", o.memoryReservation); err != nil {
		return nil, err
	}
	if hc.ShmSize, err = parseSize("shm-size", o.shm); err != nil {
		return nil, err
	}
	hc.NanoCPUs = int64(o.cpus * 1e9)
	hc.CPUShares, hc.CPUPeriod, hc.CPUQuota = o.cpuShares, o.cpuPeriod, o.cpuQuota
	hc.CpusetCpus, hc.CpusetMems = o.cpusetCpus, o.cpusetMems
	// As the Docker CLI sends it: 0 unless given.
	hc.PidsLimit = &o.pidsLimit
	if err := o.extra(fs, cfg, hc); err != nil {
		return nil, err
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	if o.ip != "" || o.ip6 != "" || o.mac != "" || len(o.aliases) > 0 || len(o.linkLocalIPs) > 0 {
		ep := &network.EndpointSettings{Aliases: o.aliases}
		ipam := &network.EndpointIPAMConfig{}
		if o.ip != "" {
			a, err := netip.ParseAddr(o.ip)
			if err != nil {
				return nil, flagErrorf("invalid argument %q for \"--ip\" flag: invalid IP address", o.ip)
			}
			ipam.IPv4Address = a
		}
		if o.ip6 != "" {
			a, err := netip.ParseAddr(o.ip6)
			if err != nil {
				return nil, flagErrorf("invalid argument %q for \"--ip6\" flag: invalid IP address", o.ip6)
			}
			ipam.IPv6Address = a
		}
		for _, l := range o.linkLocalIPs {
			a, err := netip.ParseAddr(l)
			if err != nil {
				return nil, flagErrorf("invalid argument %q for \"--link-local-ip\" flag: invalid IP address", l)
			}
			ipam.LinkLocalIPs = append(ipam.LinkLocalIPs, a)
		}
		if o.ip != "" || o.ip6 != "" || len(ipam.LinkLocalIPs) > 0 {
			ep.IPAMConfig = ipam
		}
		if o.mac != "" {
			ep.MacAddress = network.HardwareAddr{}
			if err := ep.MacAddress.UnmarshalText([]byte(o.mac)); err != nil {
				return nil, flagErrorf("invalid argument %q for \"--mac-address\" flag: %w", o.mac, err)
			}
		}
		nc.EndpointsConfig[string(hc.NetworkMode)] = ep
	}
	body, err := json.Marshal(container.CreateRequest{Config: cfg, HostConfig: hc, NetworkingConfig: nc})
	if err != nil {
		return nil, fmt.Errorf("encode create request: %w", err)
	}
	req, err := gateway.CreateRequest(body)
	if err != nil {
		return nil, daemonError{msg: err.Error()}
	}
	req.Name, req.Platform = o.name, o.platform
	return req, nil
}

// throttle reads --device-read-bps and friends: PATH:RATE.
func throttle(flag string, vals []string, bytes bool) ([]*blkiodev.ThrottleDevice, error) {
	var out []*blkiodev.ThrottleDevice
	for _, v := range vals {
		path, rate, ok := strings.Cut(v, ":")
		if !ok || !strings.HasPrefix(path, "/dev/") {
			return nil, flagErrorf("invalid argument %q for \"--%s\" flag: bad format: %s", v, flag, v)
		}
		var n uint64
		if bytes {
			b, err := units.RAMInBytes(rate)
			if err != nil || b < 0 {
				return nil, flagErrorf("invalid argument %q for \"--%s\" flag: invalid rate for device: %s. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb", v, flag, v)
			}
			n = uint64(b)
		} else {
			b, err := strconv.ParseUint(rate, 10, 64)
			if err != nil {
				return nil, flagErrorf("invalid argument %q for \"--%s\" flag: invalid rate for device: %s. The correct format is <device-path>:<number>. Number must be a positive integer", v, flag, v)
			}
			n = b
		}
		out = append(out, &blkiodev.ThrottleDevice{Path: path, Rate: n})
	}
	return out, nil
}

// extra puts the less common create flags into the create body.
func (o *createOptions) extra(fs *pflag.FlagSet, cfg *container.Config, hc *container.HostConfig) error {
	if o.apiSock {
		return errors.New("--use-api-socket is not supported by engined")
	}
	if fs.Changed("disable-content-trust") && !o.contentTrust {
		return errors.New("content trust (--disable-content-trust=false) is not supported by engined's CLI")
	}
	if o.kernelMemory != "" {
		return errors.New("--kernel-memory is not supported: kernel memory limits are deprecated and not set by engined")
	}
	hc.BlkioWeight = o.blkioWeight
	for _, v := range o.blkioWeightDevice {
		path, w, ok := strings.Cut(v, ":")
		n, err := strconv.ParseUint(w, 10, 16)
		if !ok || err != nil || !strings.HasPrefix(path, "/dev/") {
			return flagErrorf("invalid argument %q for \"--blkio-weight-device\" flag: invalid weight for device: %s", v, v)
		}
		hc.BlkioWeightDevice = append(hc.BlkioWeightDevice, &blkiodev.WeightDevice{Path: path, Weight: uint16(n)})
	}
	var err error
	if hc.BlkioDeviceReadBps, err = throttle("device-read-bps", o.readBps, true); err != nil {
		return err
	}
	if hc.BlkioDeviceWriteBps, err = throttle("device-write-bps", o.writeBps, true); err != nil {
		return err
	}
	if hc.BlkioDeviceReadIOps, err = throttle("device-read-iops", o.readIops, false); err != nil {
		return err
	}
	if hc.BlkioDeviceWriteIOps, err = throttle("device-write-iops", o.writeIops, false); err != nil {
		return err
	}
	hc.DeviceCgroupRules = o.deviceCgroupRules
	hc.Links = o.links
	hc.VolumesFrom = o.volumesFrom
	hc.CgroupParent = o.cgroupParent
	hc.Isolation = container.Isolation(o.isolation)
	hc.UsernsMode = container.UsernsMode(o.userns)
	hc.VolumeDriver = o.volumeDriver
	hc.CPUCount, hc.CPUPercent = o.cpuCount, o.cpuPercent
	hc.CPURealtimePeriod, hc.CPURealtimeRuntime = o.cpuRtPeriod, o.cpuRtRun
	hc.IOMaximumIOps = o.ioMaxIops
	if o.ioMaxBandwidth != "" {
		n, err := units.RAMInBytes(o.ioMaxBandwidth)
		if err != nil {
			return flagErrorf("invalid argument %q for \"--io-maxbandwidth\" flag: %w", o.ioMaxBandwidth, err)
		}
		hc.IOMaximumBandwidth = uint64(n)
	}
	if o.memorySwappiness != -1 {
		hc.MemorySwappiness = &o.memorySwappiness
	}
	if fs.Changed("oom-kill-disable") {
		hc.OomKillDisable = &o.oomKillDisable
	}
	for _, so := range o.storageOpts {
		k, v, ok := strings.Cut(so, "=")
		if !ok {
			return fmt.Errorf("invalid storage option %s", so)
		}
		if hc.StorageOpt == nil {
			hc.StorageOpt = map[string]string{}
		}
		hc.StorageOpt[k] = v
	}
	if o.gpus != "" {
		req := container.DeviceRequest{Capabilities: [][]string{{"gpu"}}, Count: -1}
		if o.gpus != "all" {
			n, err := strconv.Atoi(strings.TrimPrefix(o.gpus, "count="))
			if err != nil {
				return flagErrorf("invalid argument %q for \"--gpus\" flag: %w", o.gpus, err)
			}
			req.Count = n
		}
		hc.DeviceRequests = append(hc.DeviceRequests, req)
	}
	if o.healthCmd != "" || o.healthInterval != 0 || o.healthTimeout != 0 || o.healthRetries != 0 || o.healthStartPeriod != 0 || o.healthStartInterval != 0 {
		if o.noHealthcheck {
			return errors.New("--no-healthcheck conflicts with --health-* options")
		}
		h := &container.HealthConfig{Interval: o.healthInterval, Timeout: o.healthTimeout, Retries: o.healthRetries,
			StartPeriod: o.healthStartPeriod, StartInterval: o.healthStartInterval}
		if o.healthCmd != "" {
			h.Test = []string{"CMD-SHELL", o.healthCmd}
		}
		cfg.Healthcheck = h
	}
	return nil
}
