package container

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/engined/engined/internal/errdefs"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Legacy links (--link name[:alias]): the linked container's address in
// /etc/hosts under the alias, and on the default bridge dockerd's
// <ALIAS>_NAME, <ALIAS>_PORT… and <ALIAS>_ENV_… variables. The link is
// resolved at each start, to a container that must be running then.

// parseLink splits "name[:alias]"; the alias defaults to the name.
func parseLink(l string) (name, alias string, err error) {
	name, alias, _ = strings.Cut(l, ":")
	name, alias = strings.TrimPrefix(name, "/"), strings.TrimPrefix(alias, "/")
	if i := strings.LastIndex(alias, "/"); i >= 0 {
		alias = alias[i+1:] // dockerd's own "/web/db" form
	}
	if alias == "" {
		alias = name
	}
	if name == "" || !validAlias.MatchString(alias) {
		return "", "", errdefs.InvalidArgument(fmt.Errorf("invalid link %q: want name[:alias]", l))
	}
	return name, alias, nil
}

// dockerLinks are the links as dockerd's inspect shows them:
// "/db:/web/db".
func dockerLinks(self string, links []string) []string {
	var out []string
	for _, l := range links {
		name, alias, err := parseLink(l)
		if err != nil {
			continue
		}
		out = append(out, "/"+name+":/"+strings.TrimPrefix(self, "/")+"/"+alias)
	}
	return out
}

// checkLinks, at create: links need a network of the container's own,
// and name containers that exist.
func (s *Service) checkLinks(hc *enginev1.HostConfig) error {
	if len(hc.GetLinks()) == 0 {
		return nil
	}
	switch m := hc.GetNetworkMode(); {
	case m == "host":
		return errdefs.InvalidArgument(errors.New("conflicting options: host type networking can't be used with links. This would result in undefined behavior"))
	case strings.HasPrefix(m, "container:"):
		return errdefs.InvalidArgument(errors.New("conflicting options: container type network can't be used with links. This would result in undefined behavior"))
	case m == "none":
		return errdefs.InvalidArgument(errors.New("conflicting options: links need a network: not network mode none"))
	}
	for _, l := range hc.GetLinks() {
		name, _, err := parseLink(l)
		if err != nil {
			return err
		}
		if _, err := s.get(name); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("could not get container for %s", name))
		}
	}
	return nil
}

// linked is a resolved link: the running container it names and the
// address it has on a network both containers are on.
type linked struct {
	alias, network, ip string
	target             *Record
}

// resolveLinks finds the running containers rec links to, each on a
// network the two share (the default bridge first).
func (s *Service) resolveLinks(rec *Record, hc *enginev1.HostConfig) ([]linked, error) {
	var out []linked
	for _, l := range hc.GetLinks() {
		name, alias, err := parseLink(l)
		if err != nil {
			return nil, err
		}
		t, err := s.get(name)
		if err != nil {
			return nil, errdefs.NotFound(fmt.Errorf("could not get container for %s", name))
		}
		if t.Status != "running" && t.Status != "paused" {
			return nil, errdefs.Conflict(fmt.Errorf("Cannot link to a non running container: %s AS %s/%s", t.Name, rec.Name, alias))
		}
		lk := linked{alias: alias, target: t}
		shared := []string{}
		for n, ep := range t.Networks {
			if _, ok := rec.Networks[n]; ok && ep.IPAddress != "" {
				shared = append(shared, n)
			}
		}
		slices.Sort(shared)
		if i := slices.Index(shared, "bridge"); i > 0 {
			shared[0], shared[i] = shared[i], shared[0]
		}
		if len(shared) == 0 {
			return nil, errdefs.InvalidArgument(fmt.Errorf("Cannot link to %s, as it does not belong to a network of %s", t.Name, rec.Name))
		}
		lk.network, lk.ip = shared[0], t.Networks[shared[0]].IPAddress
		out = append(out, lk)
	}
	return out, nil
}

// linkHosts are the /etc/hosts lines of the running container's links
// (a link that no longer resolves is left out).
func (s *Service) linkHosts(rec *Record, hc *enginev1.HostConfig) string {
	links, err := s.resolveLinks(rec, hc)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, l := range links {
		names := []string{l.alias, l.target.ID[:12]}
		if n := strings.TrimPrefix(l.target.Name, "/"); n != l.alias {
			names = append(names, n)
		}
		fmt.Fprintf(&b, "%s\t%s\n", l.ip, strings.Join(names, " "))
	}
	return b.String()
}

// linkEnv are dockerd's variables of links over the default bridge.
func linkEnv(rec *Record, links []linked) []string {
	var env []string
	for _, l := range links {
		if l.network != "bridge" {
			continue
		}
		prefix := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(l.alias))
		env = append(env, prefix+"_NAME="+rec.Name+"/"+l.alias)
		cfg, err := l.target.config()
		if err != nil {
			continue
		}
		ports := slices.Clone(cfg.GetExposedPorts())
		slices.SortFunc(ports, comparePorts)
		for i, p := range ports {
			num, proto, _ := strings.Cut(p, "/")
			if proto == "" {
				proto = "tcp"
			}
			url := proto + "://" + l.ip + ":" + num
			if i == 0 {
				env = append(env, prefix+"_PORT="+url)
			}
			key := prefix + "_PORT_" + num + "_" + strings.ToUpper(proto)
			env = append(env, key+"="+url, key+"_ADDR="+l.ip, key+"_PORT="+num, key+"_PROTO="+proto)
		}
		for _, e := range cfg.GetEnv() {
			k, v, ok := strings.Cut(e, "=")
			if !ok || k == "HOME" || k == "PATH" || k == "HOSTNAME" {
				continue
			}
			env = append(env, prefix+"_ENV_"+k+"="+v)
		}
	}
	return env
}
