package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/sys/signal"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/exitfile"
	"github.com/engined/engined/internal/oci"
	"github.com/engined/engined/internal/shimclient"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// defaultStopTimeout is dockerd's.
const defaultStopTimeout = 10 * time.Second

// Start runs a created or exited container.
func (s *Service) Start(ctx context.Context, ref string) error {
	rec, unlock, err := s.lockRecord(ref)
	if err != nil {
		return err
	}
	defer func() { unlock() }()
	switch rec.Status {
	case "running", "paused":
		return errdefs.NotModified(errors.New("container already started"))
	}
	// A start asked for (docker start, docker restart) begins the restart
	// policy's count again, as dockerd's does.
	if rec.RestartCount != 0 {
		if _, err := s.update(rec.ID, func(r *Record) error { r.RestartCount = 0; return nil }); err != nil {
			return err
		}
	}
	if err := s.startLocked(ctx, rec.ID); err != nil {
		// `docker run --rm` waits for the removal after a failed start.
		if hc, herr := rec.hostConfig(); herr == nil && hc.GetAutoRemove() {
			unlock()
			unlock = func() {}
			if rerr := s.Remove(context.WithoutCancel(ctx), rec.ID, true); rerr != nil {
				s.cfg.Logger.Warn("auto-remove container", "id", rec.ID, "err", rerr)
			}
		}
		return err
	}
	return nil
}

// startLocked starts a container whose lock the caller holds, recording a
// failure as Start does.
func (s *Service) startLocked(ctx context.Context, id string) error {
	rec, err := s.get(id)
	if err != nil {
		return err
	}
	if err := s.start(ctx, rec); err != nil {
		// dockerd's codes for a command that cannot run.
		code := 128
		switch msg := err.Error(); {
		case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
			code = 127
		case strings.Contains(msg, "permission denied"):
			code = 126
		}
		s.update(rec.ID, func(r *Record) error {
			r.Error, r.ExitCode = err.Error(), code
			if r.Status != "created" {
				r.Status = "exited"
			}
			return nil
		})
		s.cleanupRuntime(rec.ID)
		return err
	}
	return nil
}

func (s *Service) start(ctx context.Context, rec *Record) error {
	began := time.Now()
	cfg, err := rec.config()
	if err != nil {
		return err
	}
	hc, err := rec.hostConfig()
	if err != nil {
		return err
	}
	spec, err := s.buildSpec(ctx, rec)
	if err != nil {
		return err
	}
	state := s.stateDir(rec.ID)
	os.RemoveAll(state)
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	specPath := filepath.Join(state, "config.json")
	if err := os.WriteFile(specPath, specJSON, 0o600); err != nil {
		return err
	}
	specDone := time.Now()
	client, err := s.cfg.Shims.Get(ctx, state)
	if err != nil {
		return err
	}
	defer s.cfg.Shims.Refill()
	shimDone := time.Now()
	maxSize, maxFiles, err := logRotation(hc.GetLogConfig())
	if err != nil {
		return err
	}
	created, err := client.Create(ctx, &shimv1.CreateRequest{Id: rec.ID, StateDir: state, SpecPath: specPath, LogPath: s.logPath(rec.ID),
		LogMaxSize: maxSize, LogMaxFiles: int32(maxFiles), Stdin: cfg.GetOpenStdin(), Tty: cfg.GetTty()})
	if err != nil {
		client.Delete(ctx, &shimv1.DeleteRequest{})
		client.Close()
		return fmt.Errorf("OCI runtime create failed: %s", strings.TrimPrefix(grpcMessage(err), "start process: "))
	}
	createDone := time.Now()
	// The init waits in its namespaces for Start: its network namespace
	// gets the container's interfaces now, as dockerd does between
	// runtime create and start.
	if err := s.attachNetworks(ctx, rec, cfg, hc, int(created.GetPid())); err != nil {
		client.Delete(ctx, &shimv1.DeleteRequest{})
		client.Close()
		s.detachNetworks(rec.ID)
		return err
	}
	attachDone := time.Now()
	resp, err := client.Start(ctx, &shimv1.StartRequest{})
	if err != nil {
		client.Delete(ctx, &shimv1.DeleteRequest{})
		client.Close()
		return fmt.Errorf("OCI runtime start failed: %s", grpcMessage(err))
	}
	startDone := time.Now()
	if cs := hc.GetConsoleSize(); cfg.GetTty() && len(cs) == 2 && cs[0] > 0 && cs[1] > 0 {
		// The terminal's size from the start (ConsoleSize), as dockerd's.
		if _, err := client.ResizePty(ctx, &shimv1.ResizePtyRequest{Height: cs[0], Width: cs[1]}); err != nil {
			s.cfg.Logger.Warn("initial console size", "id", rec.ID, "err", err)
		}
	}
	s.mu.Lock()
	s.shims[rec.ID] = client
	s.mu.Unlock()
	if _, err := s.update(rec.ID, func(r *Record) error {
		r.Status, r.Pid, r.StartedAt, r.Error, r.ExitCode, r.OOMKilled = "running", int(resp.GetPid()), time.Now().UTC(), "", 0, false
		r.FinishedAt, r.StopRequested = time.Time{}, false
		resetHealth(r)
		return nil
	}); err != nil {
		return err
	}
	s.eventIf(nil, "start", rec.ID, nil)
	s.monitor(rec.ID, client)
	s.startHealth(rec.ID)
	// Where a start's time goes, which the benchmarks follow.
	s.cfg.Logger.Debug("container started", "id", rec.ID[:12], "spec", specDone.Sub(began), "shim", shimDone.Sub(specDone),
		"create", createDone.Sub(shimDone), "network", attachDone.Sub(createDone), "start", startDone.Sub(attachDone),
		"record", time.Since(startDone), "took", time.Since(began))
	return nil
}

