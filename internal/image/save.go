package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/chunkio"
	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// saveManifestEntry is one image of docker save's manifest.json.
type saveManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Save writes the images names refer to as one tar that is both an OCI
// image layout (index.json, blobs/) and a docker save archive
// (manifest.json), as current docker save does.
func (s *Service) Save(ctx context.Context, names []string, w io.Writer) error {
	type item struct {
		rec  *Record
		tags []string // fully qualified, the ones to name in the archive
	}
	var items []*item
	byID := map[digest.Digest]*item{}
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		for _, n := range names {
			rec, err := resolve(tx, n)
			if err != nil {
				return err
			}
			it := byID[rec.ID]
			if it == nil {
				it = &item{rec: rec}
				byID[rec.ID] = it
				items = append(items, it)
			}
			// A name saves that tag; an ID saves all of the image's tags.
			if named, err := reference.ParseNormalizedNamed(n); err == nil && !isIDLike(n, rec) {
				if _, ok := named.(reference.Digested); !ok {
					it.tags = append(it.tags, reference.TagNameOnly(named).String())
					continue
				}
			}
			it.tags = append(it.tags, rec.RepoTags...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	addBlob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		written[d] = true
		f, err := s.content.Open(d)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/" + d.Algorithm().String() + "/" + d.Encoded(), Mode: 0o444, Size: fi.Size(), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	index.SchemaVersion = 2
	var manifest []saveManifestEntry
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		entry := saveManifestEntry{Config: "blobs/sha256/" + it.rec.ID.Encoded(), RepoTags: []string{}}
		for _, d := range append([]digest.Digest{it.rec.ID, it.rec.Manifest}, layerDigests(it.rec)...) {
			if err := addBlob(d); err != nil {
				return fmt.Errorf("save %s: %w", it.rec.ID, err)
			}
		}
		for _, l := range it.rec.Layers {
			entry.Layers = append(entry.Layers, "blobs/sha256/"+l.Digest.Encoded())
		}
		msize, _ := s.content.Size(it.rec.Manifest)
		desc := ocispec.Descriptor{MediaType: it.rec.ManifestMediaType, Digest: it.rec.Manifest, Size: msize}
		if len(it.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range dedupe(it.tags) {
			entry.RepoTags = append(entry.RepoTags, familiar(t))
			d := desc
			d.Annotations = map[string]string{"io.containerd.image.name": t}
			if named, err := reference.ParseNamed(t); err == nil {
				if tagged, ok := named.(reference.Tagged); ok {
					d.Annotations[ocispec.AnnotationRefName] = tagged.Tag()
				}
			}
			index.Manifests = append(index.Manifests, d)
		}
		manifest = append(manifest, entry)
	}
	for name, v := range map[string]any{"index.json": index, "manifest.json": manifest, "oci-layout": ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func layerDigests(r *Record) []digest.Digest {
	out := make([]digest.Digest, len(r.Layers))
	for i, l := range r.Layers {
		out[i] = l.Digest
	}
	return out
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range list {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// chunkWriter turns a byte stream into Chunk messages.
func (s *Service) ImageSave(req *enginev1.ImageSaveRequest, stream enginev1.Engine_ImageSaveServer) error {
	if len(req.GetNames()) == 0 {
		return errdefs.InvalidArgument(errors.New("no image names given"))
	}
	// Check the names first, so a bad one is an error status, not a cut tar.
	for _, n := range req.GetNames() {
		if _, err := s.Resolve(stream.Context(), n); err != nil {
			return err
		}
	}
	bw := chunkio.NewWriter(func(b []byte) error { return stream.Send(&enginev1.Chunk{Data: b}) })
	if err := s.Save(stream.Context(), req.GetNames(), bw); err != nil {
		return err
	}
	return bw.Flush()
}
