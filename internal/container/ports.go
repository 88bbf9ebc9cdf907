package container

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Published ports (-p, -P): the container service checks them at
// create and hands them to its Networks at each start; the network
// package binds the host ports and writes the rules.

// PortSpec is a port a container asks to publish.
type PortSpec struct {
	Proto         string // "tcp" or "udp"
	ContainerPort uint16
	HostIP        string // "": every host address
	// HostPortStart and HostPortEnd are the host port or range; 0: an
	// ephemeral port.
	HostPortStart, HostPortEnd uint16
}

// PublishedPort is a port as published: the host port actually bound.
type PublishedPort struct {
	Proto         string `json:"proto"`
	ContainerPort uint16 `json:"containerPort"`
	HostIP        string `json:"hostIP"`
	HostPort      uint16 `json:"hostPort"`
}

// dockerd's errors for port publishing with another container's network.
var (
	errConflictNetworkPublishPorts = invalid("conflicting options: port publishing and the container type network mode")
	errConflictNetworkExposePorts  = invalid("conflicting options: port exposing and the container type network mode")
)

// parsePort reads an exposed or bound container port: "80", "80/tcp",
// "53/udp".
func parsePort(s string) (port uint16, proto string, err error) {
	num, proto, _ := strings.Cut(s, "/")
	proto = strings.ToLower(cmpOr(proto, "tcp"))
	p, perr := strconv.ParseUint(num, 10, 16)
	switch {
	case perr != nil || p == 0:
		return 0, "", invalid("invalid port specification: %q", s)
	case proto == "sctp":
		return 0, "", invalid("sctp ports (%s) are not supported yet: engined publishes tcp and udp", s)
	case proto != "tcp" && proto != "udp":
		return 0, "", invalid("invalid proto: %s", proto)
	}
	return uint16(p), proto, nil
}

// parseHostPorts reads a binding's host side: "" or "0" (ephemeral, as
// testcontainers and docker-py send it), "8080" or "8000-8010" (the
// first free port of the range).
func parseHostPorts(s string) (start, end uint16, err error) {
	if s == "" || s == "0" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	p, err1 := strconv.ParseUint(a, 10, 16)
	q, err2 := p, error(nil)
	if isRange {
		q, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || p == 0 || q < p {
		return 0, 0, invalid("invalid port specification: %q", s)
	}
	return uint16(p), uint16(q), nil
}

// validatePorts checks -p, -P and --expose at create, with dockerd's
// messages.
func validatePorts(cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig) error {
	if strings.HasPrefix(hc.GetNetworkMode(), "container:") {
		switch {
		case len(hc.GetPortBindings()) > 0 || hc.GetPublishAllPorts():
			return errConflictNetworkPublishPorts
		case len(cfg.GetExposedPorts()) > 0:
			return errConflictNetworkExposePorts
		}
	}
	for _, p := range cfg.GetExposedPorts() {
		if _, _, err := parsePort(p); err != nil {
			return err
		}
	}
	for _, b := range hc.GetPortBindings() {
		if _, _, err := parsePort(b.GetContainerPort()); err != nil {
			return err
		}
		if ip := b.GetHostIp(); ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return invalid("invalid IP address: %s", ip)
			}
			if !a.Unmap().Is4() {
				return invalid("host IP %s: engined publishes ports on IPv4 addresses only", ip)
			}
		}
		if _, _, err := parseHostPorts(b.GetHostPort()); err != nil {
			return err
		}
	}
	return nil
}

// portWarnings are dockerd's create warnings about ports: with the
// host's network, -p does nothing.
func portWarnings(hc *enginev1.HostConfig) []string {
	if hc.GetNetworkMode() == "host" && len(hc.GetPortBindings()) > 0 {
		return []string{"Published ports are discarded when using host network mode"}
	}
	return []string{}
}

