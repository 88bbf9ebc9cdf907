package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/oci"
	"github.com/engined/engined/internal/volume"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Volumes is what the container service needs of the volume driver.
type Volumes interface {
	// Acquire returns the volume (made if missing; a new anonymous one
	// for an empty name) with user recorded as using it.
	Acquire(o volume.CreateOptions, user string) (*volume.Record, bool, error)
	Release(name, user string)
	// RemoveAnonymous removes an anonymous volume nobody uses.
	RemoveAnonymous(ctx context.Context, name string)
	// Mount readies the volume for a running user and returns its path;
	// Unmount lets go.
	Mount(name, user string, attrs map[string]string) (string, error)
	Unmount(name, user string)
	Mountpoint(name string) string
}

// MountPoint is one of a container's mounts, as dockerd keeps them:
// resolved at create, in the order they are applied.
type MountPoint struct {
	Type         string `json:"type"` // bind, volume, tmpfs
	Name         string `json:"name,omitempty"`
	Source       string `json:"source,omitempty"`
	Destination  string `json:"destination"`
	Driver       string `json:"driver,omitempty"`
	Mode         string `json:"mode,omitempty"`
	RW           bool   `json:"rw"`
	Propagation  string `json:"propagation,omitempty"`
	Subpath      string `json:"subpath,omitempty"`
	NonRecursive bool   `json:"nonRecursive,omitempty"`
	FromSpec     bool   `json:"fromSpec,omitempty"`
	TmpfsSize    int64  `json:"tmpfsSize,omitempty"`
	TmpfsMode    uint32 `json:"tmpfsMode,omitempty"`
	// CreateSource: a -v bind whose missing source is made at start.
	CreateSource bool `json:"createSource,omitempty"`
	copyData     bool
	driverOpts   map[string]string
	labels       map[string]string
}

var propagationModes = map[string]bool{"private": true, "rprivate": true, "slave": true, "rslave": true, "shared": true, "rshared": true}

const defaultPropagation = "rprivate"

// validMode checks a -v mode list as dockerd's linuxValidMountMode: at
// most one of each kind.
func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	counts := map[string]int{}
	for _, o := range strings.Split(mode, ",") {
		switch {
		case o == "ro" || o == "rw":
			counts["rw"]++
		case o == "z" || o == "Z":
			counts["label"]++
		case propagationModes[o]:
			counts["propagation"]++
		case o == "nocopy":
			counts["copy"]++
		case o == "consistent" || o == "cached" || o == "delegated":
			counts["consistency"]++
		default:
			return false
		}
	}
	for _, n := range counts {
		if n > 1 {
			return false
		}
	}
	return true
}

func modeHas(mode, o string) bool { return slices.Contains(strings.Split(mode, ","), o) }

// parseBindMount reads a HostConfig.Binds entry as dockerd's
// ParseMountRaw: "src:dst[:mode]", src a host path (a bind) or a volume
// name.
func parseBindMount(raw string) (*MountPoint, error) {
	arr := strings.SplitN(raw, ":", 4)
	spec := func() error { return invalid("invalid volume specification: '%s'", raw) }
	if arr[0] == "" {
		return nil, spec()
	}
	var src, dst, mode string
	switch len(arr) {
	case 1:
		dst = arr[0]
	case 2:
		if validMode(arr[1]) {
			return nil, spec()
		}
		src, dst = arr[0], arr[1]
	case 3:
		src, dst, mode = arr[0], arr[1], arr[2]
	default:
		return nil, spec()
	}
	if !validMode(mode) {
		return nil, invalid("invalid mode: %s", mode)
	}
	typ := "volume"
	if path.IsAbs(src) {
		typ = "bind"
	}
	wrap := func(err string) error {
		return invalid("invalid volume specification: '%s': invalid mount config for type %q: %s", raw, typ, err)
	}
	if !path.IsAbs(dst) {
		return nil, wrap(fmt.Sprintf("invalid mount path: '%s' mount path must be absolute", dst))
	}
	if path.Clean(dst) == "/" {
		return nil, wrap("invalid specification: destination can't be '/'")
	}
	mp := &MountPoint{Type: typ, Destination: path.Clean(dst), Mode: mode, RW: !modeHas(mode, "ro")}
	if typ == "bind" {
		if modeHas(mode, "nocopy") {
			return nil, wrap("field VolumeOptions must not be specified")
		}
		mp.Source, mp.Propagation, mp.CreateSource = path.Clean(src), defaultPropagation, true
		for _, o := range strings.Split(mode, ",") {
			if propagationModes[o] {
				mp.Propagation = o
			}
		}
		return mp, nil
	}
	if src != "" {
		if err := volume.ValidateName(src); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("create %s: %w", src, err))
		}
	}
	mp.Name, mp.Driver, mp.copyData = src, volume.DefaultDriver, !modeHas(mode, "nocopy")
	if mp.Mode == "" {
		mp.Mode = "z" // dockerd's setBindModeIfNull for the local driver
	}
	return mp, nil
}

