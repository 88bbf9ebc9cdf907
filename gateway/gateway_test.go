package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Every REST-mapped Engine method needs a Docker shape for its response:
// without one the gateway would answer 500, so catch it here.
func TestEveryRouteHasDockerShape(t *testing.T) {
	sd := enginev1.File_engine_v1_engine_proto.Services().ByName("Engine")
	methods := sd.Methods()
	n := 0
	for i := 0; i < methods.Len(); i++ {
		m := methods.Get(i)
		rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil || proto.Equal(rule, &annotations.HttpRule{}) {
			continue
		}
		n++
		if _, ok := responseConverters[m.Output().FullName()]; !ok {
			t.Errorf("%s is served at a REST route but %s has no registered Docker shape", m.Name(), m.Output().FullName())
		}
		if rule.GetBody() == "*" {
			if _, ok := requestConverters[m.Input().FullName()]; !ok {
				t.Errorf("%s takes a body but %s has no request converter", m.Name(), m.Input().FullName())
			}
		}
	}
	if n == 0 {
		t.Fatal("no REST-mapped methods found")
	}
}

func TestVersionMiddleware(t *testing.T) {
	var gotPath, gotVersion string
	h := withAPIVersion(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotVersion = r.URL.Path, APIVersion(r.Context())
	}))
	cases := []struct {
		path, wantPath, wantVersion string
		code                        int
	}{
		{"/containers/json", "/containers/json", "1.51", 200},
		{"/v1.41/containers/json", "/containers/json", "1.41", 200},
		{"/v1.40/info", "/info", "1.40", 200},
		{"/v1.51/images/docker.io/library/busybox:latest/json", "/images/docker.io/library/busybox:latest/json", "1.51", 200},
		{"/v1.52/info", "", "", 400},
		{"/v1.24/info", "/info", "1.24", 200},
		{"/v1.23/info", "", "", 400},
		{"/v1..2/info", "", "", 400},
	}
	for _, c := range cases {
		gotPath, gotVersion = "", ""
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.code || gotPath != c.wantPath || gotVersion != c.wantVersion {
			t.Errorf("%s: code %d path %q version %q; want %d %q %q (%s)", c.path, rec.Code, gotPath, gotVersion, c.code, c.wantPath, c.wantVersion, rec.Body)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		err  error
		code int
	}{
		{errdefs.NotFound(errors.New("No such container: x")), 404},
		{errdefs.AlreadyExists(errors.New("name in use")), 409},
		{errdefs.Conflict(errors.New("container is running")), 409},
		{errdefs.InvalidArgument(errors.New("bad")), 400},
		{errdefs.NotModified(errors.New("already started")), 304},
		{errdefs.Unauthorized(errors.New("no")), 401},
		{errdefs.Forbidden(errors.New("no")), 403},
		{errdefs.NotImplemented(errors.New("no")), 501},
		{errors.New("boom"), 500},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		writeGRPCError(rec, errdefs.ToGRPC(c.err))
		if rec.Code != c.code {
			t.Errorf("%v: status %d, want %d", c.err, rec.Code, c.code)
		}
		if c.code == 304 {
			if rec.Body.Len() != 0 {
				t.Errorf("304 has a body: %q", rec.Body)
			}
			continue
		}
		var body struct{ Message string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Message != c.err.Error() {
			t.Errorf("%v: body %q", c.err, rec.Body)
		}
		if st := status.Convert(errdefs.ToGRPC(c.err)); st.Message() != c.err.Error() {
			t.Errorf("gRPC message %q, want %q", st.Message(), c.err.Error())
		}
	}
}

func TestInfoConverterNumbers(t *testing.T) {
	v, err := infoToDocker(context.Background(), &enginev1.SystemInfoResponse{Ncpu: 2, MemTotal: 1 << 34, Containers: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["NCPU"] != float64(2) || m["MemTotal"] != float64(1<<34) || m["Containers"] != float64(3) {
		t.Errorf("numbers not numbers: %s", b)
	}
	if _, ok := m["KernelMemoryTCP"]; !ok {
		t.Error("v1.51 field KernelMemoryTCP missing")
	}
}

// Numbers the Engine request holds in 32 bits are refused when they do
// not fit, not wrapped (a retry count of 2^32+1 would become 1).
func TestCreateRequestOutOfRange(t *testing.T) {
	for _, body := range []string{
		`{"Image":"busybox","StopTimeout":4294967296}`,
		`{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":4294967297}}}`,
	} {
		if req, err := CreateRequest([]byte(body)); err == nil {
			t.Errorf("CreateRequest(%s) = %v, want an error", body, req)
		}
	}
	if _, err := CreateRequest([]byte(`{"Image":"busybox","StopTimeout":-1,"HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}}`)); err != nil {
		t.Errorf("valid body: %v", err)
	}
}

// ps Status reads as dockerd's (go-units' HumanDuration).
func TestHumanStatus(t *testing.T) {
	ago := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(-d)) }
	for _, c := range []struct {
		st   *enginev1.ContainerState
		want string
	}{
		{&enginev1.ContainerState{Status: "exited", FinishedAt: ago(20 * 24 * time.Hour)}, "Exited (0) 2 weeks ago"},
		{&enginev1.ContainerState{Status: "running", StartedAt: ago(100 * time.Minute)}, "Up 2 hours"},
		{&enginev1.ContainerState{Status: "running", StartedAt: ago(400 * 24 * time.Hour)}, "Up 13 months"},
	} {
		if got := humanStatus(c.st); got != c.want {
			t.Errorf("%v: %q, want %q", c.st, got, c.want)
		}
	}
}