// buildSpec mounts the container's root filesystem (if it is not) and
// builds its OCI spec from the record.
func (s *Service) buildSpec(ctx context.Context, rec *Record) (*specs.Spec, error) {
	img, err := s.cfg.Images.Resolve(ctx, rec.ImageID)
	if err != nil {
		return nil, fmt.Errorf("image of container: %w", err)
	}
	imgCfg, err := s.cfg.Images.RunConfig(img)
	if err != nil {
		return nil, err
	}
	rootfs, err := s.mountRootfs(rec.ID, img.ChainIDs())
	if err != nil {
		return nil, err
	}
	opts, err := s.specOptions(rec, imgCfg, rootfs)
	if err != nil {
		return nil, err
	}
	mounts, undo, err := s.ociMounts(rec)
	if err != nil {
		return nil, err
	}
	opts.Mounts = append(opts.Mounts, mounts...)
	spec, err := oci.Spec(opts)
	if err != nil {
		undo()
		return nil, errdefs.InvalidArgument(err)
	}
	return spec, nil
}

// specOptions turns a record and its image's run config into the OCI
// spec's options, without touching the host.
func (s *Service) specOptions(rec *Record, imgCfg v1.Config, rootfs string) (oci.Options, error) {
	cfg, err := rec.config()
	if err != nil {
		return oci.Options{}, err
	}
	hc, err := rec.hostConfig()
	if err != nil {
		return oci.Options{}, err
	}
	var nofile unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	opts := oci.Options{
		ID: rec.ID, Rootfs: rootfs,
		ImageEntrypoint: imgCfg.Entrypoint, ImageCmd: imgCfg.Cmd, ImageEnv: imgCfg.Env,
		ImageWorkingDir: imgCfg.WorkingDir, ImageUser: imgCfg.User,
		Env: cfg.GetEnv(), WorkingDir: cfg.GetWorkingDir(), User: cfg.GetUser(),
		Hostname: cfg.GetHostname(), Domainname: cfg.GetDomainname(),
		Tty: cfg.GetTty(), OpenStdin: cfg.GetOpenStdin(),
		Privileged: hc.GetPrivileged(), CapAdd: hc.GetCapAdd(), CapDrop: hc.GetCapDrop(), ReadonlyRootfs: hc.GetReadonlyRootfs(),
		Memory: hc.GetMemory(), MemoryReservation: hc.GetMemoryReservation(), MemorySwap: hc.GetMemorySwap(),
		NanoCPUs: hc.GetNanoCpus(), CPUShares: hc.GetCpuShares(), CPUQuota: hc.GetCpuQuota(), CPUPeriod: hc.GetCpuPeriod(),
		CpusetCpus: hc.GetCpusetCpus(), CpusetMems: hc.GetCpusetMems(), PidsLimit: hc.GetPidsLimit(), ShmSize: hc.GetShmSize(),
		Sysctls: hc.GetSysctls(), Labels: cfg.GetLabels(), SecurityOpt: hc.GetSecurityOpt(),
		HostsPath:       filepath.Join(s.containerDir(rec.ID), "hosts"),
		ResolvConfPath:  filepath.Join(s.containerDir(rec.ID), "resolv.conf"),
		HostnamePath:    filepath.Join(s.containerDir(rec.ID), "hostname"),
		CgroupsPath:     "/engined/" + rec.ID,
		MaxRlimitNOFILE: nofile.Max,
		CgroupnsMode:    hc.GetCgroupnsMode(), OOMScoreAdj: int(hc.GetOomScoreAdj()), GroupAdd: hc.GetGroupAdd(),
		DeviceCgroupRules: hc.GetDeviceCgroupRules(), Annotations: hc.GetAnnotations(),
		UTSHost: hc.GetUtsMode() == "host", IpcNone: hc.GetIpcMode() == "none",
	}
	if ref, ok := strings.CutPrefix(hc.GetNetworkMode(), "container:"); ok {
		// The other container's network is its hostname, hosts and DNS
		// too, as dockerd gives them.
		other, err := s.get(ref)
		if err != nil {
			return oci.Options{}, err
		}
		if other.ID == rec.ID {
			return oci.Options{}, errdefs.InvalidArgument(errors.New("cannot join own network namespace"))
		}
		ocfg, err := other.config()
		if err != nil {
			return oci.Options{}, err
		}
		dir := s.containerDir(other.ID)
		opts.HostsPath, opts.ResolvConfPath, opts.HostnamePath = filepath.Join(dir, "hosts"), filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hostname")
		opts.Hostname, opts.Domainname = ocfg.GetHostname(), ocfg.GetDomainname()
	}
	if opts.NetNSPath, err = s.joinNamespace(hc.GetNetworkMode(), "net", "network"); err != nil {
		return oci.Options{}, err
	}
	links, err := s.resolveLinks(rec, hc)
	if err != nil {
		return oci.Options{}, err
	}
	if env := linkEnv(rec, links); len(env) > 0 {
		opts.Env = append(env, opts.Env...)
	}
	if opts.PidNSPath, err = s.joinNamespace(hc.GetPidMode(), "pid", "PID"); err != nil {
		return oci.Options{}, err
	}
	if opts.IpcNSPath, err = s.joinNamespace(hc.GetIpcMode(), "ipc", "IPC"); err != nil {
		return oci.Options{}, err
	}
	if hc.GetIpcMode() == "host" {
		opts.Mounts = append(opts.Mounts, oci.Mount{Source: "/dev/shm", Destination: "/dev/shm", Type: "bind", Options: []string{"rbind", "rprivate"}})
	}
	for _, d := range hc.GetDevices() {
		dev, err := deviceFrom(d)
		if err != nil {
			return oci.Options{}, err
		}
		opts.Devices = append(opts.Devices, dev)
	}
	// Argv was fixed at create time, from the image config then.
	opts.Entrypoint, opts.Cmd = []string{rec.Path}, rec.Args
	if hc.GetInit() {
		// As dockerd: the init is mounted read-only and runs the command
		// as its child, forwarding signals to it and reaping zombies.
		if s.cfg.InitPath == "" {
			return oci.Options{}, errdefs.InvalidArgument(errors.New("--init: engined has no init binary"))
		}
		opts.Mounts = append(opts.Mounts, oci.Mount{Source: s.cfg.InitPath, Destination: initInContainer, Type: "bind", Options: []string{"bind", "ro", "rprivate"}})
		opts.Entrypoint, opts.Cmd = []string{initInContainer, "--", rec.Path}, rec.Args
	}
	for _, u := range hc.GetUlimits() {
		opts.Ulimits = append(opts.Ulimits, oci.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	for dst, o := range hc.GetTmpfs() {
		m, err := tmpfsMount(dst, o)
		if err != nil {
			return oci.Options{}, err
		}
		opts.Mounts = append(opts.Mounts, m)
	}
	return opts, nil
}

// initInContainer is where --init's binary is mounted, as dockerd does.
const initInContainer = "/sbin/docker-init"

// noneLogSize bounds the file that serves attach for a container whose
// logging driver is none: docker logs refuses it, as dockerd does, and no
// more than this is kept.
const noneLogSize = 1 << 20

// logRotation reads json-file's max-size and max-file options, as dockerd
// does (sizes through go-units: "10m", "1.5MB", "10mb").
func logRotation(lc *enginev1.LogConfig) (int64, int, error) {
	if lc.GetType() == "none" {
		return noneLogSize, 1, nil
	}
	var size int64 = -1
	files := 1
	for k := range lc.GetConfig() {
		switch k {
		case "max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag":
		default:
			return 0, 0, invalid("unknown log opt '%s' for json-file log driver", k)
		}
	}
	if v, ok := lc.GetConfig()["max-size"]; ok {
		n, err := units.RAMInBytes(v)
		if err != nil || n < 0 {
			return 0, 0, invalid("invalid value for max-size: %s", v)
		}
		size = n
	}
	if v, ok := lc.GetConfig()["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, invalid("invalid value for max-file: %s", v)
		}
		if n < 1 {
			return 0, 0, invalid("max-file cannot be less than 1")
		}
		if n > 1 && size == -1 {
			return 0, 0, invalid("max-file cannot be set when max-size is not set")
		}
		files = n
	}
	if v, ok := lc.GetConfig()["compress"]; ok {
		// The files are not compressed: only "false" is honest.
		if b, err := strconv.ParseBool(v); err != nil || b {
			return 0, 0, invalid("log opt compress=%s (HostConfig.LogConfig.Config) is not supported: rotated logs are not compressed", v)
		}
	}
	for _, k := range []string{"labels", "labels-regex", "env", "env-regex", "tag"} {
		if _, ok := lc.GetConfig()[k]; ok {
			return 0, 0, invalid("log opt %s (HostConfig.LogConfig.Config) is not supported yet", k)
		}
	}
	return max(size, 0), files, nil
}

// joinNamespace is the /proc path of a namespace to join for a mode
// "host" or "container:<id|name>" (that container must be running), ""
// for a namespace of the container's own.
func (s *Service) joinNamespace(mode, ns, what string) (string, error) {
	if mode == "host" {
		return "host", nil
	}
	ref, ok := strings.CutPrefix(mode, "container:")
	if !ok {
		return "", nil
	}
	other, err := s.get(ref)
	if err != nil {
		return "", err
	}
	if other.Status != "running" || other.Pid == 0 {
		return "", errdefs.Conflict(fmt.Errorf("cannot join %s of a non running container: %s", what, ref))
	}
	if ns == "ipc" {
		if hc, _ := other.hostConfig(); hc.GetIpcMode() != "shareable" && hc.GetIpcMode() != "host" {
			return "", errdefs.InvalidArgument(errors.New("non-shareable IPC (hint: use IpcMode:shareable for the donor container)"))
		}
	}
	return fmt.Sprintf("/proc/%d/ns/%s", other.Pid, ns), nil
}

// mountRootfs mounts the image layers plus the container's own upper
// directory at <container dir>/rootfs.
func (s *Service) mountRootfs(id string, lowers []digest.Digest) (string, error) {
	dir := s.containerDir(id)
	rootfs := filepath.Join(dir, "rootfs")
	upper, work := filepath.Join(dir, "fs", "upper"), filepath.Join(dir, "fs", "work")
	for _, d := range []string{rootfs, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if isMounted(rootfs) {
		return rootfs, nil
	}
	if err := s.cfg.Images.Snapshots().Mount(rootfs, lowers, upper, work); err != nil {
		return "", err
	}
	return rootfs, nil
}

func (s *Service) unmountRootfs(id string) {
	rootfs := filepath.Join(s.containerDir(id), "rootfs")
	for isMounted(rootfs) {
		if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) && !isMounted(rootfs) {
				return // unmounted meanwhile
			}
			s.cfg.Logger.Warn("unmount container rootfs", "id", id, "err", err)
			return
		}
	}
}

