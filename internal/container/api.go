package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/filters"
	"github.com/engined/engined/internal/logs"
	"github.com/engined/engined/internal/oci"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// The Engine service's container methods.

func (s *Service) toProto(r *Record) *enginev1.Container {
	cfg, _ := r.config()
	hc, _ := r.hostConfig()
	// The system paths applied, which dockerd records at create.
	hc.MaskedPaths, hc.ReadonlyPaths = oci.ShownSystemPaths(hc.GetPrivileged(), slices.Contains(hc.GetSecurityOpt(), oci.SystemPathsUnconfined))
	c := &enginev1.Container{
		Id: r.ID, Name: r.Name, Created: timestamppb.New(r.Created), Path: r.Path, Args: r.Args,
		ImageId: r.ImageID, Image: r.Image, Config: cfg, HostConfig: hc, RestartCount: int32(r.RestartCount),
		ResolvConfPath: s.containerDir(r.ID) + "/resolv.conf", HostnamePath: s.containerDir(r.ID) + "/hostname",
		HostsPath: s.containerDir(r.ID) + "/hosts", LogPath: s.logPath(r.ID), Driver: "overlay2",
		GraphDriverData: map[string]string{
			"MergedDir": s.containerDir(r.ID) + "/rootfs", "UpperDir": s.containerDir(r.ID) + "/fs/upper", "WorkDir": s.containerDir(r.ID) + "/fs/work",
		},
		Command: strings.Join(append([]string{r.Path}, r.Args...), " "),
	}
	st := &enginev1.ContainerState{Status: r.Status, Pid: int64(r.Pid), ExitCode: int32(r.ExitCode), Error: r.Error, OomKilled: r.OOMKilled,
		Running: r.Status == "running" || r.Status == "paused" || r.Status == "restarting", Paused: r.Status == "paused",
		Restarting: r.Status == "restarting", Dead: r.Status == "dead"}
	if !r.StartedAt.IsZero() {
		st.StartedAt = timestamppb.New(r.StartedAt)
	}
	if !r.FinishedAt.IsZero() {
		st.FinishedAt = timestamppb.New(r.FinishedAt)
	}
	if h := r.Health; h != nil {
		st.Health = &enginev1.Health{Status: h.Status, FailingStreak: int32(h.FailingStreak)}
		for _, l := range h.Log {
			st.Health.Log = append(st.Health.Log, &enginev1.HealthcheckResult{Start: timestamppb.New(l.Start), End: timestamppb.New(l.End),
				ExitCode: int32(l.ExitCode), Output: l.Output})
		}
	}
	c.State = st
	c.NetworkSettings = networkSettings(r, hc)
	for _, mp := range s.recMounts(r) {
		c.Mounts = append(c.Mounts, mountPointProto(mp))
	}
	if r.SandboxKey != "" && bridged(hc) {
		// Ports while it runs; a stopped container has none, as dockerd's.
		c.NetworkSettings.Ports = portMap(cfg, r.Networks)
	}
	return c
}

// summary is what a list shows of a container (the fields of dockerd's
// container summary), made once per version of its record and shared:
// callers must not change it.
func (s *Service) summary(e *indexed) *enginev1.Container {
	if c := e.summary.Load(); c != nil {
		return c
	}
	full := s.inspectView(e)
	st := full.GetState()
	c := &enginev1.Container{Id: full.Id, Name: full.Name, Image: full.Image, ImageId: full.ImageId, Command: full.Command,
		Created: full.Created, Mounts: full.Mounts,
		Config:     &enginev1.ContainerConfig{Labels: full.GetConfig().GetLabels()},
		HostConfig: &enginev1.HostConfig{NetworkMode: full.GetHostConfig().GetNetworkMode()},
		State: &enginev1.ContainerState{Status: st.Status, Running: st.Running, Paused: st.Paused, Restarting: st.Restarting,
			Dead: st.Dead, ExitCode: st.ExitCode, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt},
		NetworkSettings: &enginev1.NetworkSettings{Networks: full.GetNetworkSettings().GetNetworks(), Ports: full.GetNetworkSettings().GetPorts()},
	}
	if h := st.GetHealth(); h != nil {
		c.State.Health = &enginev1.Health{Status: h.Status}
	}
	e.summary.CompareAndSwap(nil, c)
	return e.summary.Load()
}

