package build

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func TestParseExpose(t *testing.T) {
	for in, want := range map[string][]string{
		"80": {"80/tcp"}, "53/udp": {"53/udp"}, "8000-8002": {"8000/tcp", "8001/tcp", "8002/tcp"},
		"127.0.0.1:8080:80": {"80/tcp"}, "80/SCTP": {"80/sctp"},
	} {
		got, err := parseExpose(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseExpose(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"80/xyz", "", "abc", "90-80", "70000"} {
		if _, err := parseExpose(bad); err == nil {
			t.Errorf("parseExpose(%q) accepted", bad)
		}
	}
}

func strp(s string) *string { return &s }

func TestBuildArgs(t *testing.T) {
	args := newBuildArgs(map[string]*enginev1.BuildArgValue{
		"GIVEN": {Value: strp("fromcli")}, "HTTP_PROXY": {Value: strp("http://p")}, "NOVALUE": {}, "UNUSED": {Value: strp("x")},
	})
	args.addMetaArg("META", strp("meta"))
	st := args.clone()
	st.resetAllowed()
	st.addArg("GIVEN", strp("default"))
	st.addArg("DECLARED", strp("dflt"))
	st.addArg("NOVALUE", nil)
	st.addArg("META", nil)
	got := st.filterAllowed([]string{"PATH=/bin", "DECLARED=in-env"})
	want := []string{"GIVEN=fromcli", "HTTP_PROXY=http://p", "META=meta"}
	if !slices.Equal(got, want) {
		t.Errorf("filterAllowed = %v, want %v", got, want)
	}
	// The proxy args are used without ARG but not recorded unless declared.
	if st.isReferencedOrNotBuiltin("HTTP_PROXY") || !st.isReferencedOrNotBuiltin("GIVEN") {
		t.Error("isReferencedOrNotBuiltin: builtin proxy arg counted as referenced, or a declared one not")
	}
	args.mergeReferenced(st)
	if u := args.unused(); !slices.Equal(u, []string{"UNUSED"}) {
		t.Errorf("unused = %v", u)
	}
}

func TestApplyChanges(t *testing.T) {
	cfg := runConfig{}
	cfg.Env = []string{"PATH=/bin", "A=1"}
	cfg.WorkingDir = "/srv"
	err := ApplyChanges(context.Background(), &cfg, []string{"ENV A=2 B=3", `CMD ["run", "it"]`, "WORKDIR sub/../app", "EXPOSE 80 53/udp",
		"LABEL k=v", "USER nobody", "VOLUME /data", "STOPSIGNAL SIGTERM", "ONBUILD RUN true", "HEALTHCHECK CMD true", `ENTRYPOINT ["/e"]`})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Env, []string{"PATH=/bin", "A=2", "B=3"}) || !slices.Equal(cfg.Cmd, []string{"run", "it"}) ||
		cfg.WorkingDir != "/srv/app" || cfg.User != "nobody" || cfg.Labels["k"] != "v" || cfg.StopSignal != "SIGTERM" ||
		len(cfg.ExposedPorts) != 2 || len(cfg.Volumes) != 1 || !slices.Equal(cfg.OnBuild, []string{"RUN true"}) ||
		cfg.Healthcheck == nil || !slices.Equal(cfg.Entrypoint, []string{"/e"}) {
		t.Errorf("changes applied: %+v", cfg)
	}
	for change, want := range map[string]string{
		"RUN echo": "RUN is not a valid change command", "FROM busybox": "FROM is not a valid change command",
		"COPY a b": "COPY is not a valid change command", "STOPSIGNAL NOPE": "NOPE", "EXPOSE 1/bad": "invalid proto",
	} {
		c := runConfig{}
		if err := ApplyChanges(context.Background(), &c, []string{change}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ApplyChanges(%q) = %v, want %q", change, err, want)
		}
	}
}

func TestMergeContainerConfig(t *testing.T) {
	base := runConfig{}
	base.Cmd = []string{"sh"}
	base.Env = []string{"PATH=/bin", "A=1"}
	got := mergeContainerConfig(base, &enginev1.ContainerConfig{Entrypoint: []string{"/x"}, EntrypointSet: true, Env: []string{"A=2", "C=3"}, User: "u"})
	if got.Cmd != nil || !slices.Equal(got.Entrypoint, []string{"/x"}) || !slices.Equal(got.Env, []string{"PATH=/bin", "A=2", "C=3"}) || got.User != "u" {
		t.Errorf("merged: %+v", got)
	}
	if !slices.Equal(base.Env, []string{"PATH=/bin", "A=1"}) {
		t.Errorf("merge changed its base: %v", base.Env)
	}
}