// specMount reads a HostConfig.Mounts entry (--mount) as dockerd's
// ParseMountSpec; a bind's source must exist unless CreateMountpoint.
func specMount(m *enginev1.Mount) (*MountPoint, error) {
	t := m.GetType()
	cfgErr := func(format string, a ...any) error {
		return invalid("invalid mount config for type %q: %s", t, fmt.Sprintf(format, a...))
	}
	dst := m.GetTarget()
	hasBind := m.GetBindPropagation() != "" || m.GetBindNonRecursive() || m.GetBindCreateMountpoint()
	hasVolume := m.GetVolumeNoCopy() || len(m.GetVolumeLabels()) > 0 || m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOpts()) > 0 || m.GetVolumeSubpath() != ""
	switch {
	case t == "":
		return nil, invalid("invalid mount config: mount type unknown")
	case dst == "":
		return nil, cfgErr("field Target must not be empty")
	case path.Clean(dst) == "/":
		return nil, cfgErr("invalid specification: destination can't be '/'")
	case !path.IsAbs(dst):
		return nil, cfgErr("invalid mount path: '%s' mount path must be absolute", dst)
	}
	if c := m.GetConsistency(); c != "" && c != "default" && c != "consistent" && c != "cached" && c != "delegated" {
		return nil, cfgErr("invalid consistency: %s", c)
	}
	mp := &MountPoint{Type: t, Destination: path.Clean(dst), RW: !m.GetReadOnly(), FromSpec: true}
	switch t {
	case "bind":
		src := m.GetSource()
		switch {
		case src == "":
			return nil, cfgErr("field Source must not be empty")
		case hasVolume:
			return nil, cfgErr("field VolumeOptions must not be specified")
		case !path.IsAbs(src):
			return nil, cfgErr("invalid mount path: '%s' mount path must be absolute", src)
		}
		if p := m.GetBindPropagation(); p != "" && !propagationModes[p] {
			return nil, cfgErr("invalid propagation mode: %s", p)
		}
		mp.Source, mp.Propagation = path.Clean(src), cmpOr(m.GetBindPropagation(), defaultPropagation)
		mp.NonRecursive, mp.CreateSource = m.GetBindNonRecursive(), m.GetBindCreateMountpoint()
	case "volume":
		if hasBind {
			return nil, cfgErr("field BindOptions must not be specified")
		}
		src := m.GetSource()
		if src == "" {
			if m.GetVolumeSubpath() != "" {
				return nil, cfgErr("must not set Subpath when using anonymous volumes")
			}
			if m.GetReadOnly() {
				return nil, cfgErr("must not set ReadOnly mode when using anonymous volumes")
			}
		} else if err := volume.ValidateName(src); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("create %s: %w", src, err))
		}
		if sp := m.GetVolumeSubpath(); sp != "" && !filepath.IsLocal(sp) {
			return nil, cfgErr("subpath must be a relative path within the volume")
		}
		if d := m.GetVolumeDriver(); d != "" && d != volume.DefaultDriver {
			return nil, errdefs.NotFound(fmt.Errorf("error looking up volume plugin %s: plugin %q not found", d, d))
		}
		mp.Name, mp.Driver, mp.Subpath = src, volume.DefaultDriver, m.GetVolumeSubpath()
		mp.copyData, mp.driverOpts, mp.labels = !m.GetVolumeNoCopy(), m.GetVolumeDriverOpts(), m.GetVolumeLabels()
		mp.Mode = "z"
	case "tmpfs":
		if hasBind {
			return nil, cfgErr("field BindOptions must not be specified")
		}
		if hasVolume {
			return nil, cfgErr("field VolumeOptions must not be specified")
		}
		if _, err := mountFrom(m); err != nil {
			return nil, err
		}
		mp.TmpfsSize, mp.TmpfsMode = m.GetTmpfsSize(), m.GetTmpfsMode()
	default:
		if t == "image" || t == "npipe" || t == "cluster" {
			return nil, invalid("mounts of type %q (HostConfig.Mounts) are not supported", t)
		}
		return nil, cfgErr("mount type unknown")
	}
	return mp, nil
}

