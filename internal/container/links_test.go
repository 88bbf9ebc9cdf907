package container

import (
	"slices"
	"testing"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func TestParseLink(t *testing.T) {
	for _, c := range []struct{ in, name, alias string }{
		{"db", "db", "db"},
		{"db:store", "db", "store"},
		{"/db:/web/store", "db", "store"}, // dockerd's own form, as inspect shows it
	} {
		name, alias, err := parseLink(c.in)
		if err != nil || name != c.name || alias != c.alias {
			t.Errorf("parseLink(%q) = %q, %q, %v; want %q, %q", c.in, name, alias, err, c.name, c.alias)
		}
	}
	for _, bad := range []string{"", ":x", "db:bad alias", "db:-x"} {
		if _, _, err := parseLink(bad); err == nil {
			t.Errorf("parseLink(%q) accepted", bad)
		}
	}
	if got := dockerLinks("/web", []string{"db:store", "/db:/web/store", "cache"}); !slices.Equal(got, []string{"/db:/web/store", "/db:/web/store", "/cache:/web/cache"}) {
		t.Errorf("dockerLinks = %q", got)
	}
}

func TestLinkEnv(t *testing.T) {
	target := &Record{ID: "0123456789abcdef", Name: "/db", Config: []byte(`{"exposedPorts":["6379/tcp","53/udp"],"env":["PATH=/bin","SECRET=x=y","HOME=/root"]}`)}
	env := linkEnv(&Record{Name: "/web"}, []linked{{alias: "my-db", network: "bridge", ip: "172.17.0.2", target: target}})
	want := []string{"MY_DB_NAME=/web/my-db", "MY_DB_PORT=udp://172.17.0.2:53",
		"MY_DB_PORT_53_UDP=udp://172.17.0.2:53", "MY_DB_PORT_53_UDP_ADDR=172.17.0.2", "MY_DB_PORT_53_UDP_PORT=53", "MY_DB_PORT_53_UDP_PROTO=udp",
		"MY_DB_PORT_6379_TCP=tcp://172.17.0.2:6379", "MY_DB_PORT_6379_TCP_ADDR=172.17.0.2", "MY_DB_PORT_6379_TCP_PORT=6379", "MY_DB_PORT_6379_TCP_PROTO=tcp",
		"MY_DB_ENV_SECRET=x=y"}
	if !slices.Equal(env, want) {
		t.Errorf("linkEnv =\n%q\nwant\n%q", env, want)
	}
	// Over a user-defined network a link is a hosts entry only.
	if env := linkEnv(&Record{Name: "/web"}, []linked{{alias: "db", network: "app", ip: "10.0.0.2", target: target}}); len(env) != 0 {
		t.Errorf("linkEnv over a user network = %q", env)
	}
}

// The network mode's network is joined first (eth0, the default route),
// the others by name; records from before per-network endpoints join
// their mode's network with the record's --ip and --mac-address.
func TestJoinOrder(t *testing.T) {
	hc := &enginev1.HostConfig{NetworkMode: "zeta"}
	r := &Record{PrimaryNetwork: "zeta", Networks: map[string]*NetworkEndpoint{
		"alpha": {NetworkName: "alpha"}, "zeta": {NetworkName: "zeta"}, "bridge": {NetworkName: "bridge"}}}
	var got []string
	for _, ep := range r.joinOrder(hc) {
		got = append(got, ep.NetworkName)
	}
	if !slices.Equal(got, []string{"zeta", "alpha", "bridge"}) {
		t.Errorf("joinOrder = %q", got)
	}
	old := &Record{RequestedIP: "10.1.0.9", RequestedMAC: "02:00:00:00:00:09"}
	if eps := old.joinOrder(hc); len(eps) != 1 || eps[0].NetworkName != "zeta" || eps[0].RequestedIP != "10.1.0.9" || eps[0].RequestedMAC != "02:00:00:00:00:09" {
		t.Errorf("joinOrder of an old record = %+v", eps[0])
	}
	// Disconnected from everything: no network, not the mode's again.
	if eps := (&Record{Networks: map[string]*NetworkEndpoint{}}).joinOrder(hc); len(eps) != 0 {
		t.Errorf("joinOrder with no networks = %+v", eps)
	}
}

func TestEndpointConfig(t *testing.T) {
	user := &enginev1.HostConfig{NetworkMode: "app"}
	ep, err := endpointConfig(user, "app", true, &enginev1.EndpointConfig{Ipv4Address: "10.0.0.5", MacAddress: "02:42:ac:11:00:02", Aliases: []string{"a", "b", "a"}})
	if err != nil || ep.RequestedIP != "10.0.0.5" || ep.RequestedMAC != "02:42:ac:11:00:02" || !slices.Equal(ep.Aliases, []string{"a", "b"}) {
		t.Errorf("endpointConfig = %+v, %v", ep, err)
	}
	for _, c := range []struct {
		hc      *enginev1.HostConfig
		network string
		user    bool
		ep      *enginev1.EndpointConfig
	}{
		{&enginev1.HostConfig{NetworkMode: "bridge"}, "bridge", false, &enginev1.EndpointConfig{Ipv4Address: "172.17.0.9"}},
		{&enginev1.HostConfig{NetworkMode: "bridge"}, "bridge", false, &enginev1.EndpointConfig{Aliases: []string{"x"}}},
		{user, "app", true, &enginev1.EndpointConfig{MacAddress: "01:00:5e:00:00:01"}}, // multicast
		{user, "app", true, &enginev1.EndpointConfig{Ipv4Address: "fd00::1"}},
		{user, "app", true, &enginev1.EndpointConfig{Aliases: []string{"bad alias"}}},
		{&enginev1.HostConfig{NetworkMode: "container:web"}, "container:web", false, &enginev1.EndpointConfig{MacAddress: "02:00:00:00:00:01"}},
		{&enginev1.HostConfig{NetworkMode: "host"}, "host", false, &enginev1.EndpointConfig{Aliases: []string{"x"}}},
	} {
		if _, err := endpointConfig(c.hc, c.network, c.user, c.ep); err == nil {
			t.Errorf("endpointConfig(%s, %+v) accepted", c.hc.GetNetworkMode(), c.ep)
		}
	}
}
