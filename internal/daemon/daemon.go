// Package daemon wires engined together: the pid file and store, the Engine
// gRPC service, the REST gateway in front of it, and the listeners that
// serve both. It owns their lifetimes; the work itself is done by the
// packages it wires.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/engined/engined/gateway"
	"github.com/engined/engined/internal/build"
	"github.com/engined/engined/internal/config"
	"github.com/engined/engined/internal/container"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/image"
	"github.com/engined/engined/internal/limits"
	"github.com/engined/engined/internal/listener"
	"github.com/engined/engined/internal/network"
	"github.com/engined/engined/internal/pidfile"
	"github.com/engined/engined/internal/shimclient"
	"github.com/engined/engined/internal/store"
	"github.com/engined/engined/internal/system"
	"github.com/engined/engined/internal/version"
	"github.com/engined/engined/internal/volume"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// shutdownGrace bounds how long in-flight requests may run after a stop
// signal; long streams (events, logs -f) are cut after it.
const shutdownGrace = 10 * time.Second

// storeLockTimeout bounds the wait for the metadata file's lock.
const storeLockTimeout = 2 * time.Second

// engine is the Engine gRPC server: one embedded service per concern.
// Methods not yet implemented answer UNIMPLEMENTED through the nested
// embedding, which sits one level deeper so real methods win.
type engine struct {
	unimplemented
	*systemService
	*imageService
	*containerService
	*eventsService
	*networkService
	*volumeService
	*buildService
}

// Aliases name the embedded fields: every concern calls its type Service.
type (
	systemService    = system.Service
	imageService     = image.Service
	containerService = container.Service
	eventsService    = events.Bus
	networkService   = network.Manager
	volumeService    = volume.Service
	buildService     = build.Service
)

type unimplemented struct {
	enginev1.UnimplementedEngineServer
}

