package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// boolValue is dockerd's httputils.BoolValue.
func boolValue(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return v != "" && v != "0" && v != "no" && v != "false" && v != "none"
}

// buildKnown are the POST /build query parameters the classic builder
// honours; buildRefused are dockerd's that it does not, refused when set
// to anything but their default.
var buildKnown = map[string]bool{
	"t": true, "dockerfile": true, "q": true, "nocache": true, "rm": true, "forcerm": true, "pull": true,
	"target": true, "buildargs": true, "labels": true, "cachefrom": true, "networkmode": true, "extrahosts": true,
	"platform": true, "shmsize": true, "memory": true, "memswap": true, "cpushares": true, "cpuperiod": true,
	"cpuquota": true, "cpusetcpus": true, "cpusetmems": true, "ulimits": true, "version": true,
}

func isDefaultQuery(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "null", "{}", "[]", "default":
		return true
	}
	return false
}

// buildOptions turns POST /build's query and headers into the Engine's
// options; an error is a bad request naming the problem.
func buildOptions(r *http.Request) (*enginev1.BuildOptions, error) {
	q := r.URL.Query()
	for k, vs := range q {
		if buildKnown[k] {
			continue
		}
		for _, v := range vs {
			if !isDefaultQuery(v) {
				return nil, fmt.Errorf("build option %q is not supported by this builder", k)
			}
		}
	}
	if v := q.Get("version"); v != "" && v != "1" {
		return nil, fmt.Errorf("builder version %q is not supported: only the classic builder (version 1) is available; BuildKit is not", v)
	}
	if isol := q.Get("isolation"); isol != "" && isol != "default" {
		return nil, fmt.Errorf("isolation %q is not supported", isol)
	}
	o := &enginev1.BuildOptions{
		Tags: q["t"], Dockerfile: q.Get("dockerfile"), Quiet: boolValue(q.Get("q")), NoCache: boolValue(q.Get("nocache")),
		ForceRemove: boolValue(q.Get("forcerm")), Pull: boolValue(q.Get("pull")), Target: q.Get("target"),
		NetworkMode: q.Get("networkmode"), Platform: q.Get("platform"), CpusetCpus: q.Get("cpusetcpus"), CpusetMems: q.Get("cpusetmems"),
	}
	o.Remove = boolValue(q.Get("rm")) || q.Get("rm") == "" || o.ForceRemove
	for _, h := range q["extrahosts"] {
		for _, e := range strings.Split(h, ",") {
			if e = strings.TrimSpace(e); e != "" {
				o.ExtraHosts = append(o.ExtraHosts, e)
			}
		}
	}
	ints := map[string]*int64{"shmsize": &o.ShmSize, "memory": &o.Memory, "memswap": &o.MemorySwap, "cpushares": &o.CpuShares,
		"cpuperiod": &o.CpuPeriod, "cpuquota": &o.CpuQuota}
	for k, dst := range ints {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("invalid value for %s: %q", k, v)
			}
			*dst = n
		}
	}
	if v := q.Get("buildargs"); v != "" {
		var args map[string]*string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			return nil, fmt.Errorf("invalid buildargs specified: %w", err)
		}
		o.BuildArgs = map[string]*enginev1.BuildArgValue{}
		for k, val := range args {
			o.BuildArgs[k] = &enginev1.BuildArgValue{Value: val}
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &o.Labels); err != nil {
			return nil, fmt.Errorf("invalid labels specified: %w", err)
		}
	}
	if v := q.Get("cachefrom"); v != "" {
		if err := json.Unmarshal([]byte(v), &o.CacheFrom); err != nil {
			return nil, fmt.Errorf("invalid cachefrom specified: %w", err)
		}
	}
	if v := q.Get("ulimits"); v != "" && v != "null" {
		var ul []struct {
			Name       string
			Soft, Hard int64
		}
		if err := json.Unmarshal([]byte(v), &ul); err != nil {
			return nil, fmt.Errorf("invalid ulimits specified: %w", err)
		}
		for _, u := range ul {
			o.Ulimits = append(o.Ulimits, &enginev1.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
		}
	}
	if h := r.Header.Get("X-Registry-Config"); h != "" {
		var raw []byte
		var err error
		for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
			if raw, err = enc.DecodeString(h); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("invalid X-Registry-Config header: %w", err)
		}
		var cfgs map[string]registry.AuthConfig
		if err := json.Unmarshal(raw, &cfgs); err != nil {
			return nil, fmt.Errorf("invalid X-Registry-Config header: %w", err)
		}
		o.Auth = map[string]*enginev1.RegistryAuth{}
		for k, a := range cfgs {
			o.Auth[k] = &enginev1.RegistryAuth{Username: a.Username, Password: a.Password, ServerAddress: a.ServerAddress,
				IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		}
	}
	return o, nil
}