func (s *Service) ContainerInspect(ctx context.Context, req *enginev1.ContainerInspectRequest) (*enginev1.Container, error) {
	e, err := s.recs.lookup(req.GetId())
	if err != nil {
		return nil, err
	}
	c := s.inspectView(e)
	if req.GetSize() {
		c = proto.CloneOf(c)
		s.fillSize(ctx, e.rec, c)
	}
	return c, nil
}

// inspectView is a container's inspect, made once per version of its
// record and shared: callers must not change it.
func (s *Service) inspectView(e *indexed) *enginev1.Container {
	if c := e.inspect.Load(); c != nil {
		return c
	}
	e.inspect.CompareAndSwap(nil, s.toProto(e.rec))
	return e.inspect.Load()
}

// fillSize sets what `docker ps -s` and `inspect -s` show: the bytes the
// container wrote (its overlay upper directory) and those plus its
// image's.
func (s *Service) fillSize(ctx context.Context, r *Record, c *enginev1.Container) {
	rw := dirSize(filepath.Join(s.containerDir(r.ID), "fs", "upper"))
	c.SizeRw, c.SizeRootFs = rw, rw
	if img, err := s.cfg.Images.Resolve(ctx, r.ImageID); err == nil {
		c.SizeRootFs += img.Size()
	}
}

// dirSize adds up the sizes of the regular files under dir, each hard
// linked file once.
func dirSize(dir string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		n += info.Size()
		return nil
	})
	return n
}

func (s *Service) ContainerList(ctx context.Context, req *enginev1.ContainerListRequest) (*enginev1.ContainerListResponse, error) {
	args, err := filters.Parse(req.GetFilters(), "status", "name", "id", "label", "ancestor", "exited", "before", "since", "publish", "expose", "volume", "health")
	if err != nil {
		return nil, err
	}
	for _, h := range args.Get("health") {
		switch h {
		case "none", healthStarting, healthHealthy, healthUnhealthy:
		default:
			return nil, errdefs.InvalidArgument(fmt.Errorf("Unrecognised filter value for health: %s", h))
		}
	}
	publish, err := portFilter("publish", args.Get("publish"))
	if err != nil {
		return nil, err
	}
	expose, err := portFilter("expose", args.Get("expose"))
	if err != nil {
		return nil, err
	}
	var ancestors map[string]bool
	if args.Has("ancestor") {
		ancestors = map[string]bool{}
		for _, a := range args.Get("ancestor") {
			if img, err := s.cfg.Images.Resolve(ctx, a); err == nil {
				ancestors[img.ID.String()] = true
			}
		}
	}
	// before and since name a container (by ID, name or prefix): the
	// list, newest first, starts after the one and stops at the other.
	var before, since string
	for _, f := range []struct {
		key string
		id  *string
	}{{"before", &before}, {"since", &since}} {
		for _, v := range args.Get(f.key) {
			other, err := s.get(v)
			if err != nil {
				return nil, err
			}
			*f.id = other.ID
		}
	}
	var matchName func(string) bool
	if args.Has("name") {
		matchName = nameMatcher(args.Get("name"))
	}
	all := req.GetAll() || args.Has("status") || args.Has("exited") || req.GetLimit() > 0
	resp := &enginev1.ContainerListResponse{}
	var sized []*Record // -s: sizes are read from disk after the index is let go
	s.recs.each(func(e *indexed) bool {
		r := e.rec
		if before != "" {
			if r.ID == before {
				before = ""
			}
			return true
		}
		if since != "" && r.ID == since {
			return false
		}
		running := r.Status == "running" || r.Status == "paused"
		if !all && !running {
			return true
		}
		if args.Has("status") && !args["status"][r.Status] {
			return true
		}
		if args.Has("exited") && (r.Status != "exited" || !args["exited"][strconv.Itoa(r.ExitCode)]) {
			return true
		}
		if matchName != nil && !matchName(strings.TrimPrefix(r.Name, "/")) {
			return true
		}
		if args.Has("id") && !prefixAny(args.Get("id"), r.ID) {
			return true
		}
		if args.Has("health") && !args["health"][healthOf(r)] {
			return true
		}
		if ancestors != nil && !ancestors[r.ImageID] {
			return true
		}
		if args.Has("volume") && !s.usesVolume(r, args["volume"]) {
			return true
		}
		c := s.summary(e)
		if args.Has("label") && !args.MatchLabels("label", c.GetConfig().GetLabels()) {
			return true
		}
		if (publish != nil || expose != nil) && !matchPorts(c.GetNetworkSettings().GetPorts(), publish, expose) {
			return true
		}
		if req.GetSize() {
			c = proto.CloneOf(c)
			sized = append(sized, r)
		}
		resp.Containers = append(resp.Containers, c)
		return req.GetLimit() <= 0 || len(resp.Containers) < int(req.GetLimit())
	})
	for i, r := range sized {
		s.fillSize(ctx, r, resp.Containers[i])
	}
	return resp, nil
}