// Run starts engined and serves until ctx is cancelled, then shuts down
// cleanly: stop accepting, let in-flight requests finish, close the store.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) (err error) {
	grpclog.SetLoggerV2(grpcLogger{log: log})
	routeLibraryLog(log)
	pid, err := pidfile.Acquire(filepath.Join(cfg.ExecRoot, "engined.pid"))
	if err != nil {
		return err
	}
	defer pid.Release()

	restoreGC := relaxGCForStart()
	// Each startup phase's time, in the debug log.
	phaseStart := time.Now()
	phase := func(name string) {
		log.Debug("startup", "phase", name, "took", time.Since(phaseStart))
		phaseStart = time.Now()
	}
	st, err := store.Open(cfg.DataRoot, storeLockTimeout)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close metadata store: %w", cerr)
		}
	}()
	id, err := st.EngineID(newEngineID)
	if err != nil {
		return fmt.Errorf("engine id: %w", err)
	}

	gid, err := socketGroup(cfg)
	if err != nil {
		return err
	}
	listeners, warnings, err := listener.Open(ctx, cfg.Hosts, listener.TLSOptions{
		Enabled:          cfg.TLSEnabled(),
		Verify:           cfg.TLSVerifyEnabled(),
		CAFile:           cfg.TLSCACert,
		CertFile:         cfg.TLSCert,
		KeyFile:          cfg.TLSKey,
		InsecureExplicit: cfg.TLSExplicitlyOff(),
	}, gid)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}

	phase("store and listeners")
	bus := events.New()
	// Containers use images; images ask containers whether one is in use.
	var containers *container.Service
	images, err := image.New(ctx, image.Config{
		Root:     filepath.Join(cfg.DataRoot, "image"),
		Store:    st,
		Mirrors:  cfg.RegistryMirrors,
		Insecure: cfg.InsecureRegistries,
		InUse: func(ctx context.Context, id digest.Digest) (string, bool) {
			return containers.InUse(ctx, id)
		},
		Logger: log,
		Events: bus,
	})
	if err != nil {
		closeAll(listeners)
		return err
	}
	phase("images")
	self, _ := os.Executable()
	shimPath := filepath.Join(filepath.Dir(self), "shim")
	// One shim waits ready, so a container start does not wait for one.
	shims, err := shimclient.NewPool(shimclient.Options{
		Bin: shimPath, RuncRoot: filepath.Join(cfg.ExecRoot, "runc"), SocketDir: filepath.Join(cfg.ExecRoot, "s"),
	}, filepath.Join(cfg.ExecRoot, "idle-shims"), 1, log)
	if err != nil {
		closeAll(listeners)
		return err
	}
	defer shims.Close()
	phase("shim pool")
	initPath := findInit(cfg.InitPath, log)
	pools, err := addressPools(cfg)
	if err != nil {
		closeAll(listeners)
		return err
	}
	nets, err := network.New(ctx, network.Config{
		Store: st, Logger: log, Bridge: cfg.Bridge, BIP: cfg.BIP, MTU: cfg.MTU, AddressPools: pools, ICC: cfg.ICCEnabled(),
		IPForward: cfg.IPForwardEnabled(), IPMasq: cfg.IPMasqEnabled(), Table: cfg.NFTable,
		// Names are known once the container service is up; the network
		// manager starts first (its rules at start name containers by ID).
		ContainerName: func(id string) string {
			if containers == nil {
				return ""
			}
			return containers.Name(id)
		}, Events: bus,
		DNS: network.DNSConfig{Root: filepath.Join(cfg.ExecRoot, "dns"), Command: append(resolverCommand(self), "--log-level", cfg.LogLevel),
			HostResolvConf: cfg.HostResolvConf},
	})
	if err != nil {
		closeAll(listeners)
		return fmt.Errorf("networks: %w", err)
	}
	defer nets.Close()
	phase("networks")
	vols, err := volume.New(volume.Config{Root: filepath.Join(cfg.DataRoot, "volumes"), Store: st, Events: bus, Logger: log})
	if err != nil {
		closeAll(listeners)
		return fmt.Errorf("volumes: %w", err)
	}
	phase("volumes")
	containers, err = container.New(container.Config{
		Volumes:  vols,
		DataRoot: cfg.DataRoot, ExecRoot: cfg.ExecRoot, Shims: shims, Store: st, Images: images, Logger: log, Events: bus,
		InitPath: initPath, Networks: containerNetworks{nets}, HostResolvConf: cfg.HostResolvConf,
		DNS: cfg.DNS, DNSSearch: cfg.DNSSearch, DNSOptions: cfg.DNSOptions,
	})
	if err != nil {
		closeAll(listeners)
		return err
	}
	// The volumes' users before the containers' reconcile, which lets
	// go of the volumes of containers that died meanwhile.
	phase("container records")
	users, running, err := containers.VolumeUsers()
	if err != nil {
		closeAll(listeners)
		return fmt.Errorf("volume users: %w", err)
	}
	vols.Restore(users, running)
	reattached := containers.Restore(ctx)
	phase("containers restored")
	nets.WriteRules()
	defer containers.Close()
	builds, err := build.New(build.Config{Images: images, Containers: containers, TmpDir: filepath.Join(cfg.DataRoot, "build", "tmp"), Logger: log, Events: bus})
	if err != nil {
		closeAll(listeners)
		return err
	}

	sys := system.New(system.Config{
		ID:                 id,
		DataRoot:           cfg.DataRoot,
		Debug:              cfg.Debug || cfg.LogLevel == "debug",
		Labels:             cfg.Labels,
		RegistryMirrors:    cfg.RegistryMirrors,
		InsecureRegistries: cfg.InsecureRegistries,
		Warnings:           infoWarnings(warnings),
		ShimPath:           shimPath,
		Counts: func(ctx context.Context) (system.Counts, error) {
			return counts(ctx, containers, images)
		},
	})

	unaryIntercept := unaryErrors(log, hideRoots(cfg.DataRoot, cfg.ExecRoot))
	grpcServer := grpc.NewServer(
		// gRPC's default 4 MiB would refuse what the REST API accepts
		// (a create with a 4 MiB label) and answer nothing at all once
		// the stored state outgrows it (a list of 1,000 labelled containers).
		grpc.MaxRecvMsgSize(limits.MaxRequestMessage),
		grpc.MaxSendMsgSize(limits.MaxReplyMessage),
		grpc.ChainUnaryInterceptor(unaryIntercept),
		grpc.ChainStreamInterceptor(streamErrors(log, hideRoots(cfg.DataRoot, cfg.ExecRoot))),
	)
	engineServer := &engine{systemService: sys, imageService: images, containerService: containers, eventsService: bus,
		networkService: nets, volumeService: vols, buildService: builds}
	enginev1.RegisterEngineServer(grpcServer, engineServer)

	// The gateway reaches the Engine service in-process: unary calls
	// directly, streams (which need a real client connection) through a
	// buffered in-memory pipe.
	mem := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///engined",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return mem.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limits.MaxReplyMessage), grpc.MaxCallSendMsgSize(limits.MaxRequestMessage)),
	)
	if err != nil {
		closeAll(listeners)
		return fmt.Errorf("connect gateway to engine: %w", err)
	}
	defer conn.Close()
	gwCtx, cancelGW := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelGW()
	rest, err := gateway.New(gwCtx, newInprocConn(&enginev1.Engine_ServiceDesc, engineServer, unaryIntercept, conn), gateway.Options{ServerVersion: version.Version, Logger: log})
	if err != nil {
		closeAll(listeners)
		return err
	}

	if cfg.Debug || cfg.LogLevel == "debug" {
		rest = withProfiles(rest)
	}
	srv := &http.Server{
		Handler: splitGRPC(grpcServer, logRequests(log, stallTimeout(cfg.HTTPReadTimeout, rest))),
		// A slow-loris sender of headers and an idle keep-alive
		// connection are closed; responses have no deadline, so hijacked
		// and streamed replies (attach, logs -f, events, wait) last.
		ReadHeaderTimeout: cfg.HTTPReadTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		Protocols:         new(http.Protocols),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// HTTP/1.1 for Docker clients (hijacking needs it), HTTP/2 for gRPC:
	// over TLS through ALPN, in the clear with prior knowledge (h2c).
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	var wg sync.WaitGroup
	serveErr := make(chan error, len(listeners)+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := grpcServer.Serve(mem); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			serveErr <- fmt.Errorf("in-process engine server: %w", err)
		}
	}()
	for _, l := range listeners {
		log.Info("API listen", "addr", l.Address, "tls", l.TLS)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("serve %s: %w", l.Address, err)
			}
		}()
	}
	phase("API")
	notifyReady(log)
	runDone := make(chan struct{})
	defer close(runDone)
	go func() {
		bound := time.NewTimer(startGCAtMost)
		defer bound.Stop()
		select {
		case <-reattached:
		case <-bound.C:
		case <-runDone:
			return
		}
		restoreGC()
	}()
	log.Info("engined started", "version", version.Version, "api", version.APIVersion, "data-root", cfg.DataRoot, "exec-root", cfg.ExecRoot, "pid", os.Getpid())

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("listener failed, shutting down", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		log.Warn("requests still running at shutdown deadline; closing them", "err", serr)
		srv.Close()
	}
	cancelGW()
	grpcServer.Stop()
	wg.Wait()
	for _, l := range listeners {
		if l.Proto == "unix" {
			os.Remove(strings.TrimPrefix(l.Address, "unix://"))
		}
	}
	log.Info("engined stopped")
	return err
}