// buildLine is one line of dockerd's build output.
type buildLine struct {
	Stream      string               `json:"stream,omitempty"`
	Aux         *build.Result        `json:"aux,omitempty"`
	ErrorDetail *jsonstream.Error    `json:"errorDetail,omitempty"`
	Error       string               `json:"error,omitempty"`
	Progress    *jsonstream.Progress `json:"progressDetail,omitempty"`
}

// build is POST /build: the body is the context; the answer dockerd's
// stream of JSON lines ("\r\n"-separated), errors in-band once it began.
func (h *handlers) build(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	opts, err := buildOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	stream, err := h.engine.Build(r.Context())
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	if err := stream.Send(&enginev1.BuildRequest{Options: opts}); err != nil {
		writeGRPCError(w, err)
		return
	}
	sendErr := sendBody(r.Body, func(b []byte) error { return stream.Send(&enginev1.BuildRequest{Data: b}) })
	if sendErr == nil {
		sendErr = stream.CloseSend()
	}
	first, err := stream.Recv()
	if err != nil && !errors.Is(err, io.EOF) {
		writeGRPCError(w, err)
		return
	}
	if errors.Is(err, io.EOF) && sendErr != nil {
		writeError(w, http.StatusBadRequest, "read build context: "+sendErr.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	write := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := w.Write(append(b, '\r', '\n')); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	msg := first
	for err == nil {
		var line any
		switch {
		case msg.GetProgress() != nil:
			line = progressLine(msg.GetProgress())
		case msg.GetAuxId() != "":
			line = buildLine{Aux: &build.Result{ID: msg.GetAuxId()}}
		case msg.GetError() != "":
			line = buildLine{ErrorDetail: &jsonstream.Error{Code: int(msg.GetErrorCode()), Message: msg.GetError()}, Error: msg.GetError()}
		default:
			line = buildLine{Stream: msg.GetStream()}
		}
		if !write(line) {
			return // the client is gone; its context ends the build
		}
		msg, err = stream.Recv()
	}
	if !errors.Is(err, io.EOF) {
		text := grpcMessage(err)
		write(buildLine{ErrorDetail: &jsonstream.Error{Message: text}, Error: text})
	}
}

// buildPrune is POST /build/prune.
func (h *handlers) buildPrune(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	q := r.URL.Query()
	req := &enginev1.BuildPruneRequest{All: boolValue(q.Get("all")), Filters: q.Get("filters")}
	for _, k := range []string{"keep-storage", "reserved-space", "max-used-space", "min-free-space"} {
		if v := q.Get(k); v != "" && v != "0" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("build prune: %s is not supported", k))
			return
		}
	}
	resp, err := h.engine.BuildPrune(r.Context(), req)
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(build.CachePruneReport{CachesDeleted: nonNil(resp.GetCachesDeleted()), SpaceReclaimed: uint64(resp.GetSpaceReclaimed())})
}

// commit is POST /commit: the body, if any, is a container Config that
// overrides the container's.
func (h *handlers) commit(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	req := &enginev1.ContainerCommitRequest{Container: q.Get("container"), Repo: q.Get("repo"), Tag: q.Get("tag"),
		Comment: q.Get("comment"), Author: q.Get("author"), Pause: boolValue(q.Get("pause")) || q.Get("pause") == "", Changes: q["changes"]}
	if req.Container == "" {
		writeError(w, http.StatusBadRequest, "No container name or ID supplied")
		return
	}
	if b := strings.TrimSpace(string(body)); b != "" && b != "null" && b != "{}" {
		cr, err := CreateRequest(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		req.Config = cr.GetConfig()
	}
	resp, err := h.engine.ContainerCommit(r.Context(), req)
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]string{"Id": resp.GetId()})
}
