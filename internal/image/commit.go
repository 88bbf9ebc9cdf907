package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	"io"
	"os"
	"path/filepath"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/engined/engined/internal/errdefs"
)

// ConfigFile is an image config as dockerd writes the ones it commits:
// the OCI fields, Docker's run config, and the container it came from
// (container_config is what the build cache compares).
type ConfigFile struct {
	dockerspec.DockerOCIImage
	Container       string                           `json:"container,omitempty"`
	ContainerConfig *dockerspec.DockerOCIImageConfig `json:"container_config,omitempty"`
}

// ReadConfig reads an image's config blob.
func (s *Service) ReadConfig(r *Record) (*ConfigFile, error) {
	raw, err := s.content.ReadAll(r.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", r.ID, err)
	}
	var cfg ConfigFile
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("image %s config: %w", r.ID, err)
	}
	return &cfg, nil
}

// CommitOptions describe an image made from a parent and one new layer.
type CommitOptions struct {
	// Parent is the image the new one is made from; nil: none (scratch).
	Parent *Record
	// OS, Architecture and Variant are the platform of an image without
	// a parent; one with a parent has its parent's.
	OS, Architecture, Variant string
	// Layer writes the new layer as a plain tar and returns how many
	// entries it wrote; none (or a nil Layer) adds no layer, and the
	// history entry says so (empty_layer), as dockerd's.
	Layer func(w io.Writer) (int, error)
	// ReuseLayer, instead of Layer, adds a layer another image has (the
	// build cache's --cache-from): its chain must continue the parent's.
	ReuseLayer *Layer
	// Config is the new image's run config.
	Config dockerspec.DockerOCIImageConfig
	// ContainerConfig is the build step's config, the cache's key.
	ContainerConfig *dockerspec.DockerOCIImageConfig
	Container       string
	Author, Comment string
	// CreatedBy is the history entry's command.
	CreatedBy string
	// Tags are full references to point at the image.
	Tags []string
	// BuildCache marks an image made by a build step.
	BuildCache bool
	// Hold, if set, is called with the new image's ID before Commit lets
	// a prune run, so a build can keep the image it goes on from.
	Hold func(digest.Digest)
}

