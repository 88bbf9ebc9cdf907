package filters

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/engined/engined/internal/errdefs"
)

// fuzzAllowed is a union of the keys engined's list, prune and events
// endpoints accept.
var fuzzAllowed = []string{"dangling", "label", "before", "since", "reference", "until", "status", "name", "id",
	"ancestor", "exited", "type", "event", "container", "image"}

// FuzzParse: any filters string gives Args or an InvalidArgument error,
// never a panic, and what parses survives re-encoding in both of the forms
// clients send ({"k":["v"]} and the legacy {"k":{"v":true}}).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `null`, `[]`, `"x"`, `{"label":["a=b","c"]}`, `{"label":{"a=b":true,"c":false}}`,
		`{"dangling":["true"]}`, `{"dangling":{"1":true}}`, `{"until":["10m"]}`, `{"until":["1700000000.5"]}`,
		`{"until":["2024-01-02T03:04:05Z"]}`, `{"name":["^/web.*$","[a-"]}`, `{"nope":["x"]}`, `{"label":"x"}`,
		`{"label":[1,2]}`, `{"label":{"a":"yes"}}`, `{"label":null}`, `{"label":[null]}`, `{"label":["a"],"label":["b"]}`,
		`{"until":["NaN"]}`, `{"until":["-Inf"]}`, `{"until":["1e308"]}`, `{"until":["-9223372036854775808ns"]}`,
		"{\"label\":[\"\xff\xfe\"]}", `{"status":["running","exited"],"exited":["0"]}`, `{"label":[]}`, `{"label":{}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := Parse(s, fuzzAllowed...)
		if err != nil {
			if errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("Parse(%q): error %v is not InvalidArgument", s, err)
			}
		} else {
			exercise(t, args)
		}

		// With every key it names allowed, what parses must round-trip.
		var raw map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &raw) != nil {
			return
		}
		args, err = Parse(s, keys(raw)...)
		if err != nil {
			return // a value of the wrong shape
		}
		list := map[string][]string{}
		legacy := map[string]map[string]bool{}
		for k := range args {
			list[k] = args.Get(k)
			if list[k] == nil {
				list[k] = []string{}
			}
			legacy[k] = maps.Clone(args[k])
		}
		for form, v := range map[string]any{"list": list, "legacy": legacy} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(string(b), keys(raw)...)
			if err != nil {
				t.Fatalf("%s form %s of %q does not parse: %v", form, b, s, err)
			}
			if !reflect.DeepEqual(again, args) {
				t.Fatalf("%s form %s of %q parses to %v, want %v", form, b, s, again, args)
			}
		}
	})
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// exercise calls every reader on args; none may panic, and errors must be
// InvalidArgument.
func exercise(t *testing.T, args Args) {
	now := time.Unix(1700000000, 0)
	for k := range args {
		args.Get(k)
		args.Has(k)
		if _, err := args.Bool(k, false); err != nil && errdefs.Code(err) != codes.InvalidArgument {
			t.Fatalf("Bool(%q): %v is not InvalidArgument", k, err)
		}
		args.MatchLabels(k, map[string]string{"a": "b", "": ""})
		args.MatchPattern(k, "/web-1")
		for _, v := range args.Get(k) {
			if _, err := ParseTime(v, now); err != nil && errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("ParseTime(%q): %v is not InvalidArgument", v, err)
			}
		}
	}
}