// withProfiles serves Go's runtime profiles under /debug/pprof/, as
// dockerd does in debug mode: on the API's own listeners, so only who
// may use the API may read them.
func withProfiles(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", next)
	return mux
}

// splitGRPC sends gRPC requests to the gRPC server and everything else to
// the REST gateway, so one address serves both.
func splitGRPC(grpcServer *grpc.Server, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			grpcServer.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		log.Debug("request", "method", r.Method, "path", clientValue(r.URL.Path), "query", clientValue(r.URL.RawQuery), "proto", r.Proto, "took", time.Since(start))
	})
}

func unaryErrors(log *slog.Logger, public func(error) error) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		if err != nil {
			logFailure(log, "engine call failed", info.FullMethod, err, "took", time.Since(start))
		} else {
			log.Debug("engine call", "method", info.FullMethod, "took", time.Since(start))
		}
		return resp, public(err)
	}
}

func streamErrors(log *slog.Logger, public func(error) error) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err != nil {
			logFailure(log, "engine stream failed", info.FullMethod, err)
		}
		return public(err)
	}
}

// logFailure logs a failed call: at debug level when the client asked for
// something wrong, as a warning when engined failed (a 500), with the
// whole error, host paths included.
func logFailure(log *slog.Logger, msg, method string, err error, args ...any) {
	level := slog.LevelDebug
	if internalError(err) {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, msg, append([]any{"method", method, "err", err}, args...)...)
}

