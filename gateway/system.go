package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/engined/engined/internal/errdefs"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"

	"github.com/engined/engined/internal/version"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func init() {
	registerResponse(versionToDocker)
	registerResponse(infoToDocker)
}

// ping answers GET and HEAD /_ping. Clients negotiate their API version from
// its headers, so it must work without a version prefix and stay cheap.
func (h *handlers) ping(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	resp, err := h.engine.Ping(r.Context(), &enginev1.PingRequest{})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	hd.Set("Pragma", "no-cache")
	hd.Set("Builder-Version", resp.GetBuilderVersion())
	hd.Set("Swarm", "inactive")
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		hd.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	hd.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
}

// Plugins are not supported; these answers keep clients that list plugins,
// and `docker inspect`'s fall-through over object kinds, working.
func (h *handlers) pluginList(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("[]\n"))
}

func (h *handlers) pluginInspect(w http.ResponseWriter, _ *http.Request, p map[string]string) {
	writeError(w, http.StatusNotFound, "plugin "+strconv.Quote(p["name"])+" not found")
}

func versionToDocker(_ context.Context, v *enginev1.SystemVersionResponse) (any, error) {
	out := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: v.GetPlatformName()},
		Version:       v.GetVersion(),
		APIVersion:    v.GetApiVersion(),
		MinAPIVersion: v.GetMinApiVersion(),
		Os:            v.GetOs(),
		Arch:          v.GetArch(),
		GitCommit:     v.GetGitCommit(),
		GoVersion:     v.GetGoVersion(),
		KernelVersion: v.GetKernelVersion(),
		Experimental:  v.GetExperimental(),
	}
	if t := v.GetBuildTime(); t != nil {
		out.BuildTime = t.AsTime().UTC().Format(time.RFC3339Nano)
	}
	for _, c := range v.GetComponents() {
		out.Components = append(out.Components, system.ComponentVersion{Name: c.GetName(), Version: c.GetVersion(), Details: c.GetDetails()})
	}
	return out, nil
}

// dockerInfo adds to the moby type the fields API v1.51 and older clients
// still expect (see the API CHANGELOG for when each was dropped).
type dockerInfo struct {
	system.Info
	KernelMemory      *bool         `json:"KernelMemory,omitempty"` // before 1.42
	KernelMemoryTCP   bool          `json:"KernelMemoryTCP"`
	BridgeNfIptables  *bool         `json:"BridgeNfIptables,omitempty"`  // before 1.50
	BridgeNfIP6tables *bool         `json:"BridgeNfIp6tables,omitempty"` // before 1.50
	ContainerdCommit  versionCommit `json:"ContainerdCommit"`
	RuncCommit        versionCommit `json:"RuncCommit"`
	InitCommit        versionCommit `json:"InitCommit"`
}

// versionCommit is system.Commit with Expected, which API 1.49 dropped.
type versionCommit struct {
	ID       string
	Expected *string `json:",omitempty"`
}

func commitFor(ctx context.Context, id string) versionCommit {
	c := versionCommit{ID: id}
	if versionBefore(ctx, "1.49") {
		c.Expected = &id
	}
	return c
}

