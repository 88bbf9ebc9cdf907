package network

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/network/dns"
	"github.com/engined/engined/internal/store"
)

// The records are a function of the stored networks and endpoints: user
// networks only, one sandbox per container with its upstreams (none
// when it is only on --internal networks), --dns servers from the
// container's namespace, the host's from the host's.
func TestDNSRecords(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "data"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.53\nnameserver 10.0.0.1\n"), 0o644)
	m := &Manager{cfg: Config{Store: st}, dns: newDNSState(DNSConfig{HostResolvConf: resolv}, nil)}
	nets := []*Network{
		{ID: "nb", Name: BridgeNetwork, Driver: "bridge"},
		{ID: "napp", Name: "app", Driver: "bridge"},
		{ID: "npriv", Name: "priv", Driver: "bridge", Internal: true},
		{ID: "nhost", Name: "host", Driver: "host"},
	}
	eps := []*Endpoint{
		{ContainerID: "web", NetworkID: "napp", IPAddress: "10.1.0.2", DNSNames: []string{"web", "webid"}, NetNS: "/proc/1/ns/net", NetNSInode: 7},
		{ContainerID: "web", NetworkID: "nb", IPAddress: "172.17.0.2"},
		{ContainerID: "db", NetworkID: "napp", IPAddress: "10.1.0.3", DNSNames: []string{"db"}, NetNS: "/proc/2/ns/net", DNS: []string{"9.9.9.9"}},
		{ContainerID: "vault", NetworkID: "npriv", IPAddress: "10.2.0.2", DNSNames: []string{"vault"}, NetNS: "/proc/3/ns/net"},
		{ContainerID: "old", NetworkID: "nb", IPAddress: "172.17.0.3"},
	}
	if err := st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketNetworks)
		for _, n := range nets {
			if err := putJSON(b, keyNetwork+n.ID, n); err != nil {
				return err
			}
		}
		for _, ep := range eps {
			if err := putJSON(b, keyEndpoint+ep.ContainerID+"/"+ep.NetworkID, ep); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	recs, err := m.dnsRecords()
	if err != nil {
		t.Fatal(err)
	}
	if got := recs.Networks; !slices.Equal(got, []dns.Network{{ID: "napp", Name: "app"}, {ID: "npriv", Name: "priv"}}) {
		t.Errorf("networks: %v", got)
	}
	if len(recs.Endpoints) != 3 {
		t.Errorf("endpoints: %v, want web, db and vault on user networks", recs.Endpoints)
	}
	sbs := map[string]dns.Sandbox{}
	for _, sb := range recs.Sandboxes {
		sbs[sb.ContainerID] = sb
	}
	host := []dns.Upstream{{Addr: "127.0.0.53:53", HostNS: true}, {Addr: "10.0.0.1:53", HostNS: true}}
	if sb := sbs["web"]; sb.NetNS != "/proc/1/ns/net" || sb.NetNSInode != 7 || !slices.Equal(sb.Upstreams, host) {
		t.Errorf("web's sandbox: %+v", sb)
	}
	if sb := sbs["db"]; !slices.Equal(sb.Upstreams, []dns.Upstream{{Addr: "9.9.9.9:53"}}) {
		t.Errorf("db's sandbox (--dns): %+v", sb)
	}
	if sb, ok := sbs["vault"]; !ok || len(sb.Upstreams) != 0 {
		t.Errorf("vault's sandbox (internal only): %+v", sb)
	}
	if _, ok := sbs["old"]; ok || len(sbs) != 3 {
		t.Errorf("sandboxes: %v", recs.Sandboxes)
	}
}

func TestDNSNamesOfAnEndpoint(t *testing.T) {
	ep := &Endpoint{}
	app := &Network{Name: "app", Driver: "bridge"}
	err := dnsEndpoint(ep, app, "0123456789abcdef", "/proc/self/ns/net",
		AttachRequest{Name: "/db", Hostname: "0123456789ab", Aliases: []string{"database", "db"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"db", "database", "0123456789ab"}; !slices.Equal(ep.DNSNames, want) {
		t.Errorf("DNSNames %v, want %v (name, aliases, short id, hostname, without repeats)", ep.DNSNames, want)
	}
	if ep.NetNSInode == 0 {
		t.Error("no namespace inode")
	}
	if err := dnsEndpoint(&Endpoint{}, &Network{Name: BridgeNetwork, Driver: "bridge"}, "x", "/proc/self/ns/net", AttachRequest{Aliases: []string{"a"}}); err == nil {
		t.Error("aliases on the default bridge: want an error")
	}
}
