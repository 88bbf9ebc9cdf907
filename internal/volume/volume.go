// Package volume is the local volume driver, with dockerd's layout and
// semantics: a volume is <data-root>/volumes/<name>/_data, its metadata a
// record in the store's volumes bucket. A volume created with options
// (type, o, device) is mounted with mount(2) on _data when its first user
// mounts it and unmounted when the last one lets go.
//
// The service also keeps who uses each volume (containers, by ID): a
// volume in use is never removed nor pruned. Taking a volume for a
// container (Acquire) and pruning or removing it hold the same lock, so a
// prune racing a container create either removes the volume before the
// create (which then makes it again) or sees it in use. The users live in
// memory; engined rebuilds them at start from the containers' records
// (Restore).
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/filters"
	"github.com/engined/engined/internal/store"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// AnonymousLabel marks a volume made without a name (dockerd's).
const AnonymousLabel = "com.docker.volume.anonymous"

// DefaultDriver is the only driver.
const DefaultDriver = "local"

// validName is the local driver's (dockerd's).
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Config wires the service.
type Config struct {
	Root   string // <data-root>/volumes
	Store  *store.Store
	Events *events.Bus
	Logger *slog.Logger
}

// Record is a volume's metadata.
type Record struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	CreatedAt  time.Time         `json:"createdAt"`
	Labels     map[string]string `json:"labels,omitempty"`
	Options    map[string]string `json:"options,omitempty"`
	LabelsSet  bool              `json:"labelsSet,omitempty"`
	OptionsSet bool              `json:"optionsSet,omitempty"`
}

// Anonymous says whether the volume was made without a name.
func (r *Record) Anonymous() bool {
	_, ok := r.Labels[AnonymousLabel]
	return ok
}

// Service is the local driver and the volumes' users.
type Service struct {
	cfg Config

	mu sync.Mutex
	// users: volume name -> container IDs that use it.
	users map[string]map[string]bool
	// mounted: volume name -> containers that have it mounted (running),
	// for volumes with options, which are mounted while it is non-empty.
	mounted map[string]map[string]bool
}

// New opens the driver's directory; directories of volumes without a
// record (made by an engined killed before it stored one, or by hand)
// are adopted, as dockerd's local driver lists its directories.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Root, 0o701); err != nil {
		return nil, fmt.Errorf("volumes directory: %w", err)
	}
	s := &Service{cfg: cfg, users: map[string]map[string]bool{}, mounted: map[string]map[string]bool{}}
	entries, err := os.ReadDir(cfg.Root)
	if err != nil {
		return nil, err
	}
	// Nothing to adopt (the usual start) writes nothing.
	err = cfg.Store.UpdateIfChanged(func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(store.BucketVolumes)
		adopted := 0
		for _, e := range entries {
			if !e.IsDir() || !validName.MatchString(e.Name()) || b.Get([]byte(e.Name())) != nil {
				continue
			}
			// Without _data it is one an engined was killed making (the
			// directory is made before its _data) or removing (the
			// record goes first, _data before its parent): dockerd's
			// driver adopts every directory, and so does this, so that
			// it can be listed and removed rather than left unseen.
			data := filepath.Join(cfg.Root, e.Name(), "_data")
			if err := os.Mkdir(data, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				cfg.Logger.Warn("adopt a volume directory", "volume", e.Name(), "err", err)
				continue
			}
			info, err := os.Lstat(data)
			if err != nil || !info.IsDir() {
				cfg.Logger.Warn("adopt a volume directory: its _data is not a directory", "volume", e.Name())
				continue
			}
			r := &Record{Name: e.Name(), Driver: DefaultDriver, CreatedAt: info.ModTime().UTC()}
			if opts, err := os.ReadFile(filepath.Join(cfg.Root, e.Name(), "opts.json")); err == nil {
				json.Unmarshal(opts, &r.Options)
				r.OptionsSet = len(r.Options) > 0
			}
			if err := putRecord(tx, r); err != nil {
				return false, err
			}
			adopted++
		}
		return adopted > 0, nil
	})
	return s, err
}

func putRecord(tx *bolt.Tx, r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(store.BucketVolumes).Put([]byte(r.Name), v)
}

