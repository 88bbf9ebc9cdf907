package gateway

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func init() {
	registerResponse(func(ctx context.Context, c *enginev1.Container) (any, error) {
		out := containerInspectJSON(c)
		oldAliases(ctx, c, out.NetworkSettings.Networks)
		if hc := out.Config.Healthcheck; hc != nil && versionBefore(ctx, "1.44") {
			hc.StartInterval = 0 // dockerd shows it from API 1.44
		}
		return out, nil
	})
	registerResponse(func(_ context.Context, m *enginev1.ContainerListResponse) (any, error) {
		return summaries.list(m.GetContainers())
	})
	registerResponse(func(_ context.Context, m *enginev1.ContainerTopResponse) (any, error) {
		out := container.TopResponse{Titles: m.GetTitles(), Processes: [][]string{}}
		for _, p := range m.GetProcesses() {
			out.Processes = append(out.Processes, p.GetFields())
		}
		return out, nil
	})
	registerResponse(func(_ context.Context, m *enginev1.ContainerPruneResponse) (any, error) {
		return container.PruneReport{ContainersDeleted: nonNil(m.GetDeleted()), SpaceReclaimed: uint64(m.GetSpaceReclaimed())}, nil
	})
	// Replies with no body, and Docker's status for them.
	for _, m := range []proto.Message{&enginev1.ContainerStartResponse{}, &enginev1.ContainerStopResponse{}, &enginev1.ContainerRestartResponse{},
		&enginev1.ContainerKillResponse{}, &enginev1.ContainerPauseResponse{}, &enginev1.ContainerUnpauseResponse{},
		&enginev1.ContainerRenameResponse{}, &enginev1.ContainerRemoveResponse{}} {
		responseConverters[m.ProtoReflect().Descriptor().FullName()] = func(context.Context, proto.Message) (any, error) { return noBody{}, nil }
		successStatus[m.ProtoReflect().Descriptor().FullName()] = http.StatusNoContent
	}
	registerResponse(func(context.Context, *enginev1.ContainerResizeResponse) (any, error) { return noBody{}, nil })
}