// mergeExposedPorts adds the image's EXPOSE to the container's exposed
// ports, as dockerd's create does, each once, as "port/proto".
func mergeExposedPorts(cfg *enginev1.ContainerConfig, image map[string]struct{}) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		n, proto, err := parsePort(p)
		if err != nil {
			return // validatePorts refuses the container's own
		}
		if k := fmt.Sprintf("%d/%s", n, proto); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, p := range cfg.GetExposedPorts() {
		add(p)
	}
	for p := range image {
		add(p)
	}
	slices.SortFunc(out, comparePorts)
	cfg.ExposedPorts = out
}

// comparePorts orders "port/proto" by number, then protocol.
func comparePorts(a, b string) int {
	pa, qa, _ := parsePort(a)
	pb, qb, _ := parsePort(b)
	if pa != pb {
		return int(pa) - int(pb)
	}
	return strings.Compare(qa, qb)
}

// portSpecs are the ports a container publishes at start: its -p
// bindings, and with -P every exposed port that has none on an
// ephemeral port.
func portSpecs(cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig) ([]PortSpec, error) {
	var out []PortSpec
	bound := map[string]bool{}
	for _, b := range hc.GetPortBindings() {
		port, proto, err := parsePort(b.GetContainerPort())
		if err != nil {
			return nil, err
		}
		start, end, err := parseHostPorts(b.GetHostPort())
		if err != nil {
			return nil, err
		}
		bound[fmt.Sprintf("%d/%s", port, proto)] = true
		out = append(out, PortSpec{Proto: proto, ContainerPort: port, HostIP: b.GetHostIp(), HostPortStart: start, HostPortEnd: end})
	}
	if hc.GetPublishAllPorts() {
		for _, p := range cfg.GetExposedPorts() {
			port, proto, err := parsePort(p)
			if err != nil {
				return nil, err
			}
			if !bound[fmt.Sprintf("%d/%s", port, proto)] {
				out = append(out, PortSpec{Proto: proto, ContainerPort: port})
			}
		}
	}
	return out, nil
}

// portMap is inspect's NetworkSettings.Ports of a running container:
// every exposed or published port, with its bindings (none: exposed
// only, Docker's null).
func portMap(cfg *enginev1.ContainerConfig, eps map[string]*NetworkEndpoint) map[string]*enginev1.HostPorts {
	out := map[string]*enginev1.HostPorts{}
	for _, p := range cfg.GetExposedPorts() {
		if n, proto, err := parsePort(p); err == nil {
			out[fmt.Sprintf("%d/%s", n, proto)] = &enginev1.HostPorts{}
		}
	}
	for _, ep := range eps {
		for _, b := range ep.Ports {
			k := fmt.Sprintf("%d/%s", b.ContainerPort, b.Proto)
			if out[k] == nil {
				out[k] = &enginev1.HostPorts{}
			}
			out[k].Bindings = append(out[k].Bindings, &enginev1.HostPort{HostIp: b.HostIP, HostPort: strconv.Itoa(int(b.HostPort))})
		}
	}
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// portFilter reads ps's publish and expose filters as dockerd does:
// "80", "80/udp" or a range "8000-8080/tcp"; nil: no such filter.
func portFilter(key string, values []string) (map[string]bool, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string]bool{}
	for _, v := range values {
		if strings.Contains(v, ":") {
			return nil, invalid("filter for '%s' should not contain ':': %s", key, v)
		}
		ports, proto, _ := strings.Cut(v, "/")
		proto = strings.ToLower(cmpOr(proto, "tcp"))
		start, end, err := parseHostPorts(ports)
		if err != nil || start == 0 {
			return nil, invalid("error while looking up for %s %s: invalid port range", key, v)
		}
		for p := int(start); p <= int(end); p++ {
			out[fmt.Sprintf("%d/%s", p, proto)] = true
		}
	}
	return out, nil
}

// matchPorts: a container matches ps's publish filter with one of its
// host ports, the expose filter with one of its container ports (those
// ps shows: a running container's).
func matchPorts(ports map[string]*enginev1.HostPorts, publish, expose map[string]bool) bool {
	for p, hp := range ports {
		_, proto, _ := strings.Cut(p, "/")
		if expose[p] {
			return true
		}
		for _, b := range hp.GetBindings() {
			if publish[b.GetHostPort()+"/"+proto] {
				return true
			}
		}
	}
	return false
}
