package container

import (
	"bytes"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	for in, want := range map[string][]byte{
		"ctrl-p,ctrl-q": {0x10, 0x11}, "ctrl-a,x": {1, 'x'}, "a": {'a'}, "ctrl-@,ctrl-_,DEL": {0, 31, 127}, "ctrl-\\": {28},
	} {
		got, err := parseDetachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("parseDetachKeys(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ctrl-", "ctrl-1", "ctrl-ab", "xy", "ctrl-a,", "shift-a"} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("parseDetachKeys(%q) accepted", bad)
		}
	}
	if k, err := detachKeysFor(false, ""); k != nil || err != nil {
		t.Errorf("no terminal, no keys: %v %v", k, err)
	}
	if k, _ := detachKeysFor(true, ""); !bytes.Equal(k, defaultDetachKeys) {
		t.Errorf("terminal default: %v", k)
	}
	if _, err := detachKeysFor(false, "bogus-key"); err == nil {
		t.Error("invalid keys without a terminal accepted")
	}
}

func TestDetacher(t *testing.T) {
	keys := []byte{1, 'x'}
	for _, tc := range []struct {
		chunks   [][]byte
		want     string
		detached bool
	}{
		{[][]byte{[]byte("abc")}, "abc", false},
		{[][]byte{[]byte("ab\x01x"), []byte("after")}, "ab", true},
		{[][]byte{[]byte("ab\x01"), []byte("xafter")}, "ab", true},
		{[][]byte{[]byte("a\x01"), []byte("b")}, "a\x01b", false},
		{[][]byte{[]byte("\x01\x01x")}, "\x01", true},
		{[][]byte{[]byte("\x01")}, "", false},
	} {
		d := &detacher{keys: keys}
		var got []byte
		detached := false
		for _, c := range tc.chunks {
			out, done := d.feed(c)
			got = append(got, out...)
			if done {
				detached = true
				break
			}
		}
		if string(got) != tc.want || detached != tc.detached {
			t.Errorf("%q: got %q detached %v, want %q %v", tc.chunks, got, detached, tc.want, tc.detached)
		}
	}
}