// parseVolumesFrom reads "container[:ro|rw]" as dockerd does.
func parseVolumesFrom(spec string) (string, string, error) {
	if spec == "" {
		return "", "", invalid("volumes-from specification cannot be an empty string")
	}
	id, mode, _ := strings.Cut(spec, ":")
	if mode == "" {
		return id, "rw", nil
	}
	if !validMode(mode) {
		return "", "", invalid("invalid mode: %s", mode)
	}
	for _, o := range strings.Split(mode, ",") {
		if propagationModes[o] || o == "nocopy" {
			return "", "", invalid("invalid mode: %s", mode)
		}
	}
	return id, mode, nil
}

// validateMounts checks Binds, Mounts, VolumesFrom and Config.Volumes
// without touching the host.
func validateMounts(cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig) error {
	for _, b := range hc.GetBinds() {
		if _, err := parseBindMount(b); err != nil {
			return err
		}
	}
	for _, m := range hc.GetMounts() {
		if _, err := specMount(m); err != nil {
			return err
		}
	}
	for _, v := range hc.GetVolumesFrom() {
		if _, _, err := parseVolumesFrom(v); err != nil {
			return err
		}
	}
	for _, v := range cfg.GetVolumes() {
		if !path.IsAbs(v) {
			return invalid("invalid volume specification: '%s': invalid mount config for type \"volume\": invalid mount path: '%s' mount path must be absolute", v, v)
		}
		if path.Clean(v) == "/" {
			return invalid("invalid volume specification: '%s': invalid mount config for type \"volume\": invalid specification: destination can't be '/'", v)
		}
	}
	return nil
}

