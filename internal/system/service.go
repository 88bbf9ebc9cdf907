// Package system implements the Engine methods about the engine itself and
// its host: Ping, SystemVersion and SystemInfo.
package system

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/sysinfo"
	"github.com/engined/engined/internal/version"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Counts are the object counts /info reports.
type Counts struct {
	Containers, Running, Paused, Stopped, Images int
}

// Config is what the service reports about the engine's own setup.
type Config struct {
	ID                 string
	DataRoot           string
	Debug              bool
	Labels             []string
	RegistryMirrors    []string
	InsecureRegistries []string
	// Warnings are set-up warnings shown by `docker info`, e.g. a tcp
	// listener without TLS.
	Warnings []string
	// ShimPath is the binary that runs containers.
	ShimPath string
	// Counts reads the current object counts.
	Counts func(ctx context.Context) (Counts, error)
}

// Service serves the system methods.
type Service struct {
	cfg   Config
	start time.Time
}

// New returns the system service.
func New(cfg Config) *Service { return &Service{cfg: cfg, start: time.Now()} }

// Ping answers as long as the engine serves.
func (s *Service) Ping(context.Context, *enginev1.PingRequest) (*enginev1.PingResponse, error) {
	return &enginev1.PingResponse{
		ApiVersion: version.APIVersion,
		OsType:     runtime.GOOS,
		// No BuildKit: clients use the classic builder protocol.
		BuilderVersion: "1",
	}, nil
}

