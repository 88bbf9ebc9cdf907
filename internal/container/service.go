// Package container is the container lifecycle: create, start (through a
// shim per container), stop, kill, wait, remove, list and inspect, logs
// and attach. Records live in bbolt; running processes belong to the
// shims, which engined reconnects to after a restart.
package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/image"
	"github.com/engined/engined/internal/shimclient"
	"github.com/engined/engined/internal/store"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// Config wires the service.
type Config struct {
	DataRoot string // containers' persistent files: <DataRoot>/containers/<id>
	ExecRoot string // shims' state: <ExecRoot>/containers/<id>
	Shims    *shimclient.Pool
	Store    *store.Store
	Images   *image.Service
	Logger   *slog.Logger
	// Events, if set, receives container events.
	Events *events.Bus
	// InitPath is the init binary --init mounts into the container and
	// runs as PID 1; empty: --init is refused.
	InitPath string
	// Networks attaches containers whose network mode is bridge; nil:
	// such containers cannot start.
	Networks Networks
	// HostResolvConf is the host's resolv.conf containers' files are
	// made from; empty: /etc/resolv.conf.
	HostResolvConf string
	// DNS, DNSSearch and DNSOptions are engined's --dns, --dns-search
	// and --dns-opt: a container's own replace them.
	DNS, DNSSearch, DNSOptions []string
	// Volumes is the volume driver; nil: volumes are refused.
	Volumes Volumes
}

// Service manages containers.
type Service struct {
	cfg  Config
	recs *records

	mu    sync.Mutex
	shims map[string]*shimclient.Client
	// reattaching holds the running containers restored at start whose
	// shims are not dialled again yet (see reattach).
	reattaching map[string]*pendingShim
	changed     map[string]chan struct{} // closed and replaced on every state change
	locks       map[string]*sync.Mutex   // one lifecycle operation per container at a time
	// The exit codes of containers removed lately, for their waiters.
	removedExit  map[string]int
	removedOrder []string
	execs        map[string]*execProc
	restartDelay map[string]time.Duration  // the last restart delay, per container
	health       map[string]*healthMonitor // running health checks, per container

	wg     sync.WaitGroup // monitors
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns the service; Restore reconnects to running shims.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, d := range []string{filepath.Join(cfg.DataRoot, "containers"), filepath.Join(cfg.ExecRoot, "containers")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	recs, err := loadRecords(cfg.Store)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, recs: recs, shims: map[string]*shimclient.Client{}, reattaching: map[string]*pendingShim{}, changed: map[string]chan struct{}{},
		locks: map[string]*sync.Mutex{}, removedExit: map[string]int{}, execs: map[string]*execProc{}, restartDelay: map[string]time.Duration{}, health: map[string]*healthMonitor{}, ctx: ctx, cancel: cancel}, nil
}