// monitor follows the shim's events and records what they report until
// the container's init exits. Each call for the events after N
// acknowledges those up to N, once they are handled; after an engined
// restart the shim replays the rest, and handling them twice is harmless.
func (s *Service) monitor(id string, client *shimclient.Client) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if client.Version < 2 {
			// A shim from before events: its Wait reports the exit.
			resp, err := client.Wait(s.ctx, &shimv1.WaitRequest{})
			switch {
			case err == nil:
				s.exited(id, client, resp.GetExit())
			case s.ctx.Err() == nil:
				s.lostShim(id, client, err)
			}
			return
		}
		var seq uint64
		for {
			resp, err := client.Events(s.ctx, &shimv1.EventsRequest{After: seq})
			if err != nil {
				if s.ctx.Err() != nil {
					return // engined is stopping; the container runs on
				}
				s.lostShim(id, client, err)
				return
			}
			for _, ev := range resp.GetEvents() {
				seq = ev.GetSeq()
				switch ev.GetKind() {
				case shimv1.Event_KIND_EXIT:
					s.exited(id, client, ev.GetExit())
					return
				case shimv1.Event_KIND_EXEC_EXIT:
					s.execExited(id, ev.GetExecId(), ev.GetExit())
				case shimv1.Event_KIND_OOM:
					s.cfg.Logger.Info("out of memory in container", "id", id)
					s.eventIf(nil, "oom", id, nil)
				}
			}
		}
	}()
}

