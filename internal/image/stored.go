package image

import (
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/engined/engined/internal/content"
)

// storedImage is an image in the content store as a go-containerregistry
// image, for push and save.
type storedImage struct {
	content *content.Store
	rec     *Record
}

func (s *Service) v1Image(rec *Record) (v1.Image, error) {
	return partial.CompressedToImage(&storedImage{content: s.content, rec: rec})
}

func (i *storedImage) RawConfigFile() ([]byte, error) { return i.content.ReadAll(i.rec.ID) }

func (i *storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(i.rec.ManifestMediaType), nil
}

func (i *storedImage) RawManifest() ([]byte, error) { return i.content.ReadAll(i.rec.Manifest) }

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d := digest.Digest(h.String())
	for _, l := range i.rec.Layers {
		if l.Digest == d {
			return &storedLayer{content: i.content, l: l}, nil
		}
	}
	if d == i.rec.ID {
		return &storedLayer{content: i.content, l: Layer{Digest: d, MediaType: string(types.DockerConfigJSON)}}, nil
	}
	return nil, fmt.Errorf("image %s has no blob %s", i.rec.ID, d)
}

type storedLayer struct {
	content *content.Store
	l       Layer
}

func (l *storedLayer) Digest() (v1.Hash, error)           { return v1.NewHash(l.l.Digest.String()) }
func (l *storedLayer) Compressed() (io.ReadCloser, error) { return l.content.Open(l.l.Digest) }
func (l *storedLayer) Size() (int64, error)               { return l.content.Size(l.l.Digest) }
func (l *storedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.l.MediaType), nil
}

// manifestFor builds a Docker schema 2 manifest for an image that arrived
// without one (docker load, import), so push and save treat all alike.
func (s *Service) manifestFor(configDigest digest.Digest, configSize int64, layers []Layer) ([]byte, error) {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: configSize, Digest: mustHash(configDigest)},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.MediaType(l.MediaType), Size: l.Size, Digest: mustHash(l.Digest)})
	}
	return json.Marshal(m)
}

func mustHash(d digest.Digest) v1.Hash {
	h, _ := v1.NewHash(d.String())
	return h
}