func infoToDocker(ctx context.Context, in *enginev1.SystemInfoResponse) (any, error) {
	out := system.Info{
		ID:                 in.GetId(),
		Containers:         int(in.GetContainers()),
		ContainersRunning:  int(in.GetContainersRunning()),
		ContainersPaused:   int(in.GetContainersPaused()),
		ContainersStopped:  int(in.GetContainersStopped()),
		Images:             int(in.GetImages()),
		Driver:             in.GetDriver(),
		DriverStatus:       pairs(in.GetDriverStatus()),
		DockerRootDir:      in.GetDockerRootDir(),
		MemoryLimit:        in.GetMemoryLimit(),
		SwapLimit:          in.GetSwapLimit(),
		CPUCfsPeriod:       in.GetCpuCfsPeriod(),
		CPUCfsQuota:        in.GetCpuCfsQuota(),
		CPUShares:          in.GetCpuShares(),
		CPUSet:             in.GetCpuSet(),
		PidsLimit:          in.GetPidsLimit(),
		OomKillDisable:     in.GetOomKillDisable(),
		IPv4Forwarding:     in.GetIpv4Forwarding(),
		Debug:              in.GetDebug(),
		NFd:                int(in.GetNFd()),
		NGoroutines:        int(in.GetNGoroutines()),
		LoggingDriver:      in.GetLoggingDriver(),
		CgroupDriver:       in.GetCgroupDriver(),
		CgroupVersion:      in.GetCgroupVersion(),
		NEventsListener:    int(in.GetNEventsListener()),
		KernelVersion:      in.GetKernelVersion(),
		OperatingSystem:    in.GetOperatingSystem(),
		OSVersion:          in.GetOsVersion(),
		OSType:             in.GetOsType(),
		Architecture:       in.GetArchitecture(),
		NCPU:               int(in.GetNcpu()),
		MemTotal:           in.GetMemTotal(),
		IndexServerAddress: in.GetIndexServerAddress(),
		HTTPProxy:          in.GetHttpProxy(),
		HTTPSProxy:         in.GetHttpsProxy(),
		NoProxy:            in.GetNoProxy(),
		Name:               in.GetName(),
		Labels:             nonNil(in.GetLabels()),
		ExperimentalBuild:  in.GetExperimentalBuild(),
		ServerVersion:      in.GetServerVersion(),
		DefaultRuntime:     in.GetDefaultRuntime(),
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		LiveRestoreEnabled: in.GetLiveRestoreEnabled(),
		InitBinary:         in.GetInitBinary(),
		SecurityOptions:    nonNil(in.GetSecurityOptions()),
		Warnings:           nonNil(in.GetWarnings()),
		CDISpecDirs:        nonNil(in.GetCdiSpecDirs()),
	}
	if t := in.GetSystemTime(); t != nil {
		out.SystemTime = t.AsTime().Local().Format(time.RFC3339Nano)
	}
	if p := in.GetPlugins(); p != nil {
		out.Plugins = system.PluginsInfo{
			Volume:        nonNil(p.GetVolume()),
			Network:       nonNil(p.GetNetwork()),
			Authorization: p.GetAuthorization(),
			Log:           nonNil(p.GetLog()),
		}
	}
	if rc := in.GetRegistryConfig(); rc != nil {
		cfg := &registry.ServiceConfig{IndexConfigs: map[string]*registry.IndexInfo{}, Mirrors: nonNil(rc.GetMirrors())}
		for _, c := range rc.GetInsecureRegistryCidrs() {
			if p, err := netip.ParsePrefix(c); err == nil {
				cfg.InsecureRegistryCIDRs = append(cfg.InsecureRegistryCIDRs, p)
			}
		}
		for name, idx := range rc.GetIndexConfigs() {
			cfg.IndexConfigs[name] = &registry.IndexInfo{Name: idx.GetName(), Mirrors: nonNil(idx.GetMirrors()), Secure: idx.GetSecure(), Official: idx.GetOfficial()}
		}
		out.RegistryConfig = cfg
	}
	if len(in.GetRuntimes()) > 0 {
		out.Runtimes = map[string]system.RuntimeWithStatus{}
		for name, rt := range in.GetRuntimes() {
			out.Runtimes[name] = system.RuntimeWithStatus{Runtime: system.Runtime{Path: rt.GetPath(), Args: rt.GetArgs()}}
		}
	}
	d := dockerInfo{
		Info: out,
		// There is no containerd: each container's supervisor is
		// engined's shim, built with engined, so its commit is engined's.
		ContainerdCommit: commitFor(ctx, version.GitCommit),
		RuncCommit:       commitFor(ctx, in.GetRuncCommit()),
		InitCommit:       commitFor(ctx, ""),
	}
	if versionBefore(ctx, "1.50") {
		d.BridgeNfIptables = &in.BridgeNfIptables
		d.BridgeNfIP6tables = &in.BridgeNfIp6Tables
	}
	if versionBefore(ctx, "1.42") {
		// Kernel memory limits are not supported (cgroup v2 has none).
		d.KernelMemory = new(bool)
	}
	if versionBefore(ctx, "1.39") {
		if d.KernelVersion == "" {
			d.KernelVersion = "<unknown>"
		}
		if d.OperatingSystem == "" {
			d.OperatingSystem = "<unknown>"
		}
	}
	if versionBefore(ctx, "1.25") {
		// Before 1.25 security options were bare names ("seccomp"), not
		// "name=seccomp,profile=builtin".
		names := []string{}
		for _, o := range d.SecurityOptions {
			for _, kv := range strings.Split(o, ",") {
				if k, v, _ := strings.Cut(kv, "="); k == "name" {
					names = append(names, v)
				}
			}
		}
		d.SecurityOptions = names
	}
	if versionBefore(ctx, "1.47") && d.RegistryConfig != nil {
		// Dropped in 1.48; older clients saw them, null when unset.
		return struct {
			dockerInfo
			RegistryConfig legacyRegistryConfig
		}{d, legacyRegistryConfig{ServiceConfig: d.RegistryConfig}}, nil
	}
	return d, nil
}

// legacyRegistryConfig is registry.ServiceConfig with the fields API 1.48
// dropped.
type legacyRegistryConfig struct {
	*registry.ServiceConfig
	AllowNondistributableArtifactsCIDRs     []string
	AllowNondistributableArtifactsHostnames []string
}

func pairs(kvs []*enginev1.KeyValue) [][2]string {
	out := make([][2]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, [2]string{kv.GetKey(), kv.GetValue()})
	}
	return out
}

// nonNil keeps empty lists as [] rather than null, as dockerd writes them.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func init() {
	registerRequest(func(data []byte, m *enginev1.SystemAuthRequest) error {
		var a registry.AuthConfig
		if err := json.Unmarshal(data, &a); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid auth request: %w", err))
		}
		m.Username, m.Password, m.ServerAddress = a.Username, a.Password, a.ServerAddress
		m.IdentityToken, m.RegistryToken = a.IdentityToken, a.RegistryToken
		return nil
	})
	registerResponse(func(_ context.Context, m *enginev1.SystemAuthResponse) (any, error) {
		return registry.AuthResponse{Status: m.GetStatus(), IdentityToken: m.GetIdentityToken()}, nil
	})
}