func timeString(t *timestamppb.Timestamp) string {
	if t == nil {
		return "0001-01-01T00:00:00Z"
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func containerConfig(c *enginev1.ContainerConfig) *container.Config {
	out := &container.Config{
		Hostname: c.GetHostname(), Domainname: c.GetDomainname(), User: c.GetUser(),
		AttachStdin: c.GetAttachStdin(), AttachStdout: c.GetAttachStdout(), AttachStderr: c.GetAttachStderr(),
		Tty: c.GetTty(), OpenStdin: c.GetOpenStdin(), StdinOnce: c.GetStdinOnce(), Env: nonNil(c.GetEnv()),
		Cmd: c.GetCmd(), Image: c.GetImage(), WorkingDir: c.GetWorkingDir(), Entrypoint: c.GetEntrypoint(),
		Labels: c.GetLabels(), StopSignal: c.GetStopSignal(),
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if c.StopTimeout != nil {
		t := int(c.GetStopTimeout())
		out.StopTimeout = &t
	}
	for _, v := range c.GetVolumes() {
		if out.Volumes == nil {
			out.Volumes = map[string]struct{}{}
		}
		out.Volumes[v] = struct{}{}
	}
	if h := c.GetHealthcheck(); h != nil {
		out.Healthcheck = &container.HealthConfig{Test: h.GetTest(), Interval: time.Duration(h.GetInterval()), Timeout: time.Duration(h.GetTimeout()),
			StartPeriod: time.Duration(h.GetStartPeriod()), StartInterval: time.Duration(h.GetStartInterval()), Retries: int(h.GetRetries())}
	}
	for _, p := range c.GetExposedPorts() {
		if port, err := network.ParsePort(p); err == nil {
			if out.ExposedPorts == nil {
				out.ExposedPorts = network.PortSet{}
			}
			out.ExposedPorts[port] = struct{}{}
		}
	}
	return out
}

// systemPathsUnconfined is oci.SystemPathsUnconfined: how engined's API
// says "no masked or read-only system paths".
const systemPathsUnconfined = "systempaths=unconfined"

func hostConfig(h *enginev1.HostConfig) *container.HostConfig {
	secOpt := h.GetSecurityOpt()
	var maskedPaths, readonlyPaths []string
	if slices.Contains(secOpt, systemPathsUnconfined) {
		// Shown as dockerd shows it: empty lists, not a security option.
		if secOpt = slices.DeleteFunc(slices.Clone(secOpt), func(o string) bool { return o == systemPathsUnconfined }); len(secOpt) == 0 {
			secOpt = nil
		}
		maskedPaths, readonlyPaths = []string{}, []string{}
	}
	out := &container.HostConfig{
		Binds: h.GetBinds(), NetworkMode: container.NetworkMode(h.GetNetworkMode()), AutoRemove: h.GetAutoRemove(),
		CapAdd: h.GetCapAdd(), CapDrop: h.GetCapDrop(), Privileged: h.GetPrivileged(), ReadonlyRootfs: h.GetReadonlyRootfs(),
		ShmSize: h.GetShmSize(), Sysctls: h.GetSysctls(), SecurityOpt: secOpt, Tmpfs: h.GetTmpfs(), ExtraHosts: h.GetExtraHosts(),
		Links: h.GetLinks(), VolumesFrom: h.GetVolumesFrom(),
		MaskedPaths: maskedPaths, ReadonlyPaths: readonlyPaths,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(h.GetRestartPolicy().GetName()), MaximumRetryCount: int(h.GetRestartPolicy().GetMaximumRetryCount())},
		LogConfig:     container.LogConfig{Type: cmp.Or(h.GetLogConfig().GetType(), "json-file"), Config: h.GetLogConfig().GetConfig()},
		CgroupnsMode:  container.CgroupnsMode(h.GetCgroupnsMode()), PidMode: container.PidMode(h.GetPidMode()),
		IpcMode: container.IpcMode(h.GetIpcMode()), UTSMode: container.UTSMode(h.GetUtsMode()), Isolation: container.Isolation(h.GetIsolation()),
		Runtime: h.GetRuntime(), VolumeDriver: h.GetVolumeDriver(), DNSSearch: nonNil(h.GetDnsSearch()), DNSOptions: nonNil(h.GetDnsOptions()),
		GroupAdd: h.GetGroupAdd(), OomScoreAdj: int(h.GetOomScoreAdj()), Annotations: h.GetAnnotations(),
	}
	if !slices.Contains(h.GetSecurityOpt(), systemPathsUnconfined) {
		// The lists applied, as dockerd records them.
		out.MaskedPaths, out.ReadonlyPaths = h.GetMaskedPaths(), h.GetReadonlyPaths()
	}
	out.DNS = []netip.Addr{}
	for _, d := range h.GetDns() {
		if a, err := netip.ParseAddr(d); err == nil {
			out.DNS = append(out.DNS, a)
		}
	}
	if cs := h.GetConsoleSize(); len(cs) == 2 {
		out.ConsoleSize = [2]uint{uint(cs[0]), uint(cs[1])}
	}
	for _, m := range h.GetMounts() {
		dm := mount.Mount{Type: mount.Type(m.GetType()), Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadOnly(),
			Consistency: mount.Consistency(m.GetConsistency())}
		if m.GetTmpfsSize() != 0 || m.GetTmpfsMode() != 0 {
			dm.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.GetTmpfsSize(), Mode: fileMode(m.GetTmpfsMode())}
		}
		if m.GetBindPropagation() != "" || m.GetBindNonRecursive() || m.GetBindCreateMountpoint() {
			dm.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(m.GetBindPropagation()), NonRecursive: m.GetBindNonRecursive(),
				CreateMountpoint: m.GetBindCreateMountpoint()}
		}
		if m.GetVolumeNoCopy() || len(m.GetVolumeLabels()) > 0 || m.GetVolumeSubpath() != "" || m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOpts()) > 0 {
			dm.VolumeOptions = &mount.VolumeOptions{NoCopy: m.GetVolumeNoCopy(), Labels: m.GetVolumeLabels(), Subpath: m.GetVolumeSubpath()}
			if m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOpts()) > 0 {
				dm.VolumeOptions.DriverConfig = &mount.Driver{Name: m.GetVolumeDriver(), Options: m.GetVolumeDriverOpts()}
			}
		}
		out.Mounts = append(out.Mounts, dm)
	}
	if out.NetworkMode == "" {
		out.NetworkMode = "none"
	}
	// dockerd's is {} without -p.
	out.PortBindings, out.PublishAllPorts = network.PortMap{}, h.GetPublishAllPorts()
	for _, b := range h.GetPortBindings() {
		port, err := network.ParsePort(b.GetContainerPort())
		if err != nil {
			continue
		}
		pb := network.PortBinding{HostPort: b.GetHostPort()}
		pb.HostIP, _ = netip.ParseAddr(b.GetHostIp())
		out.PortBindings[port] = append(out.PortBindings[port], pb)
	}
	if out.RestartPolicy.Name == "" {
		out.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if out.LogConfig.Config == nil {
		out.LogConfig.Config = map[string]string{}
	}
	out.Resources = container.Resources{
		Memory: h.GetMemory(), MemoryReservation: h.GetMemoryReservation(), MemorySwap: h.GetMemorySwap(),
		NanoCPUs: h.GetNanoCpus(), CPUShares: h.GetCpuShares(), CPUQuota: h.GetCpuQuota(), CPUPeriod: h.GetCpuPeriod(),
		CpusetCpus: h.GetCpusetCpus(), CpusetMems: h.GetCpusetMems(), DeviceCgroupRules: h.GetDeviceCgroupRules(),
		Devices: []container.DeviceMapping{},
	}
	for _, d := range h.GetDevices() {
		out.Devices = append(out.Devices, container.DeviceMapping{PathOnHost: d.GetPathOnHost(), PathInContainer: d.GetPathInContainer(),
			CgroupPermissions: d.GetCgroupPermissions()})
	}
	if h.PidsLimit != nil {
		p := h.GetPidsLimit()
		out.PidsLimit = &p
	}
	if h.GetInit() {
		// dockerd's is null unless --init (or --init=false) was given;
		// the proto keeps only whether it is on.
		init := true
		out.Init = &init
	}
	for _, u := range h.GetUlimits() {
		out.Ulimits = append(out.Ulimits, &container.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	return out
}

func containerInspect(c *enginev1.Container) container.InspectResponse {
	st := c.GetState()
	return container.InspectResponse{
		ID: c.GetId(), Created: timeString(c.GetCreated()), Path: c.GetPath(), Args: nonNil(c.GetArgs()),
		State: &container.State{
			Status: container.ContainerState(st.GetStatus()), Running: st.GetRunning(), Paused: st.GetPaused(), Restarting: st.GetRestarting(),
			OOMKilled: st.GetOomKilled(), Dead: st.GetDead(), Pid: int(st.GetPid()), ExitCode: int(st.GetExitCode()), Error: st.GetError(),
			StartedAt: timeString(st.GetStartedAt()), FinishedAt: timeString(st.GetFinishedAt()),
			Health: health(st.GetHealth()),
		},
		Image: c.GetImageId(), ResolvConfPath: c.GetResolvConfPath(), HostnamePath: c.GetHostnamePath(), HostsPath: c.GetHostsPath(),
		LogPath: c.GetLogPath(), Name: c.GetName(), RestartCount: int(c.GetRestartCount()), Driver: c.GetDriver(), Platform: "linux",
		ExecIDs: nil, HostConfig: hostConfig(c.GetHostConfig()),
		GraphDriver: &storage.DriverData{Name: c.GetDriver(), Data: c.GetGraphDriverData()},
		Mounts:      mountPoints(c.GetMounts()), Config: containerConfig(c.GetConfig()),
		NetworkSettings: networkSettings(c.GetNetworkSettings()),
		// Sizes are there when asked for (?size=1): the root fs has at
		// least the image's bytes.
		SizeRw: sizeIfAsked(c, c.GetSizeRw()), SizeRootFs: sizeIfAsked(c, c.GetSizeRootFs()),
	}
}

// health is State.Health in dockerd's shape (nil: no health check).
func health(h *enginev1.Health) *container.Health {
	if h == nil {
		return nil
	}
	out := &container.Health{Status: container.HealthStatus(h.GetStatus()), FailingStreak: int(h.GetFailingStreak()),
		Log: []*container.HealthcheckResult{}}
	for _, l := range h.GetLog() {
		out.Log = append(out.Log, &container.HealthcheckResult{Start: l.GetStart().AsTime(), End: l.GetEnd().AsTime(),
			ExitCode: int(l.GetExitCode()), Output: l.GetOutput()})
	}
	return out
}

func sizeIfAsked(c *enginev1.Container, n int64) *int64 {
	if c.GetSizeRootFs() == 0 {
		return nil
	}
	return &n
}

func containerSummary(c *enginev1.Container) container.Summary {
	st := c.GetState()
	s := container.Summary{
		ID: c.GetId(), Names: []string{c.GetName()}, Image: c.GetImage(), ImageID: c.GetImageId(), Command: c.GetCommand(),
		Created: c.GetCreated().GetSeconds(), Ports: []container.PortSummary{}, Labels: c.GetConfig().GetLabels(),
		State: container.ContainerState(st.GetStatus()), Status: humanStatus(st), Mounts: mountPoints(c.GetMounts()),
		SizeRw: c.GetSizeRw(), SizeRootFs: c.GetSizeRootFs(),
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.HostConfig.NetworkMode = cmp.Or(c.GetHostConfig().GetNetworkMode(), "none")
	s.Ports = portSummaries(c.GetNetworkSettings().GetPorts())
	s.NetworkSettings = &container.NetworkSettingsSummary{Networks: networkSettings(c.GetNetworkSettings()).Networks}
	return s
}

// fileMode turns permission bits (with 01000 for sticky) into Go's.
func fileMode(bits uint32) os.FileMode {
	m := os.FileMode(bits & 0o777)
	if bits&0o1000 != 0 {
		m |= os.ModeSticky
	}
	if bits&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if bits&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	return m
}

// modeBits is fileMode's inverse.
func modeBits(m os.FileMode) uint32 {
	// The Docker CLI sends the raw bits (01777 for a sticky 0777); Go
	// clients may send os.FileMode's flags.
	b := uint32(m) & 0o7777
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	return b
}

// humanStatus is the STATUS column of docker ps ("Up 3 seconds",
// "Exited (0) 2 minutes ago").
func humanStatus(st *enginev1.ContainerState) string {
	switch st.GetStatus() {
	case "running":
		up := "Up " + humanDuration(time.Since(st.GetStartedAt().AsTime()))
		switch h := st.GetHealth().GetStatus(); h {
		case "":
		case "starting":
			up += " (health: starting)"
		default:
			up += " (" + h + ")"
		}
		return up
	case "paused":
		return "Up " + humanDuration(time.Since(st.GetStartedAt().AsTime())) + " (Paused)"
	case "exited":
		return fmt.Sprintf("Exited (%d) %s ago", st.GetExitCode(), humanDuration(time.Since(st.GetFinishedAt().AsTime())))
	case "restarting":
		return fmt.Sprintf("Restarting (%d) %s ago", st.GetExitCode(), humanDuration(time.Since(st.GetFinishedAt().AsTime())))
	case "created":
		return "Created"
	}
	return st.GetStatus()
}

// humanDuration is go-units' HumanDuration, which dockerd's Status uses
// ("Less than a second", "About a minute", "3 weeks", "2 years").
func humanDuration(d time.Duration) string { return units.HumanDuration(d) }

// containerCreate is POST /containers/create: Docker's body is the Config
// with HostConfig inside it.
func (h *handlers) containerCreate(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := CreateRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Name, req.Platform = r.URL.Query().Get("name"), r.URL.Query().Get("platform")
	if versionBefore(r.Context(), "1.25") {
		// Before API 1.25 the client removed --rm containers itself.
		req.HostConfig.AutoRemove = false
	}
	if hc := req.GetConfig().GetHealthcheck(); hc != nil && versionBefore(r.Context(), "1.44") {
		// StartInterval came with API 1.44; dockerd ignores it before.
		hc.StartInterval = 0
	}
	resp, err := h.engine.ContainerCreate(r.Context(), req)
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(container.CreateResponse{ID: resp.GetId(), Warnings: nonNil(resp.GetWarnings())})
}

// CreateRequest turns the body of Docker's POST /containers/create into
// the Engine request (without the name and platform, which come from the
// query). An error is a bad request.
func CreateRequest(body []byte) (*enginev1.ContainerCreateRequest, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, errors.New("invalid JSON: the request body is empty")
	}
	body = stringsAsLists(body)
	var cr container.CreateRequest
	if err := json.Unmarshal(body, &cr); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	var present map[string]json.RawMessage
	json.Unmarshal(body, &present)
	if err := refuseUnsupported(&cr, present); err != nil {
		return nil, err
	}
	set := func(k string) bool { v, ok := present[k]; return ok && string(v) != "null" }
	c := cr.Config
	if c == nil {
		c = &container.Config{}
	}
	cfg := &enginev1.ContainerConfig{
		Hostname: c.Hostname, Domainname: c.Domainname, User: c.User, AttachStdin: c.AttachStdin, AttachStdout: c.AttachStdout,
		AttachStderr: c.AttachStderr, Tty: c.Tty, OpenStdin: c.OpenStdin, StdinOnce: c.StdinOnce, Env: c.Env,
		Cmd: c.Cmd, CmdSet: set("Cmd"), Entrypoint: c.Entrypoint, EntrypointSet: set("Entrypoint"),
		Image: c.Image, WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
	}
	if h := c.Healthcheck; h != nil {
		if h.Retries < math.MinInt32 || h.Retries > math.MaxInt32 {
			return nil, fmt.Errorf("invalid Healthcheck.Retries %d: out of range", h.Retries)
		}
		cfg.Healthcheck = &enginev1.HealthConfig{Test: h.Test, Interval: int64(h.Interval), Timeout: int64(h.Timeout),
			StartPeriod: int64(h.StartPeriod), StartInterval: int64(h.StartInterval), Retries: int32(h.Retries)}
	}
	// `--entrypoint ""` arrives as [""]: no entrypoint.
	if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		cfg.Entrypoint = nil
	}
	if c.StopTimeout != nil {
		if *c.StopTimeout < math.MinInt32 || *c.StopTimeout > math.MaxInt32 {
			return nil, fmt.Errorf("invalid StopTimeout %d: out of range", *c.StopTimeout)
		}
		t := int32(*c.StopTimeout)
		cfg.StopTimeout = &t
	}
	for p := range c.ExposedPorts {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p.String())
	}
	slices.Sort(cfg.ExposedPorts)
	for v := range c.Volumes {
		cfg.Volumes = append(cfg.Volumes, v)
	}
	req := &enginev1.ContainerCreateRequest{Config: cfg, HostConfig: &enginev1.HostConfig{}}
	if hc := cr.HostConfig; hc != nil {
		if n := hc.RestartPolicy.MaximumRetryCount; n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("invalid RestartPolicy.MaximumRetryCount %d: out of range", n)
		}
		req.HostConfig = &enginev1.HostConfig{
			Binds: hc.Binds, NetworkMode: string(hc.NetworkMode), AutoRemove: hc.AutoRemove, CapAdd: hc.CapAdd, CapDrop: hc.CapDrop,
			Privileged: hc.Privileged, ReadonlyRootfs: hc.ReadonlyRootfs, Memory: hc.Memory, MemoryReservation: hc.MemoryReservation,
			MemorySwap: hc.MemorySwap, NanoCpus: hc.NanoCPUs, CpuShares: hc.CPUShares, CpuQuota: hc.CPUQuota, CpuPeriod: hc.CPUPeriod,
			CpusetCpus: hc.CpusetCpus, CpusetMems: hc.CpusetMems, PidsLimit: hc.PidsLimit, ShmSize: hc.ShmSize, Sysctls: hc.Sysctls,
			SecurityOpt: hc.SecurityOpt, Tmpfs: hc.Tmpfs, ExtraHosts: hc.ExtraHosts,
			RestartPolicy: &enginev1.RestartPolicy{Name: string(hc.RestartPolicy.Name), MaximumRetryCount: int32(hc.RestartPolicy.MaximumRetryCount)},
			LogConfig:     &enginev1.LogConfig{Type: hc.LogConfig.Type, Config: hc.LogConfig.Config},
			CgroupnsMode:  string(hc.CgroupnsMode), DeviceCgroupRules: hc.DeviceCgroupRules, PidMode: string(hc.PidMode),
			IpcMode: string(hc.IpcMode), UtsMode: string(hc.UTSMode), Isolation: string(hc.Isolation), Runtime: hc.Runtime,
			VolumeDriver: hc.VolumeDriver, DnsSearch: hc.DNSSearch, DnsOptions: hc.DNSOptions, GroupAdd: hc.GroupAdd,
			OomScoreAdj: int32(hc.OomScoreAdj), Annotations: hc.Annotations, PublishAllPorts: hc.PublishAllPorts,
			PortBindings: portBindings(hc.PortBindings),
		}
		if hc.ConsoleSize != [2]uint{} {
			req.HostConfig.ConsoleSize = []uint32{uint32(hc.ConsoleSize[0]), uint32(hc.ConsoleSize[1])}
		}
		for _, d := range hc.Devices {
			req.HostConfig.Devices = append(req.HostConfig.Devices, &enginev1.DeviceMapping{PathOnHost: d.PathOnHost,
				PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
		}
		for _, m := range hc.Mounts {
			pm := &enginev1.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, Consistency: string(m.Consistency)}
			if t := m.TmpfsOptions; t != nil {
				pm.TmpfsSize, pm.TmpfsMode = t.SizeBytes, modeBits(t.Mode)
			}
			if b := m.BindOptions; b != nil {
				pm.BindPropagation, pm.BindNonRecursive, pm.BindCreateMountpoint = string(b.Propagation), b.NonRecursive, b.CreateMountpoint
			}
			if v := m.VolumeOptions; v != nil {
				pm.VolumeNoCopy, pm.VolumeLabels, pm.VolumeSubpath = v.NoCopy, v.Labels, v.Subpath
				if d := v.DriverConfig; d != nil {
					pm.VolumeDriver, pm.VolumeDriverOpts = d.Name, d.Options
				}
			}
			req.HostConfig.Mounts = append(req.HostConfig.Mounts, pm)
		}
		req.HostConfig.VolumesFrom = hc.VolumesFrom
		if hc.Init != nil {
			req.HostConfig.Init = *hc.Init
		}
		for _, d := range hc.DNS {
			req.HostConfig.Dns = append(req.HostConfig.Dns, d.String())
		}
		for _, u := range hc.Ulimits {
			req.HostConfig.Ulimits = append(req.HostConfig.Ulimits, &enginev1.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
		}
		// The Docker CLI sends --security-opt systempaths=unconfined as
		// empty MaskedPaths and ReadonlyPaths; engined's API carries it
		// as that security option. Lists of their own are not supported.
		if hc.MaskedPaths != nil || hc.ReadonlyPaths != nil {
			if hc.MaskedPaths == nil || hc.ReadonlyPaths == nil || len(hc.MaskedPaths) > 0 || len(hc.ReadonlyPaths) > 0 {
				return nil, errors.New("HostConfig.MaskedPaths and ReadonlyPaths: only both empty (--security-opt systempaths=unconfined) are supported")
			}
			req.HostConfig.SecurityOpt = append(slices.Clone(req.HostConfig.SecurityOpt), systemPathsUnconfined)
		}
		req.HostConfig.Links = hc.Links
	}
	if nc := cr.NetworkingConfig; nc != nil {
		mode := req.HostConfig.GetNetworkMode()
		for name, ep := range nc.EndpointsConfig {
			if ep == nil {
				ep = &network.EndpointSettings{}
			}
			epc := endpointConfig(ep)
			// Links of an endpoint are links of the container: engined
			// resolves them on any network the two share.
			for _, l := range ep.Links {
				if !slices.Contains(req.HostConfig.Links, l) {
					req.HostConfig.Links = append(req.HostConfig.Links, l)
				}
			}
			epc.Links = nil
			if name == mode || (mode == "" || mode == "default") && (name == "bridge" || name == "default") {
				req.Endpoint = epc
				continue
			}
			if req.Endpoints == nil {
				req.Endpoints = map[string]*enginev1.EndpointConfig{}
			}
			req.Endpoints[name] = epc
		}
	}
	return req, nil
}

// containerWait is POST /containers/{id}/wait. The 200 goes out at once:
// `docker run` waits for it before starting the container.
func (h *handlers) containerWait(w http.ResponseWriter, r *http.Request, p map[string]string) {
	ctx := r.Context()
	if _, err := h.engine.ContainerInspect(ctx, &enginev1.ContainerInspectRequest{Id: p["id"]}); err != nil {
		writeGRPCError(w, err)
		return
	}
	stream, err := h.engine.ContainerWait(ctx, &enginev1.ContainerWaitRequest{Id: p["id"], Condition: r.URL.Query().Get("condition")})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	// The engine's headers say the wait is in place, so a client that
	// starts the container after this 200 cannot miss the exit.
	if _, err := stream.Header(); err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	resp, err := stream.Recv()
	out := container.WaitResponse{}
	if err != nil {
		out.Error = &container.WaitExitError{Message: grpcMessage(err)}
	} else {
		out.StatusCode = resp.GetStatusCode()
		if resp.GetError() != "" {
			out.Error = &container.WaitExitError{Message: resp.GetError()}
		}
	}
	json.NewEncoder(w).Encode(out)
}

// frameWriter writes Docker's multiplexed stream (8-byte header: stream,
// 0, 0, 0, big-endian length), or the raw bytes for a TTY.
type frameWriter struct {
	w   io.Writer
	raw bool
}

func (f frameWriter) write(stream int32, data []byte) error {
	if f.raw {
		_, err := f.w.Write(data)
		return err
	}
	var hdr [8]byte
	hdr[0] = byte(stream)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(data)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := f.w.Write(data)
	return err
}

func boolParam(q map[string][]string, k string) bool {
	v := ""
	if vs := q[k]; len(vs) > 0 {
		v = vs[0]
	}
	b, _ := strconv.ParseBool(v)
	return b || v == "1"
}

// parseDockerTime reads since/until: Unix seconds with optional fraction.
func parseDockerTime(v string) (*timestamppb.Timestamp, error) {
	if v == "" || v == "0" {
		return nil, nil
	}
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, fmt.Errorf("invalid time %q", v)
		}
		return timestamppb.New(t), nil
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		ns, _ = strconv.ParseInt(frac, 10, 64)
	}
	return timestamppb.New(time.Unix(s, ns)), nil
}