func (s *Service) get(name string) (*Record, error) {
	var r *Record
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(store.BucketVolumes).Get([]byte(name))
		if v == nil {
			return nil
		}
		r = &Record{}
		return json.Unmarshal(v, r)
	})
	if err == nil && r == nil {
		err = errdefs.NotFound(fmt.Errorf("get %s: no such volume", name))
	}
	return r, err
}

func (s *Service) all() ([]*Record, error) {
	var out []*Record
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketVolumes).ForEach(func(k, v []byte) error {
			r := &Record{}
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode volume %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// dir is the volume's directory; name is valid (checked at create, or a
// directory name the driver listed).
func (s *Service) dir(name string) string { return filepath.Join(s.cfg.Root, name) }

// Mountpoint is where the volume's data is on the host.
func (s *Service) Mountpoint(name string) string { return filepath.Join(s.dir(name), "_data") }

// ValidateName checks a volume name as the local driver does.
func ValidateName(name string) error {
	if len(name) == 1 {
		return errdefs.InvalidArgument(errors.New("volume name is too short, names should be at least two alphanumeric characters"))
	}
	if !validName.MatchString(name) {
		return errdefs.InvalidArgument(fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name))
	}
	return nil
}

// validOpts are the local driver's options (size needs quotas, which
// engined has not).
func validateOpts(opts map[string]string) error {
	for k := range opts {
		switch k {
		case "type", "o", "device":
		case "size":
			return errdefs.InvalidArgument(errors.New("quota size requested but no quota support"))
		default:
			return errdefs.InvalidArgument(fmt.Errorf("invalid option key: %q", k))
		}
	}
	if (opts["o"] != "" || opts["device"] != "") && opts["type"] == "" {
		return errdefs.InvalidArgument(errors.New(`missing required option: "type"`))
	}
	if opts["type"] != "" && opts["type"] != "tmpfs" && opts["device"] == "" {
		return errdefs.InvalidArgument(errors.New(`missing required option: "device"`))
	}
	if _, _, err := mountFlags(opts["o"]); err != nil {
		return err
	}
	return nil
}

// CreateOptions are what a new volume is made with.
type CreateOptions struct {
	Name       string // "" for an anonymous volume
	Driver     string
	DriverOpts map[string]string
	Labels     map[string]string
	LabelsSet  bool
}

// create makes the volume unless it exists; s.mu is held.
func (s *Service) create(o CreateOptions) (*Record, bool, error) {
	if d := o.Driver; d != "" && d != DefaultDriver {
		return nil, false, errdefs.NotFound(fmt.Errorf("error looking up volume plugin %s: plugin %q not found", d, d))
	}
	name := o.Name
	anonymous := name == ""
	if anonymous {
		b := make([]byte, 32)
		rand.Read(b)
		name = hex.EncodeToString(b)
	} else if err := ValidateName(name); err != nil {
		return nil, false, errdefs.InvalidArgument(fmt.Errorf("create %s: %w", name, err))
	}
	if r, err := s.get(name); err == nil {
		return r, false, nil
	} else if !errdefs.IsNotFound(err) {
		return nil, false, err
	}
	if err := validateOpts(o.DriverOpts); err != nil {
		return nil, false, errdefs.InvalidArgument(fmt.Errorf("create %s: %w", name, err))
	}
	r := &Record{Name: name, Driver: DefaultDriver, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: maps.Clone(o.Labels), Options: maps.Clone(o.DriverOpts), LabelsSet: o.LabelsSet || len(o.Labels) > 0,
		OptionsSet: len(o.DriverOpts) > 0}
	if anonymous {
		if r.Labels == nil {
			r.Labels = map[string]string{}
		}
		r.Labels[AnonymousLabel] = ""
		r.LabelsSet = true
	}
	if err := os.MkdirAll(s.Mountpoint(name), 0o755); err != nil {
		return nil, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	if r.OptionsSet {
		b, _ := json.Marshal(r.Options)
		if err := os.WriteFile(filepath.Join(s.dir(name), "opts.json"), b, 0o600); err != nil {
			os.RemoveAll(s.dir(name))
			return nil, false, err
		}
	}
	if err := s.cfg.Store.Update(func(tx *bolt.Tx) error { return putRecord(tx, r) }); err != nil {
		os.RemoveAll(s.dir(name))
		return nil, false, err
	}
	s.event("create", r, nil)
	return r, true, nil
}

func (s *Service) event(action string, r *Record, extra map[string]string) {
	if s.cfg.Events == nil {
		return
	}
	attrs := map[string]string{"driver": r.Driver}
	maps.Copy(attrs, extra)
	s.cfg.Events.Publish("volume", action, r.Name, attrs)
}

// Acquire returns the volume named (made first if it does not exist, or
// a new anonymous one for an empty name) with user recorded as using it,
// in one step that prune and remove cannot come between.
func (s *Service) Acquire(o CreateOptions, user string) (r *Record, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, created, err = s.create(o)
	if err != nil {
		return nil, false, err
	}
	if s.users[r.Name] == nil {
		s.users[r.Name] = map[string]bool{}
	}
	s.users[r.Name][user] = true
	return r, created, nil
}

// Release records that user no longer uses the volume.
func (s *Service) Release(name, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users[name], user)
	if len(s.users[name]) == 0 {
		delete(s.users, name)
	}
}

// RemoveAnonymous removes an anonymous volume nobody uses (docker rm -v);
// named volumes and volumes in use are left.
func (s *Service) RemoveAnonymous(ctx context.Context, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(name)
	if err != nil || !r.Anonymous() || len(s.users[name]) > 0 {
		return
	}
	if err := s.remove(r); err != nil {
		s.cfg.Logger.Warn("remove anonymous volume", "volume", name, "err", err)
	}
}

// remove deletes a volume nobody uses; s.mu is held.
func (s *Service) remove(r *Record) error {
	mp := s.Mountpoint(r.Name)
	if r.OptionsSet {
		// Mounted by an engined killed before its last user let go.
		unmountAll(mp)
	}
	if isMountPoint(mp) {
		return fmt.Errorf("remove %s: %s is still mounted", r.Name, mp)
	}
	// The record goes first: a crash half-way through the files leaves a
	// directory, which is adopted again at start, never a record without
	// its data.
	if err := s.cfg.Store.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketVolumes).Delete([]byte(r.Name))
	}); err != nil {
		return err
	}
	if err := os.RemoveAll(s.dir(r.Name)); err != nil {
		return fmt.Errorf("remove %s: %w", r.Name, err)
	}
	delete(s.mounted, r.Name)
	s.event("destroy", r, nil)
	return nil
}

