package container

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/engined/engined/internal/resolvconf"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// embeddedDNS: the container is on a user-defined network, so it uses
// the embedded DNS (127.0.0.11), also when that network was connected
// after the default bridge (dockerd starts the resolver then).
func (r *Record) embeddedDNS(hc *enginev1.HostConfig) bool {
	if !bridged(hc) {
		return false
	}
	for name := range r.joinedNetworks(hc) {
		if name != "bridge" && name != "default" && name != "" {
			return true
		}
	}
	return false
}

// writeResolvConf writes the container's /etc/resolv.conf from the
// host's and the DNS settings: the host's servers (without loopback
// ones) off user networks, the embedded DNS with them as its upstreams
// on one. It is written in place, so a running container, whose file is
// a bind of it, sees the change; but a file changed since engined wrote
// it is left alone (dockerd's header promises as much), which the hash
// of what was written, beside it, tells.
func (s *Service) writeResolvConf(rec *Record, hc *enginev1.HostConfig) error {
	resolvPath := cmp.Or(s.cfg.HostResolvConf, "/etc/resolv.conf")
	resolv, err := os.ReadFile(resolvPath)
	if err != nil {
		resolv = nil
	}
	dns, search, options := s.dnsSettings(hc)
	content := resolvconf.External(resolv, hc.GetNetworkMode() != "host", dns, search, options)
	if rec.embeddedDNS(hc) {
		content = resolvconf.Internal(resolv, resolvPath, dns, search, options)
	}
	path := filepath.Join(s.containerDir(rec.ID), "resolv.conf")
	if cur, err := os.ReadFile(path); err == nil {
		if prev, err := os.ReadFile(path + ".hash"); err == nil && string(prev) != contentHash(cur) {
			return nil // the user's now
		}
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	return os.WriteFile(path+".hash", []byte(contentHash([]byte(content))), 0o644)
}

func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
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