// containerLogs is GET /containers/{id}/logs.
func (h *handlers) containerLogs(w http.ResponseWriter, r *http.Request, p map[string]string) {
	ctx := r.Context()
	q := r.URL.Query()
	c, err := h.engine.ContainerInspect(ctx, &enginev1.ContainerInspectRequest{Id: p["id"]})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	req := &enginev1.ContainerLogsRequest{Id: c.GetId(), Follow: boolParam(q, "follow"), Stdout: boolParam(q, "stdout"), Stderr: boolParam(q, "stderr"),
		Timestamps: boolParam(q, "timestamps"), Tail: -1}
	// As dockerd reads it: a number of lines, anything else is all.
	if n, err := strconv.Atoi(q.Get("tail")); err == nil && n >= 0 {
		req.Tail = int32(min(n, math.MaxInt32))
	}
	if req.Since, err = parseDockerTime(q.Get("since")); err == nil {
		req.Until, err = parseDockerTime(q.Get("until"))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	stream, err := h.engine.ContainerLogs(ctx, req)
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	// Without follow, an error before the first entry is still a status.
	// With it, the headers go at once, as dockerd sends them: a client
	// waits for them, and the selected stream may stay silent for hours.
	var first *enginev1.LogEntry
	if !req.GetFollow() {
		if first, err = stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
			writeGRPCError(w, err)
			return
		}
	}
	tty := c.GetConfig().GetTty()
	w.Header().Set("Content-Type", streamContentType(r.Context(), !tty))
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	if req.GetFollow() {
		first, err = stream.Recv()
	}
	fw := frameWriter{w: w, raw: tty}
	for e := first; err == nil; e, err = stream.Recv() {
		data := e.GetData()
		if req.GetTimestamps() {
			data = append([]byte(e.GetTime().AsTime().UTC().Format(time.RFC3339Nano)+" "), data...)
		}
		if fw.write(e.GetStream(), data) != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// containerAttach is POST /containers/{id}/attach: the connection is
// hijacked and carries stdin in and output out.
func (h *handlers) containerAttach(w http.ResponseWriter, r *http.Request, p map[string]string) {
	// Not r.Context(): net/http cancels that when the client half-closes
	// its side, which is how a client ends stdin on a hijacked stream.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	q := r.URL.Query()
	c, err := h.engine.ContainerInspect(ctx, &enginev1.ContainerInspectRequest{Id: p["id"]})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	opts := &enginev1.ContainerAttachOptions{Id: c.GetId(), Stdin: boolParam(q, "stdin"), Stdout: boolParam(q, "stdout"), Stderr: boolParam(q, "stderr"),
		Stream: boolParam(q, "stream"), Logs: boolParam(q, "logs"), DetachKeys: q.Get("detachKeys")}
	stream, err := h.engine.ContainerAttach(ctx)
	if err == nil {
		err = stream.Send(&enginev1.ContainerAttachRequest{Options: opts})
	}
	if err == nil {
		// The first reply says the attach is accepted (invalid detach
		// keys, say, come instead), before the connection is hijacked.
		_, err = stream.Recv()
	}
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	hijack(w, r, c.GetConfig().GetTty(), opts.GetStdin(), hijackedStream{
		sendStdin:  func(b []byte) error { return stream.Send(&enginev1.ContainerAttachRequest{Stdin: b}) },
		closeStdin: func() { stream.Send(&enginev1.ContainerAttachRequest{CloseStdin: true}) },
		closeSend:  func() { stream.CloseSend() },
		recv:       stream.Recv,
	})
}

// hijackedStream is the engine side of a hijacked connection.
type hijackedStream struct {
	sendStdin  func([]byte) error
	closeStdin func()
	closeSend  func()
	recv       func() (*enginev1.LogEntry, error)
}

// streamContentType is the Content-Type of an output stream, as dockerd
// chooses it: multiplexed only from API 1.42 (older clients were sent
// raw-stream for both, the frames being there all the same).
func streamContentType(ctx context.Context, multiplexed bool) string {
	if multiplexed && !versionBefore(ctx, "1.42") {
		return "application/vnd.docker.multiplexed-stream"
	}
	return "application/vnd.docker.raw-stream"
}

// hijack takes the connection over (101 UPGRADED when the client asked
// to upgrade, as the docker CLI does), copies the client's input to the
// engine as stdin and the engine's output to the client: raw with a
// terminal, multiplexed in frames without. As with dockerd, the content
// type of a reply that is not an upgrade is always raw-stream.
func hijack(w http.ResponseWriter, r *http.Request, tty, stdin bool, s hijackedStream) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, http.StatusInternalServerError, "a hijacked stream needs an HTTP/1.1 connection")
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	// The server's read deadlines are for requests; a hijacked stream
	// may sit idle for hours.
	conn.SetDeadline(time.Time{})
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", streamContentType(r.Context(), !tty))
	} else {
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", streamContentType(r.Context(), false))
	}
	if stdin {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := brw.Reader.Read(buf)
				if n > 0 {
					if s.sendStdin(append([]byte(nil), buf[:n]...)) != nil {
						return
					}
				}
				if err != nil {
					s.closeStdin()
					s.closeSend()
					return
				}
			}
		}()
	} else {
		s.closeSend()
	}
	fw := frameWriter{w: conn, raw: tty}
	for {
		e, err := s.recv()
		if err != nil {
			return
		}
		if fw.write(e.GetStream(), e.GetData()) != nil {
			return
		}
	}
}

