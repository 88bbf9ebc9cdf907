package resolvconf

import "testing"

const head = Header + "\n\n"

func TestInternal(t *testing.T) {
	host := []byte("# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver bogus\nsearch lan corp\noptions edns0 trust-ad\nsortlist 10.0.0.0\n")
	for _, c := range []struct {
		name                 string
		dns, search, options []string
		want                 string
	}{
		{name: "host's", want: head + "nameserver 127.0.0.11\nsearch lan corp\noptions edns0 trust-ad ndots:0\nsortlist 10.0.0.0\n\n" +
			"# Based on host file: '/etc/resolv.conf' (internal resolver)\n# ExtServers: [host(127.0.0.53) host(10.0.0.1)]\n" +
			"# Invalid nameservers: [bogus]\n# Overrides: []\n# Option ndots from: internal\n"},
		{name: "overrides", dns: []string{"9.9.9.9"}, search: []string{"."}, options: []string{"ndots:3", "timeout:1"},
			want: head + "nameserver 127.0.0.11\noptions ndots:3 timeout:1\nsortlist 10.0.0.0\n\n" +
				"# Based on host file: '/etc/resolv.conf' (internal resolver)\n# ExtServers: [9.9.9.9]\n" +
				"# Invalid nameservers: [bogus]\n# Overrides: [nameservers search options]\n# Option ndots from: override\n"},
		{name: "bad ndots", options: []string{"ndots:-1"},
			want: head + "nameserver 127.0.0.11\nsearch lan corp\noptions ndots:0\nsortlist 10.0.0.0\n\n" +
				"# Based on host file: '/etc/resolv.conf' (internal resolver)\n# ExtServers: [host(127.0.0.53) host(10.0.0.1)]\n" +
				"# Invalid nameservers: [bogus]\n# Overrides: [options]\n# Option ndots from: internal\n"},
	} {
		if got := Internal(host, "/etc/resolv.conf", c.dns, c.search, c.options); got != c.want {
			t.Errorf("%s:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
	// The host's own ndots is kept, and said to be the host's.
	got := Internal([]byte("nameserver 1.1.1.1\noptions ndots:2\n"), "/r", nil, nil, nil)
	want := head + "nameserver 127.0.0.11\noptions ndots:2\n\n# Based on host file: '/r' (internal resolver)\n# ExtServers: [host(1.1.1.1)]\n# Overrides: []\n# Option ndots from: host\n"
	if got != want {
		t.Errorf("host ndots:\n%s\nwant:\n%s", got, want)
	}
}

func TestUpstreams(t *testing.T) {
	host := []byte("nameserver 127.0.0.53\nnameserver ::1\n")
	if got := Upstreams(host, nil); len(got) != 2 || !got[0].HostNS || got[1].Addr.String() != "::1" {
		t.Errorf("host's: %v", got)
	}
	if got := Upstreams(host, []string{"10.0.0.2"}); len(got) != 1 || got[0].HostNS || got[0].Addr.String() != "10.0.0.2" {
		t.Errorf("--dns: %v", got)
	}
}

func TestExternal(t *testing.T) {
	host := []byte("nameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch lan\noptions edns0\n")
	if got, want := External(host, true, nil, nil, nil), "nameserver 10.0.0.1\nsearch lan\noptions edns0\n"; got != want {
		t.Errorf("own netns: %q, want %q", got, want)
	}
	if got, want := External(host, false, []string{"9.9.9.9"}, []string{"a.example"}, []string{"ndots:2"}),
		"nameserver 9.9.9.9\nsearch a.example\noptions ndots:2\n"; got != want {
		t.Errorf("with dns settings: %q, want %q", got, want)
	}
	// Only loopback servers: dockerd's defaults, in a namespace of its own.
	loop := []byte("nameserver 127.0.0.53\noptions edns0\n")
	if got, want := External(loop, true, nil, nil, nil), "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"; got != want {
		t.Errorf("loopback only: %q, want %q", got, want)
	}
	if got, want := External(loop, false, nil, nil, nil), string(loop); got != want {
		t.Errorf("host network: %q, want %q", got, want)
	}
}