// Commit stores a new image: the parent's layers plus the new one, with
// the parent's history and one entry more.
func (s *Service) Commit(ctx context.Context, o CommitOptions) (*Record, error) {
	now := s.now().UTC()
	cfg := &ConfigFile{}
	var layers []Layer
	if o.Parent != nil {
		pc, err := s.ReadConfig(o.Parent)
		if err != nil {
			return nil, err
		}
		cfg.Platform = pc.Platform
		cfg.RootFS = pc.RootFS
		cfg.History = pc.History
		layers = append(layers, o.Parent.Layers...)
		if len(cfg.History) == 0 {
			// An image without history (docker import of old, some
			// registries): one entry per layer, as history shows them.
			for range o.Parent.Layers {
				t := o.Parent.Created
				cfg.History = append(cfg.History, ocispec.History{Created: &t})
			}
		}
	} else {
		cfg.OS, cfg.Architecture, cfg.Variant = o.OS, o.Architecture, o.Variant
		if cfg.OS == "" {
			cfg.OS = "linux"
		}
		if cfg.Architecture == "" {
			cfg.Architecture = defaultPlatform()[len("linux/"):]
		}
	}
	cfg.RootFS.Type = "layers"
	cfg.Created = &now
	cfg.Author = o.Author
	cfg.Config = o.Config
	cfg.Container = o.Container
	cfg.ContainerConfig = o.ContainerConfig

	s.gc.RLock()
	defer s.gc.RUnlock()
	empty := true
	if l := o.ReuseLayer; l != nil {
		diffIDs := append(append([]digest.Digest(nil), cfg.RootFS.DiffIDs...), l.DiffID)
		reused := *l
		reused.ChainID = identity.ChainID(diffIDs)
		if !s.snaps.Has(reused.ChainID) {
			if err := s.unpack(ctx, &reused, nil, nil); err != nil {
				return nil, fmt.Errorf("unpack cached layer: %w", err)
			}
		}
		cfg.RootFS.DiffIDs = diffIDs
		layers = append(layers, reused)
		empty = false
	} else if o.Layer != nil {
		l, n, err := s.writeLayer(ctx, o.Layer)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			empty = false
			diffIDs := append(append([]digest.Digest(nil), cfg.RootFS.DiffIDs...), l.DiffID)
			l.ChainID = identity.ChainID(diffIDs)
			if err := s.unpack(ctx, &l, nil, nil); err != nil {
				return nil, fmt.Errorf("unpack committed layer: %w", err)
			}
			cfg.RootFS.DiffIDs = diffIDs
			layers = append(layers, l)
		}
	}
	cfg.History = append(cfg.History, ocispec.History{Created: &now, CreatedBy: o.CreatedBy, Author: o.Author, Comment: o.Comment, EmptyLayer: empty})
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	configDigest := digest.FromBytes(raw)
	if err := s.content.WriteBytes(ctx, configDigest, raw); err != nil {
		return nil, err
	}
	manifest, err := s.manifestFor(configDigest, int64(len(raw)), layers)
	if err != nil {
		return nil, err
	}
	manifestDigest := digest.FromBytes(manifest)
	if err := s.content.WriteBytes(ctx, manifestDigest, manifest); err != nil {
		return nil, err
	}
	rec := &Record{ID: configDigest, Manifest: manifestDigest, ManifestMediaType: string(types.DockerManifestSchema2),
		Layers: layers, Created: now, Added: now, BuildCache: o.BuildCache}
	if o.Parent != nil {
		rec.Parent = o.Parent.ID
	}
	var tagged []string
	err = s.cfg.Store.Update(func(tx *bolt.Tx) error {
		existing, err := getRecord(tx, rec.ID)
		if err != nil {
			return err
		}
		if existing == nil {
			if err := putRecord(tx, rec); err != nil {
				return err
			}
		}
		for _, t := range o.Tags {
			if err := setTag(tx, t, rec.ID, now); err != nil {
				return err
			}
			tagged = append(tagged, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, t := range tagged {
		s.event("tag", rec.ID.String(), familiar(t))
	}
	if o.Hold != nil {
		o.Hold(rec.ID)
	}
	return s.Resolve(ctx, rec.ID.String())
}

// writeLayer stores the tar that write produces, gzip-compressed, and
// returns it with its diff ID and the number of entries.
func (s *Service) writeLayer(ctx context.Context, write func(io.Writer) (int, error)) (Layer, int, error) {
	diff := digest.SHA256.Digester()
	pr, pw := io.Pipe()
	entries := make(chan int, 1)
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		n, err := write(io.MultiWriter(zw, diff.Hash()))
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		entries <- n
		pw.CloseWithError(err)
	}()
	blob, size, err := s.content.Ingest(ctx, pr)
	pr.CloseWithError(errors.New("layer ingest ended"))
	n := <-entries
	if err != nil {
		return Layer{}, 0, fmt.Errorf("store layer: %w", err)
	}
	return Layer{Digest: blob, MediaType: string(types.DockerLayer), Size: size, DiffID: diff.Digest()}, n, nil
}

// Tags checks references for a build's or commit's -t and returns them
// fully qualified (a name alone is :latest).
func Tags(refs []string) ([]string, error) {
	var out []string
	for _, t := range refs {
		named, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid reference format: %w", err))
		}
		if _, ok := named.(reference.Digested); ok {
			return nil, errdefs.InvalidArgument(errors.New("refusing to create a tag with a digest reference"))
		}
		out = append(out, reference.TagNameOnly(named).String())
	}
	return out, nil
}

// Children are the images made from id (build steps and commits).
func (s *Service) Children(ctx context.Context, id digest.Digest) ([]*Record, error) {
	var out []*Record
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		if id == "" {
			// Images without a parent (FROM scratch steps): all of them.
			recs, err := allRecords(tx)
			for _, r := range recs {
				if r.Parent == "" {
					out = append(out, r)
				}
			}
			return err
		}
		ids, err := childIDs(tx, id)
		if err != nil {
			return err
		}
		for _, c := range ids {
			r, err := getRecord(tx, c)
			if err != nil {
				return err
			}
			if r != nil && r.Parent == id {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// RWLayer is a writable overlay over an image's layers that belongs to no
// container (the builder's COPY and WORKDIR).
type RWLayer struct {
	dir    string
	Rootfs string
	Upper  string
}

// NewRWLayer mounts a writable layer over rec's layers (rec nil: over
// nothing). Release it when done.
func (s *Service) NewRWLayer(rec *Record) (*RWLayer, error) {
	base := filepath.Join(s.cfg.Root, "rw")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	dir := filepath.Join(base, hex.EncodeToString(b))
	l := &RWLayer{dir: dir, Rootfs: filepath.Join(dir, "merged"), Upper: filepath.Join(dir, "upper")}
	for _, d := range []string{l.Rootfs, l.Upper, filepath.Join(dir, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	var lowers []digest.Digest
	if rec != nil {
		lowers = rec.ChainIDs()
	}
	if err := s.snaps.Mount(l.Rootfs, lowers, l.Upper, filepath.Join(dir, "work")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return l, nil
}

// Release unmounts and removes the layer.
func (l *RWLayer) Release() error {
	if err := unix.Unmount(l.Rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", l.Rootfs, err)
	}
	if mounted(l.Rootfs) {
		// Never remove through a mount: it could reach an image layer.
		return fmt.Errorf("%s is still mounted", l.Rootfs)
	}
	return os.RemoveAll(l.dir)
}

func mounted(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// cleanRWLayers removes what a killed engined left of RWLayers.
func (s *Service) cleanRWLayers() {
	base := filepath.Join(s.cfg.Root, "rw")
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		merged := filepath.Join(base, e.Name(), "merged")
		for unix.Unmount(merged, unix.MNT_DETACH) == nil {
		}
		if mounted(merged) {
			s.cfg.Logger.Warn("build layer still mounted, left in place", "dir", merged)
			continue
		}
		os.RemoveAll(filepath.Join(base, e.Name()))
	}
}

// TagBuilt points refs at a build's result and marks it as an image of
// its own rather than build cache.
func (s *Service) TagBuilt(ctx context.Context, id digest.Digest, refs []string) error {
	now := s.now()
	err := s.cfg.Store.Update(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if rec == nil {
			return noSuchImage(id.String())
		}
		if rec.BuildCache {
			rec.BuildCache = false
			if err := putRecord(tx, rec); err != nil {
				return err
			}
		}
		for _, t := range refs {
			if err := setTag(tx, t, id, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range refs {
		s.event("tag", id.String(), familiar(t))
	}
	return nil
}

// PruneBuildCache removes the images build steps made that no tag names,
// no container uses and keep (a running build's) does not keep, and then the blobs and layers nothing else
// holds; it returns their IDs and the bytes freed.
func (s *Service) PruneBuildCache(ctx context.Context, keep func(digest.Digest) bool) ([]string, int64, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	before := s.diskUsage()
	var deleted []string
	err := s.cfg.Store.Update(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !r.BuildCache || len(r.RepoTags) > 0 || keep != nil && keep(r.ID) {
				continue
			}
			if _, used := s.inUse(ctx, r.ID); used {
				continue
			}
			if err := deleteRecord(tx, r.ID); err != nil {
				return err
			}
			deleted = append(deleted, r.ID.String())
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.collectGarbageLocked(ctx); err != nil {
		return deleted, 0, err
	}
	return deleted, max(before-s.diskUsage(), 0), nil
}

// BuildCacheRecords are the build cache's part of system df: each image
// a build step made that no tag names, with the bytes of its own (top)
// layer when no other image holds that layer (so the cache's size is
// what pruning it frees).
func (s *Service) BuildCacheRecords(ctx context.Context) ([]*enginev1.BuildCacheRecord, error) {
	var out []*enginev1.BuildCacheRecord
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		cache := func(r *Record) bool { return r.BuildCache && len(r.RepoTags) == 0 }
		kept := map[digest.Digest]bool{}
		for _, r := range recs {
			if !cache(r) {
				for _, l := range r.Layers {
					kept[l.ChainID] = true
				}
			}
		}
		counted := map[digest.Digest]bool{}
		for _, r := range recs {
			if !cache(r) {
				continue
			}
			var size int64
			if n := len(r.Layers); n > 0 {
				top := r.Layers[n-1]
				if !kept[top.ChainID] && !counted[top.ChainID] {
					size, counted[top.ChainID] = top.Unpacked, true
				}
			}
			out = append(out, &enginev1.BuildCacheRecord{Id: r.ID.Encoded(), Type: "regular", Size: size,
				CreatedAt: timestamppb.New(r.Created), LastUsedAt: timestamppb.New(r.Added)})
		}
		return nil
	})
	return out, err
}