// nameMatcher is dockerd's name filter: an exact match or an unanchored
// regular expression, against the name with and without its "/". The
// expressions are compiled once per list, not once per container.
func nameMatcher(patterns []string) func(name string) bool {
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		res[i], _ = regexp.Compile(p) // an invalid one matches exactly only
	}
	return func(name string) bool {
		for i, p := range patterns {
			for _, n := range []string{name, "/" + name} {
				if p == n || (res[i] != nil && res[i].MatchString(n)) {
					return true
				}
			}
		}
		return false
	}
}

func prefixAny(prefixes []string, s string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (s *Service) ContainerCreate(ctx context.Context, req *enginev1.ContainerCreateRequest) (*enginev1.ContainerCreateResponse, error) {
	return s.Create(ctx, req)
}

func (s *Service) ContainerStart(ctx context.Context, req *enginev1.ContainerStartRequest) (*enginev1.ContainerStartResponse, error) {
	return &enginev1.ContainerStartResponse{}, s.Start(ctx, req.GetId())
}

func (s *Service) ContainerStop(ctx context.Context, req *enginev1.ContainerStopRequest) (*enginev1.ContainerStopResponse, error) {
	err := s.Stop(ctx, req.GetId(), req.T, req.GetSignal())
	s.eventIf(err, "stop", req.GetId(), nil)
	return &enginev1.ContainerStopResponse{}, err
}

func (s *Service) ContainerRestart(ctx context.Context, req *enginev1.ContainerRestartRequest) (*enginev1.ContainerRestartResponse, error) {
	err := s.Restart(ctx, req.GetId(), req.T, req.GetSignal())
	s.eventIf(err, "restart", req.GetId(), nil)
	return &enginev1.ContainerRestartResponse{}, err
}

func (s *Service) ContainerKill(ctx context.Context, req *enginev1.ContainerKillRequest) (*enginev1.ContainerKillResponse, error) {
	// Kill logs the kill event once the signal is sent, before the die.
	err := s.Kill(ctx, req.GetId(), req.GetSignal())
	return &enginev1.ContainerKillResponse{}, err
}

func (s *Service) ContainerPause(ctx context.Context, req *enginev1.ContainerPauseRequest) (*enginev1.ContainerPauseResponse, error) {
	err := s.Pause(ctx, req.GetId())
	s.eventIf(err, "pause", req.GetId(), nil)
	return &enginev1.ContainerPauseResponse{}, err
}

func (s *Service) ContainerUnpause(ctx context.Context, req *enginev1.ContainerUnpauseRequest) (*enginev1.ContainerUnpauseResponse, error) {
	err := s.Unpause(ctx, req.GetId())
	s.eventIf(err, "unpause", req.GetId(), nil)
	return &enginev1.ContainerUnpauseResponse{}, err
}

func (s *Service) ContainerRename(ctx context.Context, req *enginev1.ContainerRenameRequest) (*enginev1.ContainerRenameResponse, error) {
	name := req.GetName()
	if !validName.MatchString(name) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	}
	name = "/" + strings.TrimPrefix(name, "/")
	if r, err := s.get(req.GetId()); err == nil && r.Name == name {
		return nil, errdefs.InvalidArgument(errors.New("Renaming a container with the same name as its current name"))
	}
	id, oldName, err := s.recs.rename(req.GetId(), name)
	if err == nil {
		s.renameDNS(ctx, id, oldName, name)
	}
	s.eventIf(err, "rename", id, map[string]string{"oldName": oldName})
	return &enginev1.ContainerRenameResponse{}, err
}

func (s *Service) ContainerRemove(ctx context.Context, req *enginev1.ContainerRemoveRequest) (*enginev1.ContainerRemoveResponse, error) {
	return &enginev1.ContainerRemoveResponse{}, s.RemoveWithVolumes(ctx, req.GetId(), req.GetForce(), req.GetV())
}

