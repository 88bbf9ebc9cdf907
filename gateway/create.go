package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Nothing a client sends is accepted and ignored: every field of Docker's
// create request that engined does not implement is refused, naming it,
// when it is set to anything but its default. The fields engined
// implements are listed here; all others (including fields later API
// versions add to the moby types) are refused.

var supportedConfig = fieldSet("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
	"ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "Image", "Volumes", "WorkingDir",
	"Entrypoint", "Labels", "StopSignal", "StopTimeout", "NetworkDisabled")

var supportedHostConfig = fieldSet("Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "RestartPolicy", "AutoRemove",
	"VolumeDriver", "ConsoleSize", "Annotations", "CapAdd", "CapDrop", "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch",
	"ExtraHosts", "GroupAdd", "IpcMode", "OomScoreAdj", "PidMode", "Privileged", "ReadonlyRootfs", "SecurityOpt", "Tmpfs",
	"UTSMode", "ShmSize", "Sysctls", "Runtime", "Isolation", "Mounts", "MaskedPaths", "ReadonlyPaths", "Init", "Links",
	"PortBindings", "PublishAllPorts",
	// Resources
	"CpuShares", "Memory", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules",
	"MemoryReservation", "MemorySwap", "PidsLimit", "Ulimits")

// supportedUpdate are the resources docker update changes.
var supportedUpdate = fieldSet("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
	"CpusetCpus", "CpusetMems", "PidsLimit")

// What the refusal calls a field, when its name alone says little.
var fieldWhat = map[string]string{
	"VolumesFrom": "volumes from other containers", "CgroupParent": "cgroup parents", "BlkioWeight": "block I/O limits",
	"BlkioWeightDevice": "block I/O limits", "BlkioDeviceReadBps": "block I/O limits", "BlkioDeviceWriteBps": "block I/O limits",
	"BlkioDeviceReadIOps": "block I/O limits", "BlkioDeviceWriteIOps": "block I/O limits",
	"CpuRealtimePeriod": "real-time CPU scheduling", "CpuRealtimeRuntime": "real-time CPU scheduling",
	"DeviceRequests": "device requests (GPUs)", "MemorySwappiness": "memory swappiness", "OomKillDisable": "disabling the OOM killer",
	"StorageOpt": "storage options", "UsernsMode": "user namespaces", "Cgroup": "joining another container's cgroup",
	"CpuCount": "CPU counts (Windows)", "CpuPercent": "CPU percentages (Windows)", "IOMaximumIOps": "I/O maximums (Windows)",
	"IOMaximumBandwidth": "I/O maximums (Windows)", "MacAddress": "MAC addresses", "Umask": "the initial umask",
	"OnBuild": "ONBUILD triggers", "Shell": "shells for the shell form", "ArgsEscaped": "escaped arguments (Windows)",
	"KernelMemory": "kernel memory limits", "KernelMemoryTCP": "kernel TCP memory limits",
}

func fieldSet(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// jsonName is a struct field's name in Docker's JSON.
func jsonName(f reflect.StructField) string {
	if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
		return tag
	}
	return f.Name
}

// isDefault: the zero value, an empty list or map, or what the CLI sends
// for "not set" (MemorySwappiness -1).
func isDefault(name string, v reflect.Value) bool {
	if v.IsZero() {
		return true
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Pointer:
		if name == "MemorySwappiness" && v.Elem().Kind() == reflect.Int64 {
			return v.Elem().Int() == -1
		}
		return v.Elem().IsZero() // OomKillDisable: false
	case reflect.String:
		return name == "UsernsMode" && v.String() == "host" // no user namespace is what runs
	}
	return false
}

// unsupportedFields walks a struct (and the structs it embeds) for
// fields outside supported that are set.
func unsupportedFields(prefix string, v reflect.Value, supported map[string]bool) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := unsupportedFields(prefix, v.Field(i), supported); err != nil {
				return err
			}
			continue
		}
		name := jsonName(f)
		if supported[name] || isDefault(name, v.Field(i)) {
			continue
		}
		what := fieldWhat[name]
		if what == "" {
			what = name
		}
		return fmt.Errorf("%s (%s.%s) is not supported yet", what, prefix, name)
	}
	return nil
}