// SystemVersion reports the engine's build and host kernel.
func (s *Service) SystemVersion(context.Context, *enginev1.SystemVersionRequest) (*enginev1.SystemVersionResponse, error) {
	kernel, err := kernelRelease()
	if err != nil {
		return nil, err
	}
	resp := &enginev1.SystemVersionResponse{
		PlatformName:  version.Product + " " + version.Version,
		Version:       version.Version,
		ApiVersion:    version.APIVersion,
		MinApiVersion: version.MinAPIVersion,
		GitCommit:     version.GitCommit,
		GoVersion:     version.GoVersion(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
	}
	details := map[string]string{
		"ApiVersion":    version.APIVersion,
		"MinAPIVersion": version.MinAPIVersion,
		"GitCommit":     version.GitCommit,
		"GoVersion":     version.GoVersion(),
		"Os":            runtime.GOOS,
		"Arch":          runtime.GOARCH,
		"KernelVersion": kernel,
		"Experimental":  "false",
	}
	if t, err := time.Parse(time.RFC3339, version.BuildTime); err == nil {
		resp.BuildTime = timestamppb.New(t)
		details["BuildTime"] = t.UTC().Format(time.RFC3339)
	}
	resp.Components = []*enginev1.Component{{Name: "Engine", Version: version.Version, Details: details}}
	return resp, nil
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// SystemInfo reports true figures about the engine and its host.
func (s *Service) SystemInfo(ctx context.Context, _ *enginev1.SystemInfoRequest) (*enginev1.SystemInfoResponse, error) {
	host, err := sysinfo.Read()
	if err != nil {
		return nil, fmt.Errorf("read host facts: %w", err)
	}
	var counts Counts
	if s.cfg.Counts != nil {
		if counts, err = s.cfg.Counts(ctx); err != nil {
			return nil, fmt.Errorf("count objects: %w", err)
		}
	}
	resp := &enginev1.SystemInfoResponse{
		Id:                 s.cfg.ID,
		Containers:         int64(counts.Containers),
		ContainersRunning:  int64(counts.Running),
		ContainersPaused:   int64(counts.Paused),
		ContainersStopped:  int64(counts.Stopped),
		Images:             int64(counts.Images),
		Driver:             "overlay2",
		DriverStatus:       driverStatus(s.cfg.DataRoot),
		DockerRootDir:      s.cfg.DataRoot,
		Plugins:            &enginev1.PluginsInfo{Log: []string{"json-file"}, Network: []string{"bridge", "host", "null"}},
		MemoryLimit:        host.MemoryLimit,
		SwapLimit:          host.SwapLimit,
		CpuCfsPeriod:       host.CPUCfsPeriod,
		CpuCfsQuota:        host.CPUCfsQuota,
		CpuShares:          host.CPUShares,
		CpuSet:             host.CPUSet,
		PidsLimit:          host.PidsLimit,
		OomKillDisable:     host.OomKillDisable,
		Ipv4Forwarding:     host.IPv4Forwarding,
		BridgeNfIptables:   host.BridgeNfIptables,
		BridgeNfIp6Tables:  host.BridgeNfIP6tables,
		Debug:              s.cfg.Debug,
		NFd:                int64(sysinfo.OpenFDs()),
		NGoroutines:        int64(runtime.NumGoroutine()),
		SystemTime:         timestamppb.Now(),
		LoggingDriver:      "json-file",
		CgroupDriver:       host.CgroupDriver,
		CgroupVersion:      host.CgroupVersion,
		KernelVersion:      host.KernelVersion,
		OperatingSystem:    host.OperatingSystem,
		OsVersion:          host.OSVersion,
		OsType:             host.OSType,
		Architecture:       host.Architecture,
		Ncpu:               int64(host.NCPU),
		MemTotal:           host.MemTotal,
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig:     s.registryConfig(),
		HttpProxy:          proxyEnv("HTTP_PROXY"),
		HttpsProxy:         proxyEnv("HTTPS_PROXY"),
		NoProxy:            proxyEnv("NO_PROXY"),
		Name:               host.Hostname,
		Labels:             s.cfg.Labels,
		ServerVersion:      version.Version,
		Runtimes:           map[string]*enginev1.Runtime{"runc": {Path: s.cfg.ShimPath}},
		RuncCommit:         libcontainerVersion(s.cfg.ShimPath),
		DefaultRuntime:     "runc",
		SecurityOptions:    host.SecurityOptions,
		Warnings:           append(append([]string(nil), s.cfg.Warnings...), host.Warnings...),
	}
	return resp, nil
}

func proxyEnv(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return os.Getenv(strings.ToLower(name))
}

// registryConfig reports registries as dockerd does: loopback is always
// insecure, docker.io is the official index with the configured mirrors.
func (s *Service) registryConfig() *enginev1.RegistryConfig {
	rc := &enginev1.RegistryConfig{
		InsecureRegistryCidrs: []string{"127.0.0.0/8", "::1/128"},
		Mirrors:               s.cfg.RegistryMirrors,
		IndexConfigs: map[string]*enginev1.IndexInfo{
			"docker.io": {Name: "docker.io", Mirrors: s.cfg.RegistryMirrors, Secure: true, Official: true},
		},
	}
	for _, r := range s.cfg.InsecureRegistries {
		if isCIDR(r) {
			rc.InsecureRegistryCidrs = append(rc.InsecureRegistryCidrs, r)
			continue
		}
		rc.IndexConfigs[r] = &enginev1.IndexInfo{Name: r, Secure: false}
	}
	return rc
}

// driverStatus describes the overlay storage the way `docker info` shows it.
func driverStatus(dataRoot string) []*enginev1.KeyValue {
	return []*enginev1.KeyValue{
		{Key: "Backing Filesystem", Value: backingFS(dataRoot)},
		{Key: "Supports d_type", Value: "true"},
		{Key: "Using metacopy", Value: "false"},
		{Key: "Native Overlay Diff", Value: "true"},
		{Key: "userxattr", Value: "false"},
	}
}

func backingFS(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "<unknown>"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "extfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("<unknown 0x%x>", st.Type)
}

func isCIDR(s string) bool {
	_, err := netip.ParsePrefix(s)
	return err == nil
}

var (
	libcontainerOnce sync.Once
	libcontainerVer  string
)

// libcontainerVersion is the version of the runc module (libcontainer)
// the shim at path was built with, read from its build information:
// engined runs containers through it, not through a runc binary. Empty
// when the shim cannot be read.
func libcontainerVersion(path string) string {
	libcontainerOnce.Do(func() {
		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			return
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/opencontainers/runc" {
				if d.Replace != nil {
					d = d.Replace
				}
				libcontainerVer = d.Version
			}
		}
	})
	return libcontainerVer
}