// Close stops watching shims; the containers keep running.
func (s *Service) Close() {
	s.cancel()
	s.mu.Lock()
	for _, c := range s.shims {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Service) containerDir(id string) string {
	return filepath.Join(s.cfg.DataRoot, "containers", id)
}
func (s *Service) stateDir(id string) string { return filepath.Join(s.cfg.ExecRoot, "containers", id) }
func (s *Service) runcRoot() string          { return filepath.Join(s.cfg.ExecRoot, "runc") }
func (s *Service) logPath(id string) string {
	return filepath.Join(s.containerDir(id), id+"-json.log")
}

func (s *Service) lock(id string) func() {
	s.mu.Lock()
	l := s.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[id] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// lockRecord resolves ref, takes the container's lock and reads the
// record again under it (it may have changed while the lock was waited
// for). The caller unlocks.
func (s *Service) lockRecord(ref string) (*Record, func(), error) {
	rec, err := s.get(ref)
	if err != nil {
		return nil, nil, err
	}
	unlock := s.lock(rec.ID)
	if rec, err = s.get(rec.ID); err != nil {
		unlock()
		return nil, nil, err
	}
	return rec, unlock, nil
}

// notify wakes everything waiting on a change of id's state.
func (s *Service) notify(id string) {
	s.mu.Lock()
	if ch := s.changed[id]; ch != nil {
		close(ch)
	}
	s.changed[id] = make(chan struct{})
	s.mu.Unlock()
}

func (s *Service) changes(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.changed[id]
	if ch == nil {
		ch = make(chan struct{})
		s.changed[id] = ch
	}
	return ch
}

func (s *Service) get(ref string) (*Record, error) { return s.recs.get(ref) }

func (s *Service) update(id string, fn func(*Record) error) (*Record, error) {
	out, err := s.recs.update(id, fn)
	if err == nil {
		s.notify(id)
	}
	return out, err
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Create records a new container; it runs at Start.
func (s *Service) Create(ctx context.Context, req *enginev1.ContainerCreateRequest) (*enginev1.ContainerCreateResponse, error) {
	cfg := req.GetConfig()
	if cfg == nil || cfg.GetImage() == "" {
		return nil, errdefs.InvalidArgument(errors.New("config.Image must be set"))
	}
	img, err := s.cfg.Images.Resolve(ctx, cfg.GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFound(fmt.Errorf("No such image: %s", familiarTagged(cfg.GetImage())))
		}
		return nil, err
	}
	imgCfg, err := s.cfg.Images.RunConfig(img)
	if err != nil {
		return nil, err
	}
	imgHealth, err := s.cfg.Images.Healthcheck(img)
	if err != nil {
		return nil, err
	}
	rec, err := newRecord(req, imgCfg, imgHealth, img.ID.String())
	if err != nil {
		return nil, err
	}
	hc, err := rec.hostConfig()
	if err != nil {
		return nil, err
	}
	if hc.GetInit() && s.cfg.InitPath == "" {
		return nil, errdefs.InvalidArgument(errors.New("--init: engined has no init binary: install docker-init or tini (tini-static), or set init-path"))
	}
	// The containers whose namespaces this one joins must exist (and run
	// when it starts).
	for _, m := range []string{hc.GetPidMode(), hc.GetIpcMode()} {
		if ref, ok := strings.CutPrefix(m, "container:"); ok {
			if _, err := s.get(ref); err != nil {
				return nil, err
			}
		}
	}
	if err := s.createNetworks(ctx, rec, hc, req.GetEndpoint(), req.GetEndpoints()); err != nil {
		return nil, err
	}
	if err := s.checkLinks(hc); err != nil {
		return nil, err
	}
	id, generated := rec.ID, req.GetName() == ""
	if err := os.MkdirAll(s.containerDir(id), 0o710); err != nil {
		return nil, err
	}
	if err := s.writeHostFiles(rec, cfg, hc); err != nil {
		os.RemoveAll(s.containerDir(id))
		return nil, err
	}
	// The volumes are taken (made if need be) before the record is
	// stored: a prune meanwhile sees them in use.
	mounts, release, err := s.resolveMounts(id, cfg, hc, imgCfg)
	if err != nil {
		os.RemoveAll(s.containerDir(id))
		return nil, err
	}
	rec.Mounts = append([]MountPoint{}, mounts...)
	if err := s.copyUp(ctx, rec); err != nil {
		release()
		os.RemoveAll(s.containerDir(id))
		return nil, err
	}
	err = s.recs.insert(rec, generated)
	if err != nil {
		release()
		os.RemoveAll(s.containerDir(id))
		return nil, err
	}
	s.notify(id)
	s.eventIf(nil, "create", id, nil)
	return &enginev1.ContainerCreateResponse{Id: id, Warnings: portWarnings(hc)}, nil
}

// newRecord validates a create request against the image's run config and
// builds the container's record; it touches neither disk nor store.
func newRecord(req *enginev1.ContainerCreateRequest, imgCfg v1.Config, imgHealth *enginev1.HealthConfig, imageID string) (*Record, error) {
	cfg := req.GetConfig()
	if cfg == nil {
		return nil, errdefs.InvalidArgument(errors.New("config.Image must be set"))
	}
	hc := req.GetHostConfig()
	if hc == nil {
		hc = &enginev1.HostConfig{}
	}
	normalizeHostConfig(hc)
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	// Before the host config's checks: dockerd's conflict errors for
	// ports with a container: network mode come first.
	if err := validatePorts(cfg, hc); err != nil {
		return nil, err
	}
	if err := validateHostConfig(hc); err != nil {
		return nil, err
	}
	if err := validateMounts(cfg, hc); err != nil {
		return nil, err
	}
	if err := validateNetContainerMode(cfg, hc); err != nil {
		return nil, err
	}
	hostUTS := hc.GetNetworkMode() == "host" || hc.GetUtsMode() == "host"
	if hc.GetUtsMode() == "host" && cfg.GetHostname() != "" {
		return nil, errdefs.InvalidArgument(errors.New("Conflicting options: hostname and the UTS mode"))
	}
	id := newID()
	name := req.GetName()
	generated := name == ""
	if generated {
		name = generateName(0)
	} else if !validName.MatchString(name) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	}
	name = "/" + strings.TrimPrefix(name, "/")
	for _, l := range hc.GetLinks() {
		if _, _, err := parseLink(l); err != nil {
			return nil, err
		}
	}
	// Links are kept as dockerd's inspect shows them: "/db:/web/db".
	hc.Links = dockerLinks(name, hc.GetLinks())
	if cfg.GetHostname() == "" {
		cfg.Hostname = id[:12]
		if hostUTS {
			// dockerd's: the host's name, which such a container sees.
			cfg.Hostname, _ = os.Hostname()
		}
	}
	entrypoint, cmd := imgCfg.Entrypoint, imgCfg.Cmd
	if cfg.GetEntrypointSet() {
		entrypoint = cfg.GetEntrypoint()
		if !cfg.GetCmdSet() {
			cmd = nil
		}
	}
	if cfg.GetCmdSet() {
		cmd = cfg.GetCmd()
	}
	mergeExposedPorts(cfg, imgCfg.ExposedPorts)
	// The image's VOLUMEs are the container's too, as dockerd merges them.
	for v := range imgCfg.Volumes {
		if !slices.Contains(cfg.Volumes, v) {
			cfg.Volumes = append(cfg.Volumes, v)
		}
	}
	slices.Sort(cfg.Volumes)
	cfg.Healthcheck = mergeHealthcheck(cfg.GetHealthcheck(), imgHealth)
	argv := append(append([]string(nil), entrypoint...), cmd...)
	if len(argv) == 0 {
		return nil, errdefs.InvalidArgument(errors.New("no command specified"))
	}
	cfgJSON, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	hcJSON, err := protojson.Marshal(hc)
	if err != nil {
		return nil, err
	}
	rec := &Record{ID: id, Name: name, Created: time.Now().UTC(), Image: cfg.GetImage(), ImageID: imageID,
		Path: argv[0], Args: argv[1:], Config: cfgJSON, HostConfig: hcJSON, Status: "created"}
	return rec, nil
}

func familiarTagged(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}

// writeHostFiles writes /etc/hostname, /etc/hosts and /etc/resolv.conf
// for the container: with the host's network, the host's hosts and
// resolv.conf, as dockerd gives them; plus ExtraHosts and the DNS
// settings of the request.
func (s *Service) writeHostFiles(rec *Record, cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig) error {
	dir := s.containerDir(rec.ID)
	host := cfg.GetHostname()
	hostNet := hc.GetNetworkMode() == "host"
	hosts, err := hostsFile(host, hostNet, hc.GetExtraHosts())
	if err != nil {
		return err
	}
	files := map[string]string{"hostname": host + "\n", "hosts": hosts}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// The log file is the shim's to make, at the start (as dockerd's is):
	// a reader before that finds no entries, and a follower waits for it.
	return s.writeResolvConf(rec, hc)
}

// hostsFile is a container's /etc/hosts: the host's with the host's
// network, else the localhost lines and the container's own name on
// ownIP (127.0.1.1 until it has an address); then the extra hosts.
func hostsFile(host string, hostNet bool, extra []string, ownIPs ...string) (string, error) {
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	if hostNet {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
			if hosts != "" && !strings.HasSuffix(hosts, "\n") {
				hosts += "\n"
			}
		}
	}
	added, err := extraHosts(extra)
	if err != nil {
		return "", err
	}
	hosts += added
	if !hostNet {
		if len(ownIPs) == 0 {
			ownIPs = []string{"127.0.1.1"}
		}
		for _, ip := range ownIPs {
			hosts += ip + "\t" + host + "\n"
		}
	}
	return hosts, nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func isMounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

var errNotRunningText = "container is not running"

func isNotRunning(err error) bool {
	return err != nil && strings.Contains(err.Error(), errNotRunningText)
}

// exitFrom converts a shim's exit status to the record.
func exitFrom(r *Record, e *shimv1.ExitStatus) {
	r.Status = "exited"
	r.Pid = 0
	if e == nil {
		r.ExitCode = 255
		r.FinishedAt = time.Now().UTC()
		return
	}
	r.ExitCode = int(e.GetCode())
	r.OOMKilled = e.GetOomKilled()
	r.FinishedAt = time.Unix(0, e.GetExitedAtUnixNano()).UTC()
}

// firstMessage receives the first message of a client stream, which must
// carry the call's options (later ones carry data).
func firstMessage[M any, O comparable](recv func() (M, error), options func(M) O, call string) (M, O, error) {
	var none O
	first, err := recv()
	if err != nil {
		return first, none, err
	}
	opts := options(first)
	if opts == none {
		return first, none, errdefs.InvalidArgument(fmt.Errorf("%s: the first message must carry options", call))
	}
	return first, opts, nil
}