// refuseUnsupported checks the whole create request; present are the
// top-level members of its JSON (for fields of the v1.51 schema that the
// moby types no longer have).
func refuseUnsupported(cr *container.CreateRequest, present map[string]json.RawMessage) error {
	if raw, ok := present["MacAddress"]; ok && string(raw) != `""` && string(raw) != "null" {
		return errors.New("MAC addresses (Config.MacAddress) are not supported yet")
	}
	if cr.Config != nil {
		if err := unsupportedFields("Config", reflect.ValueOf(cr.Config).Elem(), supportedConfig); err != nil {
			return err
		}
		if err := checkHealthcheck(cr.Config.Healthcheck); err != nil {
			return err
		}
	}
	hc := cr.HostConfig
	if hc != nil {
		if err := unsupportedFields("HostConfig", reflect.ValueOf(hc).Elem(), supportedHostConfig); err != nil {
			return err
		}
		for _, m := range hc.Mounts {
			if m.Type != mount.TypeTmpfs {
				continue
			}
			switch {
			case m.BindOptions != nil || m.VolumeOptions != nil || m.ImageOptions != nil || m.ClusterOptions != nil:
				return fmt.Errorf("invalid mount config for type %q: only TmpfsOptions may be given", m.Type)
			case m.TmpfsOptions != nil && len(m.TmpfsOptions.Options) > 0:
				return errors.New("tmpfs mount flags (HostConfig.Mounts[].TmpfsOptions.Options) are not supported yet")
			}
		}
	}
	if cr.Config != nil && cr.Config.NetworkDisabled && hc != nil && hc.NetworkMode.IsHost() {
		return errors.New("Config.NetworkDisabled cannot be combined with the host's network (HostConfig.NetworkMode host)")
	}
	if cr.NetworkingConfig != nil {
		for name, ep := range cr.NetworkingConfig.EndpointsConfig {
			if err := endpointSupported(fmt.Sprintf("NetworkingConfig.EndpointsConfig[%q]", name), ep); err != nil {
				return err
			}
		}
	}
	return nil
}

// endpointSupported refuses the endpoint settings engined does not
// apply: it applies IPAMConfig.IPv4Address, MacAddress, Aliases and
// Links (and ignores what dockerd itself sets: NetworkID, DNSNames…,
// which clients echo back from inspect).
func endpointSupported(what string, ep *network.EndpointSettings) error {
	if ep == nil {
		return nil
	}
	rest := *ep
	rest.MacAddress, rest.Aliases, rest.Links = nil, nil, nil
	rest.NetworkID, rest.EndpointID, rest.Gateway, rest.IPAddress, rest.IPPrefixLen = "", "", netip.Addr{}, netip.Addr{}, 0
	rest.DNSNames, rest.IPv6Gateway, rest.GlobalIPv6Address, rest.GlobalIPv6PrefixLen = nil, netip.Addr{}, netip.Addr{}, 0
	if rest.IPAMConfig != nil {
		ipam := *rest.IPAMConfig
		ipam.IPv4Address = netip.Addr{}
		if reflect.ValueOf(ipam).IsZero() || allEmpty(reflect.ValueOf(ipam)) {
			rest.IPAMConfig = nil
		}
	}
	if !reflect.ValueOf(rest).IsZero() && !allEmpty(reflect.ValueOf(rest)) {
		return fmt.Errorf("network endpoint settings (%s) other than IPAMConfig.IPv4Address, MacAddress, Aliases and Links are not supported yet", what)
	}
	return nil
}

// endpointConfig is what a container asks of one network.
func endpointConfig(ep *network.EndpointSettings) *enginev1.EndpointConfig {
	out := &enginev1.EndpointConfig{Aliases: ep.Aliases, Links: ep.Links}
	if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
		out.Ipv4Address = ep.IPAMConfig.IPv4Address.String()
	}
	if len(ep.MacAddress) > 0 {
		out.MacAddress = ep.MacAddress.String()
	}
	return out
}

// allEmpty: every field of the struct is zero or an empty list or map.
func allEmpty(v reflect.Value) bool {
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); !f.IsZero() && !((f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && f.Len() == 0) {
			return false
		}
	}
	return true
}

// minimumDuration is dockerd's for health check intervals and timeouts.
const minimumDuration = time.Millisecond

// checkHealthcheck validates as dockerd does; health checks do not run
// yet, so one that asks for a check is refused (NONE, which disables the
// image's, is what runs).
func checkHealthcheck(h *container.HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", h.StartInterval}} {
		if d.v != 0 && d.v < minimumDuration {
			return fmt.Errorf("%s in Healthcheck cannot be less than %s", d.name, minimumDuration)
		}
	}
	if h.Retries < 0 {
		return errors.New("Retries in Healthcheck cannot be negative")
	}
	if len(h.Test) == 0 || (len(h.Test) == 1 && h.Test[0] == "NONE") {
		if h.Interval == 0 && h.Timeout == 0 && h.StartPeriod == 0 && h.StartInterval == 0 && h.Retries == 0 {
			return nil
		}
	}
	return errors.New("health checks (Config.Healthcheck) are not supported yet")
}

// stringsAsLists turns "Cmd": "echo hi" into ["echo hi"], as dockerd's
// StrSlice reads it (Entrypoint and Shell too).
func stringsAsLists(body []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return body
	}
	changed := false
	for _, k := range []string{"Cmd", "Entrypoint", "Shell"} {
		var s string
		// null also unmarshals into a string, as "": it is no list.
		if raw, ok := top[k]; ok && string(raw) != "null" && json.Unmarshal(raw, &s) == nil {
			top[k], _ = json.Marshal([]string{s})
			changed = true
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(top)
	if err != nil {
		return body
	}
	return out
}