// Users are the containers using the volume.
func (s *Service) Users(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usersLocked(name)
}

func (s *Service) usersLocked(name string) []string {
	out := slices.Collect(maps.Keys(s.users[name]))
	sort.Strings(out)
	return out
}

// Restore sets the volumes' users after a start: users are the
// containers that reference each volume, running those that run (and
// have it mounted). Volumes with options mounted for nobody are
// unmounted.
func (s *Service) Restore(users, running map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, ids := range users {
		if s.users[name] == nil {
			s.users[name] = map[string]bool{}
		}
		for _, id := range ids {
			s.users[name][id] = true
		}
	}
	recs, err := s.all()
	if err != nil {
		s.cfg.Logger.Warn("restore volumes", "err", err)
		return
	}
	for _, r := range recs {
		if ids := running[r.Name]; len(ids) > 0 {
			s.mounted[r.Name] = map[string]bool{}
			for _, id := range ids {
				s.mounted[r.Name][id] = true
			}
			continue
		}
		if r.OptionsSet {
			unmountAll(s.Mountpoint(r.Name))
		}
	}
}

// Mount makes the volume's data ready for user (a container starting):
// a volume with options is mounted when its first user comes. It returns
// the host path to bind into the container.
func (s *Service) Mount(name, user string, attrs map[string]string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(name)
	if err != nil {
		return "", err
	}
	mp := s.Mountpoint(name)
	if r.OptionsSet && len(s.mounted[name]) == 0 && !isMountPoint(mp) {
		if err := mountVolume(r.Options, mp); err != nil {
			return "", fmt.Errorf("error while mounting volume '%s': %w", mp, err)
		}
	}
	if s.mounted[name] == nil {
		s.mounted[name] = map[string]bool{}
	}
	if !s.mounted[name][user] {
		s.mounted[name][user] = true
		a := maps.Clone(attrs)
		if a == nil {
			a = map[string]string{}
		}
		a["container"] = user
		s.event("mount", r, a)
	}
	return mp, nil
}

