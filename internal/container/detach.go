package container

import (
	"fmt"
	"strings"
)

// defaultDetachKeys are dockerd's: ctrl-p, ctrl-q.
var defaultDetachKeys = []byte{0x10, 0x11}

// parseDetachKeys reads a detach sequence as dockerd does (moby/term's
// ToBytes): comma-separated keys, each a single character, "ctrl-X" for
// X in @, a-z, [, \, ], ^, _, or "DEL".
func parseDetachKeys(keys string) ([]byte, error) {
	var out []byte
	for _, k := range strings.Split(keys, ",") {
		if len(k) == 1 {
			out = append(out, k[0])
			continue
		}
		if k == "DEL" {
			out = append(out, 127)
			continue
		}
		c, ok := strings.CutPrefix(k, "ctrl-")
		if !ok || len(c) != 1 {
			return nil, fmt.Errorf("Unknown character: '%s'", k)
		}
		switch ch := c[0]; {
		case ch >= 'a' && ch <= 'z':
			out = append(out, ch-'a'+1)
		case ch == '@' || ch == '[' || ch == '\\' || ch == ']' || ch == '^' || ch == '_':
			out = append(out, ch-'@')
		default:
			return nil, fmt.Errorf("Unknown character: '%s'", k)
		}
	}
	return out, nil
}

// detachKeysFor is the sequence that detaches a stdin stream: as with
// dockerd, only a terminal's input is watched (the given keys, or ctrl-p
// ctrl-q); nil means none.
func detachKeysFor(tty bool, keys string) ([]byte, error) {
	if keys == "" {
		if tty {
			return defaultDetachKeys, nil
		}
		return nil, nil
	}
	b, err := parseDetachKeys(keys)
	if err != nil || !tty {
		return nil, err
	}
	return b, nil
}

// detacher finds the detach sequence in a stdin stream. Input that could
// be the start of the sequence is held back until it is known not to be;
// the sequence itself is consumed.
type detacher struct {
	keys []byte
	held int // how many of keys the input ends with so far
}

// feed returns the input to pass on, and whether the sequence is now
// complete (the rest of p is dropped with the stream).
func (d *detacher) feed(p []byte) ([]byte, bool) {
	if len(d.keys) == 0 {
		return p, false
	}
	out := make([]byte, 0, len(p)+d.held)
	for _, b := range p {
		if b == d.keys[d.held] {
			d.held++
			if d.held == len(d.keys) {
				return out, true
			}
			continue
		}
		// Not the sequence after all: what was held is input.
		out = append(out, d.keys[:d.held]...)
		d.held = 0
		if b == d.keys[0] {
			d.held = 1
			if len(d.keys) == 1 {
				return out, true
			}
			continue
		}
		out = append(out, b)
	}
	return out, false
}
