package container

import (
	"context"
	"slices"
	"strings"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// userNetwork: the network mode is a user-defined network, whose
// containers use the embedded DNS (127.0.0.11) and have names on it.
func userNetwork(hc *enginev1.HostConfig) bool {
	m := hc.GetNetworkMode()
	return bridged(hc) && m != "bridge" && m != "default" && m != ""
}

// renameDNS follows a rename in the record's endpoints (their first DNS
// name is the container's name, as dockerd's) and in the live ones.
func (s *Service) renameDNS(ctx context.Context, id, oldName, newName string) {
	oldName, newName = strings.TrimPrefix(oldName, "/"), strings.TrimPrefix(newName, "/")
	s.update(id, func(r *Record) error {
		for _, ep := range r.Networks {
			ep.DNSNames = renamedDNSNames(ep.DNSNames, oldName, newName)
		}
		return nil
	})
	if s.cfg.Networks == nil {
		return
	}
	if err := s.cfg.Networks.Rename(ctx, id, newName); err != nil {
		s.cfg.Logger.Warn("rename the container on its networks' DNS", "id", id, "err", err)
	}
}

// renamedDNSNames is names with the container's name, which comes
// first, changed from oldName to newName (repeats dropped).
func renamedDNSNames(names []string, oldName, newName string) []string {
	if len(names) == 0 || names[0] != oldName {
		return names
	}
	out := []string{newName}
	for _, n := range names[1:] {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// dnsSettings are the container's --dns, --dns-search and --dns-option,
// each engined's own when the container has none, as dockerd's.
func (s *Service) dnsSettings(hc *enginev1.HostConfig) (dns, search, options []string) {
	pick := func(own, engine []string) []string {
		if len(own) > 0 {
			return own
		}
		return engine
	}
	return pick(hc.GetDns(), s.cfg.DNS), pick(hc.GetDnsSearch(), s.cfg.DNSSearch), pick(hc.GetDnsOptions(), s.cfg.DNSOptions)
}
