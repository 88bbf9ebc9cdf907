package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/compression"
	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Load reads a docker save archive or an OCI image layout tar and returns
// what it loaded, as docker load prints it.
func (s *Service) Load(ctx context.Context, tarball io.Reader) ([]string, error) {
	dir, err := os.MkdirTemp(s.tmpDir(), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Unpacking confines every name to dir, so a hostile archive cannot
	// reach outside it.
	// docker load takes the archive compressed as dockerd does (a
	// .tar.gz, .tar.xz, ...).
	plain, err := compression.Decompress(tarball)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read image archive: %w", err))
	}
	defer plain.Close()
	if _, err := archive.Apply(ctx, dir, plain, archive.Options{NoLchown: true}); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read image archive: %w", err))
	}
	// The archive's own symlinks are followed as a tool reading it from
	// its root would, never out of it: a Config or a layer named through
	// a link to /etc/shadow reads the archive's /etc/shadow or nothing.
	root, err := archive.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	s.gc.RLock()
	defer s.gc.RUnlock()
	if _, err := root.Lstat("manifest.json"); err == nil {
		return s.loadDockerArchive(ctx, root)
	}
	if _, err := root.Lstat("index.json"); err == nil {
		return s.loadOCILayout(ctx, root)
	}
	return nil, errdefs.InvalidArgument(errors.New("not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)"))
}

// readFile reads the regular file p of the archive.
func readFile(root *archive.Root, p string) ([]byte, error) {
	f, err := root.OpenFile(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// ingestFile stores the archive's file p as a layer blob.
func (s *Service) ingestFile(ctx context.Context, root *archive.Root, p string) (Layer, error) {
	f, err := root.OpenFile(p)
	if err != nil {
		return Layer{}, err
	}
	defer f.Close()
	return s.ingestLayer(ctx, f)
}

func (s *Service) loadDockerArchive(ctx context.Context, root *archive.Root) ([]string, error) {
	raw, err := readFile(root, "manifest.json")
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("manifest.json: %w", err))
	}
	var entries []saveManifestEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid manifest.json: %w", err))
	}
	var loaded []string
	for _, e := range entries {
		config, err := readFile(root, e.Config)
		if err != nil {
			return loaded, errdefs.InvalidArgument(fmt.Errorf("image config %s: %w", e.Config, err))
		}
		var layers []Layer
		for _, lp := range e.Layers {
			l, err := s.ingestFile(ctx, root, lp)
			if err != nil {
				return loaded, errdefs.InvalidArgument(fmt.Errorf("layer %s: %w", lp, err))
			}
			layers = append(layers, l)
		}
		var tags []string
		for _, t := range e.RepoTags {
			named, err := reference.ParseNormalizedNamed(t)
			if err != nil {
				return loaded, errdefs.InvalidArgument(fmt.Errorf("invalid tag %q in manifest.json: %w", t, err))
			}
			tags = append(tags, reference.TagNameOnly(named).String())
		}
		rec, err := s.addImage(ctx, config, layers, tags)
		if err != nil {
			return loaded, err
		}
		loaded = append(loaded, loadedLines(rec.ID, e.RepoTags)...)
	}
	return loaded, nil
}

func loadedLines(id digest.Digest, tags []string) []string {
	if len(tags) == 0 {
		return []string{"Loaded image ID: " + id.String()}
	}
	var out []string
	for _, t := range tags {
		out = append(out, "Loaded image: "+familiar(t))
	}
	return out
}

func (s *Service) loadOCILayout(ctx context.Context, root *archive.Root) ([]string, error) {
	var loaded []string
	var walk func(desc ocispec.Descriptor, tag string, depth int) error
	readBlob := func(d digest.Digest) ([]byte, error) {
		if err := d.Validate(); err != nil {
			return nil, err
		}
		return readFile(root, path.Join("blobs", d.Algorithm().String(), d.Encoded()))
	}
	walk = func(desc ocispec.Descriptor, tag string, depth int) error {
		if depth > 4 {
			return errors.New("OCI index nesting too deep")
		}
		raw, err := readBlob(desc.Digest)
		if err != nil {
			return fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		if digest.FromBytes(raw) != desc.Digest {
			return fmt.Errorf("blob %s is corrupt", desc.Digest)
		}
		switch desc.MediaType {
		case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
			var idx ocispec.Index
			if err := json.Unmarshal(raw, &idx); err != nil {
				return err
			}
			for _, m := range idx.Manifests {
				if m.Platform != nil && m.Platform.OS+"/"+m.Platform.Architecture != defaultPlatform() {
					continue
				}
				return walk(m, tag, depth+1)
			}
			return fmt.Errorf("index %s has no manifest for %s", desc.Digest, defaultPlatform())
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		config, err := readBlob(m.Config.Digest)
		if err != nil {
			return fmt.Errorf("config %s: %w", m.Config.Digest, err)
		}
		if digest.FromBytes(config) != m.Config.Digest {
			return fmt.Errorf("config %s is corrupt", m.Config.Digest)
		}
		var layers []Layer
		for _, ld := range m.Layers {
			if err := ld.Digest.Validate(); err != nil {
				return fmt.Errorf("layer %s: %w", ld.Digest, err)
			}
			l, err := s.ingestFile(ctx, root, path.Join("blobs", ld.Digest.Algorithm().String(), ld.Digest.Encoded()))
			if err != nil {
				return fmt.Errorf("layer %s: %w", ld.Digest, err)
			}
			if l.Digest != ld.Digest {
				return fmt.Errorf("layer %s is corrupt: its content has digest %s", ld.Digest, l.Digest)
			}
			layers = append(layers, l)
		}
		var tags []string
		if tag != "" {
			tags = []string{tag}
		}
		rec, err := s.addImage(ctx, config, layers, tags)
		if err != nil {
			return err
		}
		loaded = append(loaded, loadedLines(rec.ID, tags)...)
		return nil
	}
	raw, err := readFile(root, "index.json")
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("index.json: %w", err))
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid index.json: %w", err))
	}
	for _, m := range idx.Manifests {
		tag := ""
		if n := m.Annotations["io.containerd.image.name"]; n != "" {
			if named, err := reference.ParseNormalizedNamed(n); err == nil {
				tag = reference.TagNameOnly(named).String()
			}
		}
		if err := walk(m, tag, 0); err != nil {
			return loaded, errdefs.InvalidArgument(err)
		}
	}
	return loaded, nil
}

func (s *Service) ImageLoad(stream enginev1.Engine_ImageLoadServer) error {
	ctx := stream.Context()
	f, err := s.receiveToFile(ctx, nil, func() ([]byte, error) {
		c, err := stream.Recv()
		return c.GetData(), err
	})
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	loaded, err := s.Load(ctx, f)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&enginev1.ImageLoadResponse{Loaded: loaded})
}