// resolveMounts computes a new container's mount points in dockerd's
// order (volumes-from, Binds, Mounts, then anonymous volumes for
// Config.Volumes and the image's VOLUMEs not mounted otherwise), takes
// the volumes they use and returns a function that gives them back (for
// a create that fails after).
func (s *Service) resolveMounts(id string, cfg *enginev1.ContainerConfig, hc *enginev1.HostConfig, imgCfg v1.Config) ([]MountPoint, func(), error) {
	var order []string
	byDst := map[string]*MountPoint{}
	add := func(mp *MountPoint) {
		if _, ok := byDst[mp.Destination]; !ok {
			order = append(order, mp.Destination)
		}
		byDst[mp.Destination] = mp
	}
	for _, vf := range hc.GetVolumesFrom() {
		ref, mode, err := parseVolumesFrom(vf)
		if err != nil {
			return nil, nil, err
		}
		other, err := s.get(ref)
		if err != nil {
			return nil, nil, err
		}
		if other.ID == id {
			return nil, nil, invalid("cannot mount volumes from the container itself")
		}
		for _, m := range s.recMounts(other) {
			cp := m
			cp.RW = m.RW && !modeHas(mode, "ro")
			cp.copyData = false
			add(&cp)
		}
	}
	explicit := map[string]bool{}
	for _, b := range hc.GetBinds() {
		mp, err := parseBindMount(b)
		if err != nil {
			return nil, nil, err
		}
		if explicit[mp.Destination] {
			return nil, nil, invalid("Duplicate mount point: %s", mp.Destination)
		}
		explicit[mp.Destination] = true
		add(mp)
	}
	for _, m := range hc.GetMounts() {
		mp, err := specMount(m)
		if err != nil {
			return nil, nil, err
		}
		if explicit[mp.Destination] {
			return nil, nil, invalid("Duplicate mount point: %s", mp.Destination)
		}
		if mp.Type == "bind" && !mp.CreateSource {
			if _, err := os.Stat(mp.Source); err != nil {
				return nil, nil, invalid("invalid mount config for type \"bind\": bind source path does not exist: %s", mp.Source)
			}
		}
		explicit[mp.Destination] = true
		add(mp)
	}
	for dst := range hc.GetTmpfs() {
		if explicit[path.Clean(dst)] {
			return nil, nil, invalid("Duplicate mount point: %s", path.Clean(dst))
		}
	}
	anon := append(slices.Clone(cfg.GetVolumes()), slices.Collect(mapKeys(imgCfg.Volumes))...)
	sort.Strings(anon)
	for _, v := range anon {
		dst := path.Clean(v)
		if _, ok := byDst[dst]; ok || hc.GetTmpfs()[dst] != "" || hasKey(hc.GetTmpfs(), dst) {
			continue
		}
		add(&MountPoint{Type: "volume", Destination: dst, Driver: volume.DefaultDriver, RW: true, copyData: true})
	}
	var taken []string
	release := func() {
		for _, n := range taken {
			s.cfg.Volumes.Release(n, id)
		}
	}
	var out []MountPoint
	for _, dst := range order {
		mp := byDst[dst]
		if mp.Type == "volume" {
			if s.cfg.Volumes == nil {
				release()
				return nil, nil, invalid("volumes are not available")
			}
			r, _, err := s.cfg.Volumes.Acquire(volume.CreateOptions{Name: mp.Name, Driver: mp.Driver, DriverOpts: mp.driverOpts, Labels: mp.labels}, id)
			if err != nil {
				release()
				return nil, nil, err
			}
			taken = append(taken, r.Name)
			mp.Name, mp.Source = r.Name, s.cfg.Volumes.Mountpoint(r.Name)
		}
		out = append(out, *mp)
	}
	return out, func() {
		release()
		for _, mp := range out {
			if mp.Type == "volume" {
				s.cfg.Volumes.RemoveAnonymous(context.Background(), mp.Name)
			}
		}
	}, nil
}

func mapKeys(m map[string]struct{}) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// copyUp fills each new container's empty volume with what its image
// has at the mount's destination, ownership and modes kept (dockerd's
// copy-up; not for nocopy, volumes-from or a subpath). The rootfs is
// mounted for it; everything is read and written on descriptors inside
// both trees.
func (s *Service) copyUp(ctx context.Context, rec *Record) error {
	var todo []MountPoint
	for _, mp := range rec.Mounts {
		if mp.Type == "volume" && mp.copyData && mp.Subpath == "" {
			todo = append(todo, mp)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	img, err := s.cfg.Images.Resolve(ctx, rec.ImageID)
	if err != nil {
		return err
	}
	rootfs, err := s.mountRootfs(rec.ID, img.ChainIDs())
	if err != nil {
		return err
	}
	defer s.unmountRootfs(rec.ID)
	src, err := archive.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer src.Close()
	for _, mp := range todo {
		// A directory of the image's own: nothing there, a file or a
		// symlink (whose target the runtime resolves in the rootfs at
		// mount time) have nothing copied.
		fi, err := src.Lstat(mp.Destination)
		if err != nil || !fi.IsDir() {
			continue
		}
		dir, err := s.cfg.Volumes.Mount(mp.Name, rec.ID, nil)
		if err != nil {
			return err
		}
		err = copyInto(ctx, src, mp.Destination, dir)
		s.cfg.Volumes.Unmount(mp.Name, rec.ID)
		if err != nil {
			return fmt.Errorf("copy image content into volume %s: %w", mp.Name, err)
		}
	}
	return nil
}

// copyInto copies the tree at p in src into dir when dir is empty.
func copyInto(ctx context.Context, src *archive.Root, p, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) > 0 {
		return err
	}
	dst, err := archive.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer dst.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := src.Tar(ctx, pw, p, "")
		pw.CloseWithError(err)
		done <- err
	}()
	_, aerr := dst.Apply(ctx, "/", pr, archive.Options{})
	pr.CloseWithError(errors.New("copy ended"))
	terr := <-done
	if aerr != nil {
		return aerr
	}
	if terr != nil {
		return terr
	}
	// The volume's root takes the image directory's owner and mode.
	fi, err := src.Lstat(p)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return unix.Chmod(dir, st.Mode&0o7777)
	}
	return nil
}