func (s *Service) ContainerPrune(ctx context.Context, req *enginev1.ContainerPruneRequest) (*enginev1.ContainerPruneResponse, error) {
	args, err := filters.Parse(req.GetFilters(), "label", "until")
	if err != nil {
		return nil, err
	}
	var until time.Time
	if v := args.Get("until"); len(v) > 0 {
		if until, err = filters.ParseTime(v[0], time.Now()); err != nil {
			return nil, err
		}
	}
	list, err := s.ContainerList(ctx, &enginev1.ContainerListRequest{All: true})
	if err != nil {
		return nil, err
	}
	resp := &enginev1.ContainerPruneResponse{}
	for _, c := range list.GetContainers() {
		if c.GetState().GetRunning() || (!until.IsZero() && !c.GetCreated().AsTime().Before(until)) ||
			(args.Has("label") && !args.MatchLabels("label", c.GetConfig().GetLabels())) {
			continue
		}
		if err := s.Remove(ctx, c.GetId(), false); err != nil {
			return nil, err
		}
		resp.Deleted = append(resp.Deleted, c.GetId())
	}
	return resp, nil
}

func (s *Service) ContainerTop(ctx context.Context, req *enginev1.ContainerTopRequest) (*enginev1.ContainerTopResponse, error) {
	r, err := s.get(req.GetId())
	if err != nil {
		return nil, err
	}
	client := s.shim(r.ID)
	if client == nil || r.Status != "running" && r.Status != "paused" {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is not running", r.ID))
	}
	pids, err := client.Pids(ctx, &shimv1.PidsRequest{})
	if err != nil {
		return nil, err
	}
	psArgs := req.GetPsArgs()
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.CommandContext(ctx, "ps", append(strings.Fields(psArgs), "-ww")...).Output()
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("error running ps %s: %w", psArgs, err))
	}
	return parsePS(string(out), pids.GetPids())
}

// parsePS keeps the rows of ps output whose PID column is one of pids.
func parsePS(out string, pids []uint32) (*enginev1.ContainerTopResponse, error) {
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(int(p))] = true
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() {
		return nil, errors.New("ps printed nothing")
	}
	titles := strings.Fields(sc.Text())
	pidCol := -1
	for i, t := range titles {
		if t == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return nil, errdefs.InvalidArgument(errors.New("couldn't find PID field in ps output"))
	}
	resp := &enginev1.ContainerTopResponse{Titles: titles}
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) <= pidCol || !want[fields[pidCol]] {
			continue
		}
		// The last column (the command) may contain spaces.
		if len(fields) > len(titles) {
			fields = append(fields[:len(titles)-1], strings.Join(fields[len(titles)-1:], " "))
		}
		resp.Processes = append(resp.Processes, &enginev1.TopRow{Fields: fields})
	}
	return resp, nil
}

func (s *Service) ContainerResize(ctx context.Context, req *enginev1.ContainerResizeRequest) (*enginev1.ContainerResizeResponse, error) {
	r, err := s.get(req.GetId())
	if err != nil {
		return nil, err
	}
	client := s.shim(r.ID)
	if client == nil {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is not running", r.ID))
	}
	// As for an exec: the shim refuses a container without a terminal,
	// which is the client's mistake, not the engine's (409, not 500).
	if _, err := client.ResizePty(ctx, &shimv1.ResizePtyRequest{Width: req.GetW(), Height: req.GetH()}); err != nil {
		return nil, errdefs.Conflict(fmt.Errorf("resize container %s: %w", r.ID, err))
	}
	return &enginev1.ContainerResizeResponse{}, nil
}