// lostShim handles a shim that went away without reporting an exit:
// whatever it recorded on disk is the truth, and what it left running
// has no owner any more.
func (s *Service) lostShim(id string, client *shimclient.Client, err error) {
	s.cfg.Logger.Warn("lost the shim of a container", "id", id, "err", err)
	e, _ := exitfile.Read(s.stateDir(id))
	if rec, err := s.get(id); err == nil {
		s.killOrphans(id, rec.Pid)
	}
	s.mu.Lock()
	if s.shims[id] == client {
		delete(s.shims, id)
	}
	s.mu.Unlock()
	client.Close()
	// The shim is gone: nothing to delete through it.
	s.exited(id, nil, e)
}

// exited records an exit of the run client served (nil: a shim that is
// gone), releases the runtime and applies AutoRemove.
//
// The runtime is released first: the record says the container stopped
// (which lets a start, restart or removal waiting for that go on) only
// once nothing of this run is left to clean up, so this run's cleanup
// (shim, state directory, rootfs mount) can never race the next run's
// start, nor a removal's own cleanup.
func (s *Service) exited(id string, client *shimclient.Client, e *shimv1.ExitStatus) {
	s.stopHealth(id)
	s.dropExecs(id)
	s.cleanupRun(id, client)
	rec, err := s.get(id)
	if err != nil {
		return
	}
	code := 255
	if e != nil {
		code = int(e.GetCode())
	}
	s.event("die", rec, map[string]string{"exitCode": strconv.Itoa(code)})
	if hc, err := rec.hostConfig(); err == nil && hc.GetAutoRemove() {
		// Removed at once: `docker run --rm` waits for the removal, and
		// the exit status needs no record of its own on the way. (No
		// container lock: its holder may be waiting for this exit.)
		exitFrom(rec, e)
		if err := s.removeRecord(rec, true); err != nil {
			s.cfg.Logger.Warn("auto-remove container", "id", id, "err", err)
		}
		s.removeFiles(id)
		return
	}
	var restart bool
	rec, err = s.update(id, func(r *Record) error {
		exitFrom(r, e)
		healthStopped(r)
		hc, _ := r.hostConfig()
		if restart = shouldRestart(hc, r); restart {
			r.Status = "restarting"
		}
		return nil
	})
	if err == nil && restart {
		s.scheduleRestart(id, s.nextRestartDelay(id, rec.FinishedAt.Sub(rec.StartedAt)))
	}
}