// recMounts are the record's mount points; records from before engined
// kept them have theirs derived from Binds and Mounts.
func (s *Service) recMounts(rec *Record) []MountPoint {
	if rec.Mounts != nil {
		return rec.Mounts
	}
	hc, _ := rec.hostConfig()
	var out []MountPoint
	for _, b := range hc.GetBinds() {
		if mp, err := parseBindMount(b); err == nil && mp.Type == "bind" {
			out = append(out, *mp)
		}
	}
	for _, m := range hc.GetMounts() {
		if mp, err := specMount(m); err == nil && mp.Type == "tmpfs" {
			out = append(out, *mp)
		}
	}
	return out
}

// ociMounts turns the container's mount points into the runtime's
// mounts, shallowest destination first (as dockerd sorts them), and
// mounts its volumes. Subpaths are resolved inside their volume on
// descriptors and bind-mounted to a private staging path first, so a
// symlink in the volume cannot lead the mount outside it. The returned
// function undoes the volumes' mounts (a start that fails).
func (s *Service) ociMounts(rec *Record) ([]oci.Mount, func(), error) {
	mps := slices.Clone(s.recMounts(rec))
	sort.SliceStable(mps, func(i, j int) bool { return depth(mps[i].Destination) < depth(mps[j].Destination) })
	var out []oci.Mount
	undo := func() { s.releaseRunMounts(rec) }
	for i, mp := range mps {
		switch mp.Type {
		case "tmpfs":
			m, err := mountFrom(&enginev1.Mount{Type: "tmpfs", Target: mp.Destination, ReadOnly: !mp.RW, TmpfsSize: mp.TmpfsSize, TmpfsMode: mp.TmpfsMode})
			if err != nil {
				undo()
				return nil, nil, err
			}
			out = append(out, m)
			continue
		case "bind":
			if mp.CreateSource {
				// As dockerd does for -v, a bind's missing source is created.
				if _, err := os.Stat(mp.Source); err != nil {
					if err := os.MkdirAll(mp.Source, 0o755); err != nil {
						undo()
						return nil, nil, err
					}
				}
			}
		case "volume":
			dir, err := s.cfg.Volumes.Mount(mp.Name, rec.ID, map[string]string{"destination": mp.Destination,
				"read/write": strconv.FormatBool(mp.RW), "propagation": mp.Propagation})
			if err != nil {
				undo()
				return nil, nil, err
			}
			mp.Source = dir
			if mp.Subpath != "" {
				staged, err := s.stageSubpath(rec.ID, i, dir, mp.Subpath)
				if err != nil {
					undo()
					return nil, nil, err
				}
				mp.Source = staged
			}
		}
		opts := []string{"rbind"}
		if mp.NonRecursive {
			opts = []string{"bind"}
		}
		opts = append(opts, cmpOr(mp.Propagation, defaultPropagation))
		if !mp.RW {
			opts = append(opts, "ro")
			if !mp.NonRecursive && recursiveReadOnly() {
				// Read-only all the way down (dockerd's default on kernels
				// with mount_setattr, 5.12 and later).
				opts = append(opts, "rro")
			}
		}
		out = append(out, oci.Mount{Source: mp.Source, Destination: mp.Destination, Type: "bind", Options: opts})
	}
	return out, undo, nil
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// subpathDir holds a running container's subpath stagings. It is not
// under the container's state directory, which is removed whole: a
// removal that went through a staging mount would delete the volume's
// files. Stagings are only ever unmounted and rmdir'd.
func (s *Service) subpathDir(id string) string { return filepath.Join(s.cfg.ExecRoot, "subpaths", id) }

// stageSubpath resolves sub inside the volume at dir, as docker cp
// resolves paths (symlinks stay inside), and bind-mounts what it names,
// through its descriptor, on a staging path of the container's.
func (s *Service) stageSubpath(id string, n int, dir, sub string) (string, error) {
	root, err := archive.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	h, err := root.OpenPath(sub)
	if err != nil {
		return "", invalid("cannot access path %s in volume: %v", sub, errors.Unwrap(err))
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return "", err
	}
	staging := filepath.Join(s.subpathDir(id), strconv.Itoa(n))
	if err := os.MkdirAll(s.subpathDir(id), 0o700); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(staging, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(staging, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	}
	if err != nil && !os.IsExist(err) {
		return "", err
	}
	unix.Unmount(staging, unix.MNT_DETACH)
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", h.Fd()), staging, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("mount volume subpath %s: %w", sub, err)
	}
	return staging, nil
}

// releaseRunMounts undoes what a run mounted: its subpath stagings and
// its volumes' mounts. Harmless when done twice.
func (s *Service) releaseRunMounts(rec *Record) {
	s.unstageSubpaths(rec.ID)
	if s.cfg.Volumes == nil {
		return
	}
	for _, mp := range s.recMounts(rec) {
		if mp.Type == "volume" {
			s.cfg.Volumes.Unmount(mp.Name, rec.ID)
		}
	}
}

// releaseVolumes gives a removed container's volumes back, and with
// anonymous removes its anonymous ones nobody else uses.
func (s *Service) releaseVolumes(ctx context.Context, rec *Record, anonymous bool) {
	if s.cfg.Volumes == nil {
		return
	}
	for _, mp := range s.recMounts(rec) {
		if mp.Type != "volume" {
			continue
		}
		s.cfg.Volumes.Release(mp.Name, rec.ID)
		if anonymous {
			s.cfg.Volumes.RemoveAnonymous(ctx, mp.Name)
		}
	}
}

// VolumeUsers are, by volume name, the containers that use it and those
// that run (so have it mounted): how engined's volume users are rebuilt
// at start.
func (s *Service) VolumeUsers() (users, running map[string][]string, err error) {
	recs := s.recs.all()
	users, running = map[string][]string{}, map[string][]string{}
	for _, r := range recs {
		for _, mp := range s.recMounts(r) {
			if mp.Type != "volume" {
				continue
			}
			users[mp.Name] = append(users[mp.Name], r.ID)
			if r.Status == "running" || r.Status == "paused" || r.Status == "restarting" {
				running[mp.Name] = append(running[mp.Name], r.ID)
			}
		}
	}
	return users, running, nil
}

func mountPointProto(mp MountPoint) *enginev1.MountPoint {
	return &enginev1.MountPoint{Type: mp.Type, Name: mp.Name, Source: mp.Source, Destination: mp.Destination, Driver: mp.Driver,
		Mode: mp.Mode, Rw: mp.RW, Propagation: mp.Propagation, Subpath: mp.Subpath, Nonrecursive: mp.NonRecursive,
		FromSpec: mp.FromSpec, TmpfsSize: mp.TmpfsSize, TmpfsMode: mp.TmpfsMode}
}

// unstageSubpaths unmounts a container's subpath stagings and removes
// them with rmdir/unlink only (a staging still mounted stays: EBUSY).
func (s *Service) unstageSubpaths(id string) {
	dir := s.subpathDir(id)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		for i := 0; i < 16 && unix.Unmount(p, unix.MNT_DETACH) == nil; i++ {
		}
		if err := os.Remove(p); err != nil {
			s.cfg.Logger.Warn("remove subpath staging", "path", p, "err", err)
		}
	}
	os.Remove(dir)
}

// unstageOrphans removes the stagings of containers that do not run
// (an engined killed before it cleaned up after them).
func (s *Service) unstageOrphans(running map[string]bool) {
	entries, _ := os.ReadDir(filepath.Join(s.cfg.ExecRoot, "subpaths"))
	for _, e := range entries {
		if !running[e.Name()] {
			s.unstageSubpaths(e.Name())
		}
	}
}

// usesVolume is ps's volume filter, as dockerd's: a mount's volume name
// or destination.
func (s *Service) usesVolume(r *Record, vals map[string]bool) bool {
	for _, mp := range s.recMounts(r) {
		if (mp.Type == "volume" && vals[mp.Name]) || vals[mp.Destination] {
			return true
		}
	}
	return false
}

// recursiveReadOnly: the kernel has mount_setattr (5.12), which
// recursive read-only binds need.
var recursiveReadOnly = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 5 || (major == 5 && minor >= 12)
})