func internalError(err error) bool {
	switch errdefs.Code(err) {
	case codes.Unknown, codes.Internal, codes.DataLoss:
		return true
	}
	return false
}

// hideRoots returns the gRPC form of an engine error for clients: the
// message of an internal failure names engined's data and exec roots as
// <data-root> and <exec-root>, not by their host paths, which are for
// engined's log (logFailure) and not for whoever can reach the API.
func hideRoots(dataRoot, execRoot string) func(error) error {
	r := strings.NewReplacer(dataRoot, "<data-root>", execRoot, "<exec-root>")
	return func(err error) error {
		if err == nil || !internalError(err) {
			return errdefs.ToGRPC(err)
		}
		st, _ := status.FromError(errdefs.ToGRPC(err))
		return status.New(st.Code(), r.Replace(st.Message())).Err()
	}
}

func counts(ctx context.Context, containers *container.Service, images *image.Service) (system.Counts, error) {
	var c system.Counts
	var err error
	if c.Containers, c.Running, c.Paused, c.Stopped, err = containers.Counts(ctx); err != nil {
		return c, err
	}
	c.Images, err = images.Count(ctx)
	return c, err
}

func socketGroup(cfg *config.Config) (int, error) {
	if cfg.Group == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(cfg.Group)
	if err != nil {
		if cfg.Group == config.DefaultGroup {
			return -1, nil
		}
		return -1, fmt.Errorf("socket group %q: %w", cfg.Group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("socket group %q has gid %q: %w", cfg.Group, g.Gid, err)
	}
	return gid, nil
}

func infoWarnings(listenerWarnings []string) []string {
	out := make([]string, 0, len(listenerWarnings))
	for _, w := range listenerWarnings {
		out = append(out, "WARNING: "+w)
	}
	return out
}

func newEngineID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

func closeAll(ls []*listener.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// resolverCommand starts the DNS resolver: engined's own hidden
// subcommand. (A binary of its own ran in 8 MB instead of 19, but the
// binaries engined ships are fixed: engined, shim and docker.)
func resolverCommand(self string) []string {
	return []string{self, "dns-resolver"}
}

// initCandidates are looked up in PATH when no init-path is set: Docker's
// own docker-init, then Debian's tini-static (package tini). The binary
// is mounted into containers, so it must be static.
var initCandidates = []string{"docker-init", "tini-static"}

// findInit resolves the init binary for --init; "" when there is none,
// and then --init is refused.
func findInit(configured string, log *slog.Logger) string {
	if configured != "" {
		if st, err := os.Stat(configured); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			log.Warn("init-path is not an executable file: --init is refused", "init-path", configured, "err", err)
			return ""
		}
		return configured
	}
	for _, name := range initCandidates {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	log.Info("no init binary (docker-init, tini-static) in PATH: --init is refused")
	return ""
}