// cleanupRuntime deletes the container's shim (it exits), the state
// directory and the rootfs mount. Each step is skipped when there is
// nothing left to do, so cleaning up twice is harmless and quiet.
func (s *Service) cleanupRuntime(id string) { s.cleanupRun(id, nil) }

// cleanupRun is cleanupRuntime for the run client serves (nil: whatever
// shim the container has).
func (s *Service) cleanupRun(id string, client *shimclient.Client) {
	s.mu.Lock()
	if cur := s.shims[id]; client == nil || cur == client {
		client = cur
		delete(s.shims, id)
	}
	s.mu.Unlock()
	b, berr := shimclient.ReadBootstrap(s.stateDir(id))
	if client == nil && berr == nil && b.Alive() {
		client, _ = shimclient.Dial(context.Background(), b)
	}
	if client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		switch _, err := client.Delete(ctx, &shimv1.DeleteRequest{}); {
		case errors.Is(err, ttrpc.ErrClosed) && (s.ctx.Err() != nil || berr != nil || shimEnds(b)):
			// engined is stopping, or the run's exit and a removal clean
			// up at once and the other's Delete ended the shim while
			// this one was on its way.
			s.cfg.Logger.Debug("delete shim: already ended", "id", id)
		case err != nil:
			s.cfg.Logger.Warn("delete shim", "id", id, "err", err)
		}
		cancel()
		client.Close()
	}
	if berr == nil {
		os.Remove(b.Address)
	}
	os.RemoveAll(filepath.Join(s.runcRoot(), id))
	os.RemoveAll(s.stateDir(id))
	s.unmountRootfs(id)
	s.detachNetworks(id)
	if rec, err := s.get(id); err == nil {
		s.releaseRunMounts(rec)
	} else {
		s.unstageSubpaths(id)
	}
}

