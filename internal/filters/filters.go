// Package filters parses Docker's "filters" parameter, a JSON object of
// key to values, in both forms clients send: {"key":{"value":true}} and
// the older {"key":["value"]}.
package filters

import (
	"encoding/json"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/engined/engined/internal/errdefs"
)

// Args are parsed filters.
type Args map[string]map[string]bool

// Parse decodes s; an empty string means no filters. Keys outside allowed
// are an error, as with dockerd.
func Parse(s string, allowed ...string) (Args, error) {
	args := Args{}
	if strings.TrimSpace(s) == "" {
		return args, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filters %q: %w", s, err))
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k, v := range raw {
		if !ok[k] {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter '%s'", k))
		}
		vals := map[string]bool{}
		var asMap map[string]bool
		var asList []string
		if err := json.Unmarshal(v, &asMap); err == nil {
			for x, on := range asMap {
				if on {
					vals[x] = true
				}
			}
		} else if err := json.Unmarshal(v, &asList); err == nil {
			for _, x := range asList {
				vals[x] = true
			}
		} else {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid value for filter '%s': %s", k, v))
		}
		args[k] = vals
	}
	return args, nil
}

// Get returns a key's values, sorted.
func (a Args) Get(key string) []string {
	var out []string
	for v := range a[key] {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Has reports whether key was given.
func (a Args) Has(key string) bool { return len(a[key]) > 0 }

// Bool reads a true/false filter (dangling); def when absent.
func (a Args) Bool(key string, def bool) (bool, error) {
	vals := a.Get(key)
	if len(vals) == 0 {
		return def, nil
	}
	if len(vals) > 1 {
		return false, errdefs.InvalidArgument(fmt.Errorf("filter '%s' takes one value", key))
	}
	switch strings.ToLower(vals[0]) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, errdefs.InvalidArgument(fmt.Errorf("invalid filter '%s=%s'", key, vals[0]))
}

// MatchLabels reports whether labels satisfy every "label" filter
// ("key" or "key=value").
func (a Args) MatchLabels(key string, labels map[string]string) bool {
	for f := range a[key] {
		k, v, hasValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// MatchNoLabel reports whether labels satisfy no "label!" filter, as
// dockerd's prunes read it ("key" or "key=value" to keep).
func (a Args) MatchNoLabel(key string, labels map[string]string) bool {
	for f := range a[key] {
		k, v, hasValue := strings.Cut(f, "=")
		if got, ok := labels[k]; ok && (!hasValue || got == v) {
			return false
		}
	}
	return true
}

// MatchPattern reports whether s matches any of key's glob patterns.
func (a Args) MatchPattern(key, s string) bool {
	for p := range a[key] {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// ParseTime reads a time filter value as dockerd does: a Go duration
// before now ("10m"), a Unix timestamp ("1700000000.5"), or an RFC 3339
// date or date-time.
func ParseTime(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.InvalidArgument(fmt.Errorf("invalid time value %q: use a duration, a Unix timestamp or an RFC 3339 date", v))
}
