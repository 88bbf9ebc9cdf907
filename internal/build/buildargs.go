package build

import (
	"sort"
	"strings"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// builtinArgs are the proxy build args every Dockerfile may use without
// declaring them, as dockerd's.
var builtinArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true, "ALL_PROXY": true, "all_proxy": true,
}

// buildArgs follows dockerd's BuildArgs: what ARG allowed, the meta args
// before the first FROM, what was referenced, and --build-arg.
type buildArgs struct {
	allowed    map[string]*string
	meta       map[string]*string
	referenced map[string]bool
	fromOpts   map[string]*string
}

func newBuildArgs(opts map[string]*enginev1.BuildArgValue) *buildArgs {
	b := &buildArgs{allowed: map[string]*string{}, meta: map[string]*string{}, referenced: map[string]bool{}, fromOpts: map[string]*string{}}
	for k, v := range opts {
		if v != nil && v.Value != nil {
			s := v.GetValue()
			b.fromOpts[k] = &s
		} else {
			b.fromOpts[k] = nil
		}
	}
	return b
}

func (b *buildArgs) clone() *buildArgs {
	c := &buildArgs{allowed: map[string]*string{}, meta: map[string]*string{}, referenced: map[string]bool{}, fromOpts: b.fromOpts}
	for k, v := range b.allowed {
		c.allowed[k] = v
	}
	for k, v := range b.meta {
		c.meta[k] = v
	}
	for k := range b.referenced {
		c.referenced[k] = true
	}
	return c
}

func (b *buildArgs) resetAllowed()                  { b.allowed = map[string]*string{} }
func (b *buildArgs) addMetaArg(k string, v *string) { b.meta[k] = v }
func (b *buildArgs) addArg(k string, v *string) {
	b.allowed[k] = v
	b.referenced[k] = true
}

func (b *buildArgs) mergeReferenced(o *buildArgs) {
	for k := range o.referenced {
		b.referenced[k] = true
	}
}

func (b *buildArgs) unused() []string {
	var out []string
	for k := range b.fromOpts {
		if !builtinArgs[k] && !b.referenced[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (b *buildArgs) isReferencedOrNotBuiltin(k string) bool {
	_, allowed := b.allowed[k]
	return allowed || !builtinArgs[k]
}

func (b *buildArgs) get(k string, mapping map[string]*string) (string, bool) {
	def, exists := mapping[k]
	if v, ok := b.fromOpts[k]; ok && v != nil {
		return *v, true
	}
	if def == nil {
		if v, ok := b.meta[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	}
	return *def, exists
}

func (b *buildArgs) all(mapping map[string]*string) map[string]string {
	out := map[string]string{}
	for k := range mapping {
		if v, ok := b.get(k, mapping); ok {
			out[k] = v
		}
	}
	for k := range builtinArgs {
		if v, ok := b.get(k, mapping); ok {
			out[k] = v
		}
	}
	return out
}

func (b *buildArgs) allAllowed() map[string]string { return b.all(b.allowed) }
func (b *buildArgs) allMeta() map[string]string    { return b.all(b.meta) }

// filterAllowed is the allowed args not already in env, as KEY=VALUE.
func (b *buildArgs) filterAllowed(env []string) []string {
	have := map[string]bool{}
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		have[k] = true
	}
	var out []string
	for k, v := range b.allAllowed() {
		if !have[k] {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}