// Unmount lets go of a volume user mounted; the last user of a volume
// with options unmounts it.
func (s *Service) Unmount(name, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mounted[name][user] {
		return
	}
	delete(s.mounted[name], user)
	r, err := s.get(name)
	if err != nil {
		return
	}
	s.event("unmount", r, map[string]string{"container": user})
	if len(s.mounted[name]) == 0 {
		delete(s.mounted, name)
		if r.OptionsSet {
			if err := unmountAll(s.Mountpoint(name)); err != nil {
				s.cfg.Logger.Warn("unmount volume", "volume", name, "err", err)
			}
		}
	}
}

// mountFlags splits a mount option string into flags and data, as
// mount(8) reads it.
func mountFlags(o string) (uintptr, string, error) {
	flagOf := map[string]struct {
		clear bool
		flag  uintptr
	}{
		"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY}, "nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
		"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV}, "noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
		"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS}, "noatime": {false, unix.MS_NOATIME},
		"atime": {true, unix.MS_NOATIME}, "nodiratime": {false, unix.MS_NODIRATIME}, "relatime": {false, unix.MS_RELATIME},
		"strictatime": {false, unix.MS_STRICTATIME}, "dirsync": {false, unix.MS_DIRSYNC},
		"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
		"defaults": {false, 0},
	}
	var flags uintptr
	var data []string
	if o == "" {
		return 0, "", nil
	}
	for _, opt := range strings.Split(o, ",") {
		if f, ok := flagOf[opt]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if opt == "" {
			continue
		}
		data = append(data, opt)
	}
	return flags, strings.Join(data, ","), nil
}

// mountVolume mounts a volume's options on its _data: tmpfs, a bind of
// the device (type none, o bind), or the device as the file system type.
func mountVolume(opts map[string]string, target string) error {
	flags, data, err := mountFlags(opts["o"])
	if err != nil {
		return err
	}
	typ, device := opts["type"], opts["device"]
	if typ == "tmpfs" && device == "" {
		device = "tmpfs"
	}
	if flags&unix.MS_BIND != 0 {
		typ = ""
		if _, err := os.Stat(device); err != nil {
			return fmt.Errorf("bind source %s: %w", device, err)
		}
		ro := flags&unix.MS_RDONLY != 0
		if err := unix.Mount(device, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return err
		}
		if ro {
			// A bind is read-only only once remounted so.
			if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return err
			}
		}
		return nil
	}
	return unix.Mount(device, target, typ, flags, data)
}

func unmountAll(target string) error {
	for isMountPoint(target) {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			return err
		}
	}
	return nil
}

