package container

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/store"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func TestMergeHealthcheck(t *testing.T) {
	img := &enginev1.HealthConfig{Test: []string{"CMD", "img"}, Interval: 1, Timeout: 2, StartPeriod: 3, StartInterval: 4, Retries: 5}
	if got := mergeHealthcheck(nil, img); !proto.Equal(got, img) || got == img {
		t.Errorf("no own check: %v", got)
	}
	own := &enginev1.HealthConfig{Interval: 10, Retries: 7}
	want := &enginev1.HealthConfig{Test: []string{"CMD", "img"}, Interval: 10, Timeout: 2, StartPeriod: 3, StartInterval: 4, Retries: 7}
	if got := mergeHealthcheck(own, img); !proto.Equal(got, want) {
		t.Errorf("merged: %v, want %v", got, want)
	}
	none := &enginev1.HealthConfig{Test: []string{"NONE"}}
	if got := mergeHealthcheck(none, img); probeCommand(got) != nil {
		t.Errorf("NONE over the image's check runs %v", probeCommand(got))
	}
	if got := mergeHealthcheck(own, nil); got != own {
		t.Errorf("no image check: %v", got)
	}
}

func TestProbeCommand(t *testing.T) {
	for _, c := range []struct {
		test []string
		want []string
	}{
		{nil, nil},
		{[]string{"NONE"}, nil},
		{[]string{"CMD"}, nil},
		{[]string{"BOGUS", "x"}, nil},
		{[]string{"CMD", "test", "-f", "/x"}, []string{"test", "-f", "/x"}},
		{[]string{"CMD-SHELL", "test -f /x"}, []string{"/bin/sh", "-c", "test -f /x"}},
	} {
		if got := probeCommand(&enginev1.HealthConfig{Test: c.test}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %q, want %q", c.test, got, c.want)
		}
	}
}

func TestValidateHealthcheck(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, c := range []struct {
		h    *enginev1.HealthConfig
		want string // "" valid
	}{
		{nil, ""},
		{&enginev1.HealthConfig{}, ""},
		{&enginev1.HealthConfig{Test: []string{"NONE"}}, ""},
		{&enginev1.HealthConfig{Test: []string{"CMD", "true"}, Interval: ms, Timeout: ms, StartPeriod: ms, StartInterval: ms}, ""},
		{&enginev1.HealthConfig{Interval: -1}, "Interval in Healthcheck cannot be less than 1ms"},
		{&enginev1.HealthConfig{Interval: ms - 1}, "Interval in Healthcheck cannot be less than 1ms"},
		{&enginev1.HealthConfig{Timeout: 5}, "Timeout in Healthcheck cannot be less than 1ms"},
		{&enginev1.HealthConfig{Retries: -1}, "Retries in Healthcheck cannot be negative"},
		{&enginev1.HealthConfig{StartPeriod: 1}, "StartPeriod in Healthcheck cannot be less than 1ms"},
		{&enginev1.HealthConfig{StartInterval: -ms}, "StartInterval in Healthcheck cannot be less than 1ms"},
		{&enginev1.HealthConfig{Test: []string{"CMD"}}, "Healthcheck CMD needs a command"},
		{&enginev1.HealthConfig{Test: []string{"CMD", ""}}, "Healthcheck CMD needs a command"},
		{&enginev1.HealthConfig{Test: []string{"CMD-SHELL", "  "}}, "Healthcheck CMD-SHELL needs a command"},
		{&enginev1.HealthConfig{Test: []string{"cmd", "true"}}, "unknown Healthcheck type 'cmd'"},
	} {
		err := validateHealthcheck(c.h)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.h, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: %v, want %q", c.h, err, c.want)
		}
	}
}

// A probe's output is kept up to 4096 bytes, then "...", however it is
// written.
func TestLimitedBuffer(t *testing.T) {
	var b limitedBuffer
	b.Write([]byte("abc"))
	if b.String() != "abc" {
		t.Errorf("short: %q", b.String())
	}
	for range 100 {
		if n, _ := b.Write([]byte(strings.Repeat("x", 100))); n != 100 {
			t.Fatalf("wrote %d", n)
		}
	}
	if got := b.String(); len(got) != healthMaxOutput+3 || !strings.HasPrefix(got, "abcx") || !strings.HasSuffix(got, "x...") {
		t.Errorf("long: %d bytes, %q...%q", len(got), got[:5], got[len(got)-5:])
	}
	var exact limitedBuffer
	exact.Write([]byte(strings.Repeat("y", healthMaxOutput)))
	if got := exact.String(); len(got) != healthMaxOutput || strings.HasSuffix(got, "...") {
		t.Errorf("exactly the cap: %d bytes", len(got))
	}
}

func TestValidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                "plain",
		"caf\xc3\xa9":          "caf\u00e9",
		"cut \xc3":             "cut \uFFFD",
		"\xff\xfe ok":          "\uFFFD\uFFFD ok",
		strings.Repeat("x", 3): "xxx",
	} {
		if got := validUTF8(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// recordProbe is dockerd's handleProbeResult: the streak, the status, the
// start period, the last 5 results; and nothing once the monitor stopped
// or the container stopped.
func TestRecordProbe(t *testing.T) {
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bus := events.New()
	s := &Service{cfg: Config{Store: st, Events: bus}, changed: map[string]chan struct{}{}, recs: emptyRecords(t, st)}
	started := time.Now().UTC()
	cfg, _ := protojson.Marshal(&enginev1.ContainerConfig{Healthcheck: &enginev1.HealthConfig{Test: []string{"CMD", "true"}}})
	rec := &Record{ID: "c1", Name: "/c1", Status: "running", StartedAt: started, Config: cfg, Health: &Health{Status: healthStarting}}
	if err := s.recs.insert(rec, false); err != nil {
		t.Fatal(err)
	}
	m := &healthMonitor{cancel: func() {}}
	hc := &enginev1.HealthConfig{Retries: 2, StartPeriod: int64(time.Hour)}
	result := func(code int, at time.Time) HealthResult {
		return HealthResult{Start: at, End: at, ExitCode: code, Output: strconv.Itoa(code)}
	}
	state := func() *Health {
		r, err := s.get("c1")
		if err != nil {
			t.Fatal(err)
		}
		return r.Health
	}
	// Failures within the start period, while starting, do not count.
	for range 3 {
		s.recordProbe(m, "c1", hc, result(1, started.Add(time.Second)))
	}
	if h := state(); h.Status != healthStarting || h.FailingStreak != 0 || len(h.Log) != 3 {
		t.Errorf("in the start period: %+v", h)
	}
	s.recordProbe(m, "c1", hc, result(0, started.Add(2*time.Second)))
	if h := state(); h.Status != healthHealthy || h.FailingStreak != 0 {
		t.Errorf("after a pass: %+v", h)
	}
	// Once healthy, failures count even within the start period.
	s.recordProbe(m, "c1", hc, result(1, started.Add(3*time.Second)))
	if h := state(); h.Status != healthHealthy || h.FailingStreak != 1 || len(h.Log) != 5 {
		t.Errorf("one failure: %+v", h)
	}
	s.recordProbe(m, "c1", hc, result(-1, started.Add(4*time.Second)))
	h := state()
	if h.Status != healthUnhealthy || h.FailingStreak != 2 || len(h.Log) != 5 || h.Log[0].Output != "1" || h.Log[4].Output != "-1" {
		t.Errorf("retries failures: %+v", h)
	}
	// Starting again, after the start period: the first failures count.
	s.update("c1", func(r *Record) error { resetHealth(r); return nil })
	hc.StartPeriod = 0
	s.recordProbe(m, "c1", hc, result(1, started.Add(5*time.Second)))
	if h := state(); h.Status != healthStarting || h.FailingStreak != 1 {
		t.Errorf("first failure after the start period: %+v", h)
	}
	var evs []string
	bus.Subscribe(context.Background(), started.Add(-time.Second), time.Now(), func() error { return nil }, func(ev *enginev1.Event) error {
		evs = append(evs, ev.GetAction())
		return nil
	})
	if want := []string{"health_status: healthy", "health_status: unhealthy"}; !reflect.DeepEqual(evs, want) {
		t.Errorf("events %q, want %q", evs, want)
	}
	// A stopped monitor records nothing; nor does a stopped container.
	m.stop()
	if s.recordProbe(m, "c1", hc, result(0, time.Now())) || state().Status != healthStarting {
		t.Errorf("a stopped monitor recorded: %+v", state())
	}
	m2 := &healthMonitor{cancel: func() {}}
	s.update("c1", func(r *Record) error { r.Status = "exited"; healthStopped(r); return nil })
	if s.recordProbe(m2, "c1", hc, result(0, time.Now())) || state().Status != healthUnhealthy {
		t.Errorf("a stopped container's probe recorded: %+v", state())
	}
}

// Without retries, 3 failures in a row make a container unhealthy.
func TestRecordProbeDefaultRetries(t *testing.T) {
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &Service{cfg: Config{Store: st}, changed: map[string]chan struct{}{}, recs: emptyRecords(t, st)}
	now := time.Now().UTC()
	if err := s.recs.insert(&Record{ID: "c2", Name: "/c2", Status: "running", StartedAt: now}, false); err != nil {
		t.Fatal(err)
	}
	m := &healthMonitor{cancel: func() {}}
	for i, want := range []string{healthStarting, healthStarting, healthUnhealthy} {
		s.recordProbe(m, "c2", &enginev1.HealthConfig{}, HealthResult{Start: now, End: now, ExitCode: 1})
		if r, _ := s.get("c2"); r.Health.Status != want || r.Health.FailingStreak != i+1 {
			t.Errorf("failure %d: %+v, want %s", i+1, r.Health, want)
		}
	}
	if durationOr(0, healthDefaultInterval) != 30*time.Second || durationOr(0, healthDefaultTimeout) != 30*time.Second ||
		durationOr(0, healthDefaultStartInterval) != 5*time.Second || durationOr(int64(time.Second), time.Minute) != time.Second {
		t.Error("dockerd's defaults: interval 30s, timeout 30s, start interval 5s")
	}
}