func init() {
	registerRequest(func(data []byte, m *enginev1.ContainerUpdateRequest) error {
		var u container.UpdateConfig
		if err := json.Unmarshal(data, &u); err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		if err := unsupportedFields("UpdateConfig", reflect.ValueOf(u.Resources), supportedUpdate); err != nil {
			return err
		}
		m.Resources = &enginev1.HostConfig{
			Memory: u.Memory, MemorySwap: u.MemorySwap, MemoryReservation: u.MemoryReservation, NanoCpus: u.NanoCPUs,
			CpuShares: u.CPUShares, CpuQuota: u.CPUQuota, CpuPeriod: u.CPUPeriod, CpusetCpus: u.CpusetCpus, CpusetMems: u.CpusetMems,
			PidsLimit:     u.PidsLimit,
			RestartPolicy: &enginev1.RestartPolicy{Name: string(u.RestartPolicy.Name), MaximumRetryCount: int32(u.RestartPolicy.MaximumRetryCount)},
		}
		return nil
	})
	registerResponse(func(_ context.Context, m *enginev1.ContainerUpdateResponse) (any, error) {
		return container.UpdateResponse{Warnings: nonNil(m.GetWarnings())}, nil
	})
}

// mountPoints are a container's Mounts as dockerd shows them.
func mountPoints(mps []*enginev1.MountPoint) []container.MountPoint {
	out := []container.MountPoint{}
	for _, mp := range mps {
		out = append(out, container.MountPoint{Type: mount.Type(mp.GetType()), Name: mp.GetName(), Source: mp.GetSource(),
			Destination: mp.GetDestination(), Driver: mp.GetDriver(), Mode: mp.GetMode(), RW: mp.GetRw(),
			Propagation: mount.Propagation(mp.GetPropagation())})
	}
	return out
}