// isMountPoint: something is mounted on path (another device than its
// parent's, or a bind of the same file system, as mountinfo shows).
func isMountPoint(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	if st.Dev != parent.Dev {
		return true
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// The Engine service's volume methods.

func (s *Service) toProto(r *Record) *enginev1.Volume {
	return &enginev1.Volume{Name: r.Name, Driver: r.Driver, Mountpoint: s.Mountpoint(r.Name), CreatedAt: timestamppb.New(r.CreatedAt),
		Labels: r.Labels, Options: r.Options, LabelsSet: r.LabelsSet, OptionsSet: r.OptionsSet, Size: -1, RefCount: -1}
}

func (s *Service) VolumeCreate(ctx context.Context, req *enginev1.VolumeCreateRequest) (*enginev1.Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, err := s.create(CreateOptions{Name: req.GetName(), Driver: req.GetDriver(), DriverOpts: req.GetDriverOpts(),
		Labels: req.GetLabels(), LabelsSet: req.GetLabelsSet()})
	if err != nil {
		return nil, err
	}
	return s.toProto(r), nil
}

func (s *Service) VolumeInspect(ctx context.Context, req *enginev1.VolumeInspectRequest) (*enginev1.Volume, error) {
	r, err := s.get(req.GetName())
	if err != nil {
		return nil, err
	}
	return s.toProto(r), nil
}

func (s *Service) VolumeList(ctx context.Context, req *enginev1.VolumeListRequest) (*enginev1.VolumeListResponse, error) {
	args, err := filters.Parse(req.GetFilters(), "dangling", "driver", "label", "label!", "name")
	if err != nil {
		return nil, err
	}
	var dangling *bool
	if args.Has("dangling") {
		d, err := args.Bool("dangling", false)
		if err != nil {
			return nil, err
		}
		dangling = &d
	}
	recs, err := s.all()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	inUse := map[string]bool{}
	for n, u := range s.users {
		inUse[n] = len(u) > 0
	}
	s.mu.Unlock()
	resp := &enginev1.VolumeListResponse{}
	for _, r := range recs {
		if dangling != nil && *dangling == inUse[r.Name] {
			continue
		}
		if args.Has("driver") && !args["driver"][r.Driver] {
			continue
		}
		if args.Has("name") && !nameMatch(args["name"], r.Name) {
			continue
		}
		if !args.MatchLabels("label", r.Labels) || !args.MatchNoLabel("label!", r.Labels) {
			continue
		}
		resp.Volumes = append(resp.Volumes, s.toProto(r))
	}
	return resp, nil
}

// nameMatch: dockerd's name filter is a substring match.
func nameMatch(vals map[string]bool, name string) bool {
	for v := range vals {
		if strings.Contains(name, v) {
			return true
		}
	}
	return false
}

func (s *Service) VolumeRemove(ctx context.Context, req *enginev1.VolumeRemoveRequest) (*enginev1.VolumeRemoveResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(req.GetName())
	if err != nil {
		if req.GetForce() && errdefs.IsNotFound(err) {
			return &enginev1.VolumeRemoveResponse{}, nil
		}
		return nil, err
	}
	// force does not remove a volume in use, as dockerd's.
	if users := s.usersLocked(r.Name); len(users) > 0 {
		return nil, errdefs.Conflict(fmt.Errorf("remove %s: volume is in use - %v", r.Name, users))
	}
	if err := s.remove(r); err != nil {
		return nil, err
	}
	return &enginev1.VolumeRemoveResponse{}, nil
}

// VolumePrune removes the volumes nobody uses: anonymous ones only,
// unless the all filter is true. The lock is held throughout, so no
// container can take a volume while it is being pruned.
func (s *Service) VolumePrune(ctx context.Context, req *enginev1.VolumePruneRequest) (*enginev1.VolumePruneResponse, error) {
	args, err := filters.Parse(req.GetFilters(), "label", "label!", "all")
	if err != nil {
		return nil, err
	}
	all, err := args.Bool("all", false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.all()
	if err != nil {
		return nil, err
	}
	resp := &enginev1.VolumePruneResponse{}
	for _, r := range recs {
		if len(s.users[r.Name]) > 0 || (!all && !r.Anonymous()) {
			continue
		}
		if !args.MatchLabels("label", r.Labels) || !args.MatchNoLabel("label!", r.Labels) {
			continue
		}
		size, _ := DirSize(ctx, s.Mountpoint(r.Name))
		if err := s.remove(r); err != nil {
			s.cfg.Logger.Warn("prune volume", "volume", r.Name, "err", err)
			continue
		}
		resp.VolumesDeleted = append(resp.VolumesDeleted, r.Name)
		resp.SpaceReclaimed += size
	}
	if s.cfg.Events != nil {
		s.cfg.Events.Publish("volume", "prune", "", map[string]string{"reclaimed": fmt.Sprint(resp.SpaceReclaimed)})
	}
	return resp, nil
}

// Usage lists the volumes with their sizes and reference counts (system
// df). Sizes are walked without the service's lock, so a large volume
// holds up nothing else.
func (s *Service) Usage(ctx context.Context) ([]*enginev1.Volume, error) {
	recs, err := s.all()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	refs := map[string]int64{}
	for n, u := range s.users {
		refs[n] = int64(len(u))
	}
	s.mu.Unlock()
	out := make([]*enginev1.Volume, 0, len(recs))
	for _, r := range recs {
		v := s.toProto(r)
		v.RefCount = refs[r.Name]
		size, err := DirSize(ctx, s.Mountpoint(r.Name))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			size = -1
		}
		v.Size = size
		out = append(out, v)
	}
	return out, nil
}

// DirSize adds up the sizes of the regular files under dir (each hard
// linked file once), as dockerd's directory.Size; it stops when ctx ends.
func DirSize(ctx context.Context, dir string) (int64, error) {
	var n int64
	seen := map[uint64]bool{}
	count := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if count++; count%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
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
	return n, err
}
