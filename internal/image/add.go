package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/errdefs"
)

// ingestLayer stores a layer blob from a file as it is (compressed or
// not) and names its media type from its content.
func (s *Service) ingestLayer(ctx context.Context, r io.Reader) (Layer, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	mt := types.DockerUncompressedLayer
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		mt = types.DockerLayer
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		mt = types.OCILayerZStd
	}
	d, n, err := s.content.Ingest(ctx, br)
	if err != nil {
		return Layer{}, err
	}
	return Layer{Digest: d, MediaType: string(mt), Size: n}, nil
}

// addImage records an image whose layer blobs are already stored: it
// checks them against the config's diff IDs while unpacking, writes the
// config and a manifest, and tags it. The caller holds s.gc shared.
func (s *Service) addImage(ctx context.Context, rawConfig []byte, layers []Layer, tags []string) (*Record, error) {
	cfg, err := v1.ParseConfigFile(bytesReader(rawConfig))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid image config: %w", err))
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("image config lists %d layers but %d were given", len(cfg.RootFS.DiffIDs), len(layers)))
	}
	diffIDs := make([]digest.Digest, len(layers))
	for i := range layers {
		diffIDs[i] = digest.Digest(cfg.RootFS.DiffIDs[i].String())
		if err := diffIDs[i].Validate(); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("image config diff ID %d: %w", i, err))
		}
	}
	chain := identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))
	for i := range layers {
		layers[i].DiffID, layers[i].ChainID = diffIDs[i], chain[i]
		if s.snaps.Has(chain[i]) {
			// The snapshot was verified when it was made, but this blob
			// was not: it must be the layer the config names, or the image
			// would record (and save and push) bytes that are not its
			// layer, such as a host file a hostile archive linked to.
			if err := s.verifyDiffID(ctx, layers[i]); err != nil {
				return nil, errdefs.InvalidArgument(err)
			}
			layers[i].Unpacked = s.unpackedSize(chain[i])
			continue
		}
		if err := s.unpack(ctx, &layers[i], nil, nil); err != nil {
			return nil, badLayer(err)
		}
	}
	configDigest := digest.FromBytes(rawConfig)
	if err := s.content.WriteBytes(ctx, configDigest, rawConfig); err != nil {
		return nil, err
	}
	manifest, err := s.manifestFor(configDigest, int64(len(rawConfig)), layers)
	if err != nil {
		return nil, err
	}
	manifestDigest := digest.FromBytes(manifest)
	if err := s.content.WriteBytes(ctx, manifestDigest, manifest); err != nil {
		return nil, err
	}
	rec := &Record{ID: configDigest, Manifest: manifestDigest, ManifestMediaType: string(types.DockerManifestSchema2),
		Layers: layers, Created: cfg.Created.Time, Added: s.now()}
	err = s.cfg.Store.Update(func(tx *bolt.Tx) error {
		existing, err := getRecord(tx, rec.ID)
		if err != nil {
			return err
		}
		if existing != nil {
			// Keep the registry manifest and names it already has.
			rec = existing
		} else if err := putRecord(tx, rec); err != nil {
			return err
		}
		for _, t := range tags {
			if err := setTag(tx, t, rec.ID, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Resolve(ctx, rec.ID.String())
}

// badLayer makes an unpack error that is the layer's fault (not a tar,
// not gzip, cut short, not its diff ID) a bad request: load and import
// layers come from the client.
func badLayer(err error) error {
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrHeader) ||
		errors.Is(err, gzip.ErrChecksum) || errors.Is(err, errCorruptLayer) {
		return errdefs.InvalidArgument(err)
	}
	return err
}

// verifyDiffID checks that a stored layer blob uncompresses to l.DiffID.
func (s *Service) verifyDiffID(ctx context.Context, l Layer) error {
	f, err := s.content.Open(l.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	plain, err := decompress(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer plain.Close()
	verifier := l.DiffID.Algorithm().Digester()
	if _, err := io.Copy(verifier.Hash(), readerCtx{ctx, plain}); err != nil {
		return fmt.Errorf("read layer %s: %w", l.Digest, err)
	}
	if got := verifier.Digest(); got != l.DiffID {
		return fmt.Errorf("layer %s: uncompressed digest %s, config says %s: %w", l.Digest, got, l.DiffID, errCorruptLayer)
	}
	return nil
}

// readerCtx stops a long read when ctx ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// receiveToFile writes a client stream into a temporary file.
func (s *Service) receiveToFile(ctx context.Context, first []byte, recv func() ([]byte, error)) (*os.File, error) {
	dir := s.tmpDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "upload-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if _, err := f.Write(first); err != nil {
		return fail(err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		data, err := recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if _, err := f.Write(data); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return f, nil
}