// shimEnds says whether the shim exits within two seconds (one that
// closed its connection while answering another Delete).
func shimEnds(b shimclient.Bootstrap) bool {
	deadline := time.Now().Add(2 * time.Second)
	for b.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// shim is the client of the container's shim, nil when it has none; for
// a container restored at start it waits until its shim is reattached
// and watched.
func (s *Service) shim(id string) *shimclient.Client {
	s.mu.Lock()
	c, pending := s.shims[id], s.reattaching[id]
	s.mu.Unlock()
	if pending == nil {
		return c
	}
	pending.reattach(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shims[id]
}

// Kill sends a signal (default SIGKILL).
func (s *Service) Kill(ctx context.Context, ref, sig string) error {
	rec, err := s.get(ref)
	if err != nil {
		return err
	}
	n := syscall.SIGKILL
	if sig != "" {
		if n, err = parseSignal(sig); err != nil {
			return err
		}
	}
	client := s.shim(rec.ID)
	if client == nil || rec.Status != "running" && rec.Status != "paused" {
		return errdefs.Conflict(fmt.Errorf("Cannot kill container: %s: container %s is not running", ref, rec.ID))
	}
	// A fatal signal disables the restart policy until the next start.
	cfg, _ := rec.config()
	stopSig := syscall.SIGTERM
	if ss := cfg.GetStopSignal(); ss != "" {
		if n, err := parseSignal(ss); err == nil {
			stopSig = n
		}
	}
	if n == syscall.SIGKILL || n == stopSig {
		s.update(rec.ID, func(r *Record) error { r.StopRequested = true; return nil })
	}
	changed := s.changes(rec.ID)
	if err := s.signal(ctx, rec, client, n); err != nil {
		if isNotRunning(err) {
			return errdefs.Conflict(fmt.Errorf("Cannot kill container: %s: container %s is not running", ref, rec.ID))
		}
		return err
	}
	if n != syscall.SIGKILL {
		return nil
	}
	// As dockerd: SIGKILL returns once the container is dead (and its
	// exit handled), so inspect and rm right after see it stopped.
	if err := s.waitExited(ctx, rec.ID, changed, killWait); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("tried to kill container %s, but it did not exit within %v", rec.ID, killWait)
	}
	return nil
}

// killWait bounds the wait for a container to exit after SIGKILL.
const killWait = 10 * time.Second

// signal sends sig to the container's init and logs the kill event, as
// dockerd does for every signal it sends, docker stop's included.
func (s *Service) signal(ctx context.Context, rec *Record, client *shimclient.Client, sig syscall.Signal) error {
	changed := s.changes(rec.ID)
	if _, err := client.Kill(ctx, &shimv1.KillRequest{Signal: uint32(sig)}); err != nil {
		// The connection closes under a signal in flight when the
		// container exits at once and its exit's cleanup ends the shim
		// before the reply is read (SIGKILL, mostly), or when the shim
		// died: either way the container is stopping, which is what the
		// caller asked for.
		if !errors.Is(err, ttrpc.ErrClosed) || s.waitExited(ctx, rec.ID, changed, killWait) != nil {
			return fmt.Errorf("signal container %s: %w", rec.ID, err)
		}
	}
	s.event("kill", rec, map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// sigRTMax is Linux's highest signal number.
const sigRTMax = 64

func parseSignal(sig string) (syscall.Signal, error) {
	n, err := signal.ParseSignal(sig)
	if err != nil {
		return 0, errdefs.InvalidArgument(err)
	}
	// A number must be a signal of the platform (1..SIGRTMAX), as in
	// dockerd's ValidSignalForPlatform.
	if n <= 0 || n > sigRTMax {
		return 0, errdefs.InvalidArgument(fmt.Errorf("Invalid signal: %s", sig))
	}
	return n, nil
}

// Stop sends the stop signal, waits up to the timeout, then SIGKILLs.
func (s *Service) Stop(ctx context.Context, ref string, timeout *int32, sig string) error {
	rec, err := s.get(ref)
	if err != nil {
		return err
	}
	unlock := s.lock(rec.ID)
	defer unlock()
	return s.stop(ctx, rec.ID, timeout, sig)
}

func (s *Service) stop(ctx context.Context, id string, timeout *int32, sig string) error {
	rec, err := s.get(id)
	if err != nil {
		return err
	}
	if rec.Status == "restarting" {
		// Stopping a container that waits to be restarted cancels that.
		_, err := s.update(id, func(r *Record) error { r.Status, r.StopRequested = "exited", true; return nil })
		return err
	}
	client := s.shim(id)
	if rec.Status != "running" && rec.Status != "paused" {
		return errdefs.NotModified(errors.New("container already stopped"))
	}
	if client == nil {
		// Its exit is being handled: stopped once that is done.
		if err := s.waitExited(ctx, id, s.changes(id), 0); err != nil {
			return err
		}
		return errdefs.NotModified(errors.New("container already stopped"))
	}
	cfg, _ := rec.config()
	if sig == "" {
		sig = cfg.GetStopSignal()
	}
	n := syscall.SIGTERM
	if sig != "" {
		if n, err = parseSignal(sig); err != nil {
			return err
		}
	}
	wait := defaultStopTimeout
	if cfg.StopTimeout != nil {
		wait = time.Duration(cfg.GetStopTimeout()) * time.Second
	}
	if timeout != nil {
		wait = time.Duration(*timeout) * time.Second
	}
	s.update(id, func(r *Record) error { r.StopRequested = true; return nil })
	if rec.Status == "paused" {
		client.Resume(ctx, &shimv1.ResumeRequest{})
	}
	changed := s.changes(id)
	if wait != 0 {
		if err := s.signal(ctx, rec, client, n); err != nil && !isNotRunning(err) {
			return err
		}
	}
	if wait < 0 {
		return s.waitExited(ctx, id, changed, 0)
	}
	// A zero timeout kills at once (waitExited's zero means no limit).
	if wait > 0 {
		if err := s.waitExited(ctx, id, changed, wait); err == nil {
			return nil
		}
	}
	changed = s.changes(id)
	if err := s.signal(ctx, rec, client, syscall.SIGKILL); err != nil && !isNotRunning(err) {
		return err
	}
	return s.waitExited(ctx, id, changed, 0)
}

// waitExited waits until the record is no longer running (0: no limit).
func (s *Service) waitExited(ctx context.Context, id string, changed <-chan struct{}, limit time.Duration) error {
	var deadline <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		deadline = t.C
	}
	for {
		rec, err := s.get(id)
		if err != nil || (rec.Status != "running" && rec.Status != "paused") {
			return nil
		}
		select {
		case <-changed:
			changed = s.changes(id)
		case <-deadline:
			return errors.New("timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Restart stops (if running) and starts again.
func (s *Service) Restart(ctx context.Context, ref string, timeout *int32, sig string) error {
	rec, err := s.get(ref)
	if err != nil {
		return err
	}
	unlock := s.lock(rec.ID)
	if err := s.stop(ctx, rec.ID, timeout, sig); err != nil && !errdefs.IsNotModifiedError(err) {
		unlock()
		return err
	}
	unlock()
	// stop returned once the exit was handled, cleanup included (see
	// exited), so the start below has the container to itself; as with
	// dockerd, it sets RestartCount back to 0.
	return s.Start(ctx, rec.ID)
}

// Pause freezes the container's processes.
func (s *Service) Pause(ctx context.Context, ref string) error {
	rec, err := s.get(ref)
	if err != nil {
		return err
	}
	client := s.shim(rec.ID)
	switch {
	case client == nil || rec.Status == "created" || rec.Status == "exited":
		return errdefs.Conflict(fmt.Errorf("container %s is not running", rec.ID))
	case rec.Status == "paused":
		return errdefs.Conflict(fmt.Errorf("container %s is already paused", rec.ID))
	}
	if _, err := client.Pause(ctx, &shimv1.PauseRequest{}); err != nil {
		return err
	}
	// A paused container's health is not checked (dockerd: unhealthy).
	s.stopHealth(rec.ID)
	_, err = s.update(rec.ID, func(r *Record) error { r.Status = "paused"; healthStopped(r); return nil })
	return err
}

// Unpause thaws a paused container.
func (s *Service) Unpause(ctx context.Context, ref string) error {
	rec, err := s.get(ref)
	if err != nil {
		return err
	}
	client := s.shim(rec.ID)
	if client == nil || rec.Status != "paused" {
		return errdefs.Conflict(fmt.Errorf("container %s is not paused", rec.ID))
	}
	if _, err := client.Resume(ctx, &shimv1.ResumeRequest{}); err != nil {
		return err
	}
	if _, err = s.update(rec.ID, func(r *Record) error { r.Status = "running"; return nil }); err != nil {
		return err
	}
	s.startHealth(rec.ID)
	return nil
}

// Remove deletes a container; a running one only with force.
func (s *Service) Remove(ctx context.Context, ref string, force bool) error {
	return s.RemoveWithVolumes(ctx, ref, force, false)
}

// RemoveWithVolumes is Remove; with volumes (docker rm -v) the
// container's anonymous volumes go too, unless another container uses
// them.
func (s *Service) RemoveWithVolumes(ctx context.Context, ref string, force, volumes bool) error {
	rec, unlock, err := s.lockRecord(ref)
	if err != nil {
		return err
	}
	defer unlock()
	if rec.Status == "restarting" && !force {
		return errdefs.Conflict(fmt.Errorf("cannot remove container %q: container is restarting: stop the container before removing or force remove", rec.Name))
	}
	if rec.Status == "running" || rec.Status == "paused" {
		if !force {
			return errdefs.Conflict(fmt.Errorf("cannot remove container %q: container is running: stop the container before removing or force remove", rec.Name))
		}
		changed := s.changes(rec.ID)
		if client := s.shim(rec.ID); client != nil {
			if err := s.signal(ctx, rec, client, syscall.SIGKILL); err != nil && !isNotRunning(err) {
				s.cfg.Logger.Warn("kill container to remove it", "id", rec.ID, "err", err)
			}
		}
		// The exit is handled (die logged, runtime released) before the
		// removal goes on, so destroy is the last event.
		s.waitExited(ctx, rec.ID, changed, killWait)
		if rec, err = s.get(rec.ID); err != nil {
			if errdefs.IsNotFound(err) {
				return nil // it was AutoRemove
			}
			return err
		}
	}
	if err := s.removeRecord(rec, volumes); err != nil {
		return err
	}
	s.removeFiles(rec.ID)
	return nil
}

// removeRecord deletes the container's record; its files go after (what
// a crash leaves of them, Restore removes). Waiters for the removal still
// learn the exit code.
func (s *Service) removeRecord(rec *Record, volumes bool) error {
	if err := s.recs.remove(rec.ID); err != nil {
		return err
	}
	// The exit code is kept at once: a waiter that finds the record gone
	// from here on answers with it (not with the last state it saw).
	s.mu.Lock()
	delete(s.restartDelay, rec.ID)
	s.removedExit[rec.ID] = rec.ExitCode
	s.removedOrder = append(s.removedOrder, rec.ID)
	if len(s.removedOrder) > maxRemovedExits {
		delete(s.removedExit, s.removedOrder[0])
		s.removedOrder = s.removedOrder[1:]
	}
	s.mu.Unlock()
	// The run's mounts go before the volumes are given back, so a
	// volume with options is unmounted before it may be removed.
	s.releaseRunMounts(rec)
	s.releaseVolumes(context.Background(), rec, volumes)
	s.event("destroy", rec, nil)
	s.stopHealth(rec.ID)
	s.notify(rec.ID)
	return nil
}

// maxRemovedExits bounds the exit codes kept for waiters of removed
// containers.
const maxRemovedExits = 1024

// removedExitCode is the exit code of a container just removed.
func (s *Service) removedExitCode(id string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.removedExit[id]
	return c, ok
}

// removeFiles releases the runtime and deletes the container's files.
func (s *Service) removeFiles(id string) {
	s.cleanupRuntime(id)
	if err := os.RemoveAll(s.containerDir(id)); err != nil {
		s.cfg.Logger.Warn("remove container files", "id", id, "err", err)
	}
}
