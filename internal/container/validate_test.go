package container

import (
	"testing"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func TestParseCPUSet(t *testing.T) {
	got, err := parseCPUSet("0-2,5")
	if err != nil || len(got) != 4 || !got[0] || !got[2] || !got[5] || got[3] {
		t.Errorf("0-2,5: %v %v", got, err)
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "1,"} {
		if _, err := parseCPUSet(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLogRotation(t *testing.T) {
	for _, c := range []struct {
		opts  map[string]string
		size  int64
		files int
		bad   bool
	}{
		{opts: nil, size: 0, files: 1},
		{opts: map[string]string{"max-size": "10mb"}, size: 10 << 20, files: 1},
		{opts: map[string]string{"max-size": "1.5m", "max-file": "3"}, size: 3 << 19, files: 3},
		{opts: map[string]string{"max-size": "10k"}, size: 10 << 10, files: 1},
		{opts: map[string]string{"max-size": "ten"}, bad: true},
		{opts: map[string]string{"max-file": "2"}, bad: true},
		{opts: map[string]string{"max-size": "1m", "max-file": "0"}, bad: true},
		{opts: map[string]string{"bogus": "1"}, bad: true},
	} {
		size, files, err := logRotation(&enginev1.LogConfig{Type: "json-file", Config: c.opts})
		if c.bad != (err != nil) || (!c.bad && (size != c.size || files != c.files)) {
			t.Errorf("%v: %d %d %v", c.opts, size, files, err)
		}
	}
}

func TestParseExtraHost(t *testing.T) {
	for in, want := range map[string]string{"a:1.2.3.4": "a 1.2.3.4", "b=::1": "b ::1", "c:[fe80::1]": "c fe80::1", "gw:host-gateway": "gw host-gateway"} {
		name, ip, err := parseExtraHost(in)
		if err != nil || name+" "+ip != want {
			t.Errorf("%s: %s %s %v", in, name, ip, err)
		}
	}
	for _, bad := range []string{"a", ":1.2.3.4", "a:notanip"} {
		if _, _, err := parseExtraHost(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