func (s *Service) ContainerWait(req *enginev1.ContainerWaitRequest, stream enginev1.Engine_ContainerWaitServer) error {
	ctx := stream.Context()
	r, err := s.get(req.GetId())
	if err != nil {
		return err
	}
	cond := req.GetCondition()
	switch cond {
	case "", "not-running", "next-exit", "removed":
	default:
		return errdefs.InvalidArgument(fmt.Errorf("invalid condition: %q", cond))
	}
	changed := s.changes(r.ID)
	startedAt, status := r.StartedAt, r.Status
	// The headers say the wait is in place: a client that waits for them
	// (stream.Header()) before starting the container cannot miss its exit.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for {
		cur, err := s.get(r.ID)
		gone := errdefs.IsNotFound(err)
		if err != nil && !gone {
			return err
		}
		if gone {
			// Removed (AutoRemove): with the exit code it had then.
			code, ok := s.removedExitCode(r.ID)
			if !ok {
				code = r.ExitCode
			}
			return stream.Send(&enginev1.ContainerWaitResponse{StatusCode: int64(code)})
		}
		r = cur
		notRunning := cur.Status != "running" && cur.Status != "paused"
		switch cond {
		case "", "not-running":
			if notRunning {
				return stream.Send(&enginev1.ContainerWaitResponse{StatusCode: int64(cur.ExitCode)})
			}
		case "next-exit":
			if notRunning && (!cur.FinishedAt.IsZero() && cur.FinishedAt.After(startedAt) && (status == "running" || cur.StartedAt.After(startedAt))) {
				return stream.Send(&enginev1.ContainerWaitResponse{StatusCode: int64(cur.ExitCode)})
			}
		}
		select {
		case <-changed:
			changed = s.changes(r.ID)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Service) ContainerLogs(req *enginev1.ContainerLogsRequest, stream enginev1.Engine_ContainerLogsServer) error {
	ctx := stream.Context()
	r, err := s.get(req.GetId())
	if err != nil {
		return err
	}
	if !req.GetStdout() && !req.GetStderr() {
		return errdefs.InvalidArgument(errors.New("you must choose at least one stream"))
	}
	opts := logs.ReadOptions{Stdout: req.GetStdout(), Stderr: req.GetStderr(), Tail: int(req.GetTail()), Follow: req.GetFollow()}
	if req.Since != nil {
		opts.Since = req.GetSince().AsTime()
	}
	if req.Until != nil {
		opts.Until = req.GetUntil().AsTime()
	}
	hc, _ := r.hostConfig()
	if hc.GetLogConfig().GetType() == "none" {
		return errdefs.NotImplemented(errLogsNotSupported)
	}
	maxSize, maxFiles, err := logRotation(hc.GetLogConfig())
	if err != nil {
		return err
	}
	return logs.Read(ctx, logs.Config{Path: s.logPath(r.ID), MaxSize: maxSize, MaxFiles: maxFiles}, opts, s.exitedSignal(r.ID), func(e logs.Entry) error {
		return stream.Send(toLogEntry(e))
	})
}

func toLogEntry(e logs.Entry) *enginev1.LogEntry {
	n := int32(1)
	if e.Stream == "stderr" {
		n = 2
	}
	return &enginev1.LogEntry{Stream: n, Data: e.Line, Time: timestamppb.New(e.Time)}
}

// exitedSignal is closed once the container is not running (or gone).
func (s *Service) exitedSignal(id string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.waitExited(s.ctx, id, s.changes(id), 0)
	}()
	return done
}

// InUse reports a container using the image, for image removal.
func (s *Service) InUse(ctx context.Context, id digest.Digest) (string, bool) {
	var found string
	s.recs.each(func(e *indexed) bool {
		if e.rec.ImageID == id.String() {
			found = e.rec.ID[:12]
		}
		return found == ""
	})
	return found, found != ""
}

// event publishes a container event with dockerd's attributes: the
// container's labels, name and image, and extra.
func (s *Service) event(action string, rec *Record, extra map[string]string) {
	if s.cfg.Events == nil || rec == nil {
		return
	}
	attrs := map[string]string{}
	if cfg, err := rec.config(); err == nil {
		for k, v := range cfg.GetLabels() {
			attrs[k] = v
		}
	}
	attrs["name"], attrs["image"] = strings.TrimPrefix(rec.Name, "/"), rec.Image
	for k, v := range extra {
		attrs[k] = v
	}
	s.cfg.Events.Publish("container", action, rec.ID, attrs)
}

// eventIf publishes an event about ref when err is nil.
func (s *Service) eventIf(err error, action, ref string, extra map[string]string) {
	if err != nil {
		return
	}
	if rec, err := s.get(ref); err == nil {
		s.event(action, rec, extra)
	}
}

// healthOf is a container's health for ps's health filter: none without
// a health check state.
func healthOf(r *Record) string {
	if r.Health == nil || r.Health.Status == "" {
		return "none"
	}
	return r.Health.Status
}
