package cli

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func TestDisplayablePorts(t *testing.T) {
	lo := netip.MustParseAddr("0.0.0.0")
	ports := []container.PortSummary{
		{IP: lo, PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{IP: lo, PrivatePort: 81, PublicPort: 8081, Type: "tcp"},
		{PrivatePort: 53, Type: "udp"},
		{IP: netip.MustParseAddr("::"), PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
	}
	got := displayablePorts(ports)
	want := "53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 0.0.0.0:8081->81/tcp"
	if got != want {
		t.Errorf("displayablePorts = %q, want %q", got, want)
	}
}

func TestParsePublish(t *testing.T) {
	exposed, bindings := network.PortSet{}, network.PortMap{}
	for _, p := range []string{"127.0.0.1:8080:80", "9000-9001:90-91/udp", "443"} {
		if err := parsePublish(p, exposed, bindings); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	check := func(port, ip, host string) {
		t.Helper()
		b := bindings[network.MustParsePort(port)]
		if len(b) != 1 || b[0].HostPort != host || (ip != "" && b[0].HostIP.String() != ip) {
			t.Errorf("%s: %+v, want %s:%s", port, b, ip, host)
		}
	}
	check("80/tcp", "127.0.0.1", "8080")
	check("90/udp", "", "9000")
	check("91/udp", "", "9001")
	check("443/tcp", "", "")
	if len(exposed) != 4 {
		t.Errorf("exposed %v", exposed)
	}
	if err := parsePublish("1:2:3:4", exposed, bindings); err == nil {
		t.Error("1:2:3:4 accepted")
	}
}

func TestDetachKeys(t *testing.T) {
	for in, want := range map[string][]byte{"": {16, 17}, "ctrl-a,x": {1, 'x'}, "ctrl-@,ctrl-[": {0, 27}} {
		got, err := detachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("detachKeys(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := detachKeys("ctrl-1"); err == nil {
		t.Error("ctrl-1 accepted")
	}
}

// The detach sequence ends stdin there, across reads too, and what came
// before it is sent; a prefix that does not complete the sequence is sent.
func TestPumpStdinDetach(t *testing.T) {
	for _, chunks := range [][]string{{"ab\x10\x11cd"}, {"ab\x10", "\x11cd"}, {"a\x10b", "\x10\x11"}} {
		c := &CLI{In: &chunkReader{chunks: chunks}}
		var sent []byte
		det := make(chan error, 1)
		c.pumpStdin([]byte{16, 17}, func(b []byte) error { sent = append(sent, b...); return nil }, func() { t.Error("stdin closed before detach") }, det)
		select {
		case <-det:
		default:
			t.Errorf("%q: no detach", chunks)
		}
		want := strings.Split(strings.Join(chunks, ""), "\x10\x11")[0]
		if string(sent) != want {
			t.Errorf("%q: sent %q, want %q", chunks, sent, want)
		}
	}
	// Without the sequence, everything goes through and EOF closes stdin.
	c := &CLI{In: &chunkReader{chunks: []string{"x\x10", "y"}}}
	var sent []byte
	closed := false
	c.pumpStdin([]byte{16, 17}, func(b []byte) error { sent = append(sent, b...); return nil }, func() { closed = true }, make(chan error, 1))
	if string(sent) != "x\x10y" || !closed {
		t.Errorf("sent %q closed %v", sent, closed)
	}
}

type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

func TestWriteRowsTable(t *testing.T) {
	var out bytes.Buffer
	rows := []any{imageRow{repo: "busybox", tag: "latest", trunc: true}, imageRow{repo: "a-much-longer-name", tag: "1", trunc: true}}
	if err := writeRows(&out, "table {{.Repository}}\t{{.Tag}}", "", imageHeader, rows); err != nil {
		t.Fatal(err)
	}
	want := "REPOSITORY           TAG\nbusybox              latest\na-much-longer-name   1\n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := writeRows(&out, "{{json .Repository}} {{upper .Tag}} {{join (split .Repository \"-\") \"+\"}}", "", imageHeader, rows[1:]); err != nil {
		t.Fatal(err)
	}
	if out.String() != "\"a-much-longer-name\" 1 a+much+longer+name\n" {
		t.Errorf("template functions: %q", out.String())
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	ts, err := parseTime("since", "10m", now)
	if err != nil || !ts.AsTime().Equal(time.Unix(now.Add(-10*time.Minute).Unix(), 0)) {
		t.Errorf("10m: %v %v", ts.AsTime(), err)
	}
	ts, err = parseTime("since", "1700000000.5", now)
	if err != nil || ts.AsTime().UnixMilli() != 1700000000500 {
		t.Errorf("unix: %v %v", ts.AsTime(), err)
	}
	ts, err = parseTime("since", "2024-05-06T07:08:09Z", now)
	if err != nil || !ts.AsTime().Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("rfc3339: %v %v", ts.AsTime(), err)
	}
	if _, err := parseTime("since", "yesterday", now); err == nil {
		t.Error("yesterday accepted")
	}
}

func TestFilterJSON(t *testing.T) {
	got, err := filterJSON([]string{"name=a", "name=b", "status=exited"})
	if err != nil || got != `{"name":{"a":true,"b":true},"status":{"exited":true}}` {
		t.Errorf("filterJSON = %s, %v", got, err)
	}
	if _, err := filterJSON([]string{"bad"}); err == nil {
		t.Error("bad filter accepted")
	}
}
