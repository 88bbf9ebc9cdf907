package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/compression"
	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// maxConcurrentDownloads matches dockerd's default.
const maxConcurrentDownloads = 3

// progressInterval limits how often a layer reports bytes.
const progressInterval = 100 * time.Millisecond

// Emit sends one progress message to the client; it is called from one
// goroutine at a time.
type Emit func(*enginev1.Progress) error

// PullRef parses what the client asked for: image plus an optional tag or
// digest, normalised as Docker does (busybox -> docker.io/library/busybox:latest).
func PullRef(image, tag string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid reference format: %q: %w", image, err))
	}
	if tag != "" {
		if d, err := digest.Parse(tag); err == nil {
			named, err = reference.WithDigest(reference.TrimNamed(named), d)
			if err != nil {
				return nil, errdefs.InvalidArgument(err)
			}
		} else {
			named, err = reference.WithTag(reference.TrimNamed(named), tag)
			if err != nil {
				return nil, errdefs.InvalidArgument(fmt.Errorf("invalid tag %q: %w", tag, err))
			}
		}
	}
	return reference.TagNameOnly(named), nil
}

// remoteOptions are the go-containerregistry options for one request.
func (s *Service) remoteOptions(ctx context.Context, auth *enginev1.RegistryAuth, platform *v1.Platform) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(authenticator(auth)), remote.WithJobs(maxConcurrentDownloads)}
	if platform != nil {
		opts = append(opts, remote.WithPlatform(*platform))
	}
	return opts
}

func authenticator(a *enginev1.RegistryAuth) authn.Authenticator {
	if a == nil || (a.GetUsername() == "" && a.GetPassword() == "" && a.GetIdentityToken() == "" && a.GetRegistryToken() == "") {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: a.GetUsername(), Password: a.GetPassword(),
		IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken(),
	})
}

// candidates are the repositories to try for named: mirrors first for
// docker.io images, then the image's own registry.
func (s *Service) candidates(named reference.Named) ([]name.Repository, error) {
	domain := reference.Domain(named)
	path := reference.Path(named)
	var out []name.Repository
	if domain == "docker.io" {
		for _, m := range s.cfg.Mirrors {
			u, err := url.Parse(m)
			if err != nil || u.Host == "" {
				continue
			}
			var opts []name.Option
			if u.Scheme == "http" || s.isInsecure(u.Host) {
				opts = append(opts, name.Insecure)
			}
			repo, err := name.NewRepository(u.Host+"/"+path, opts...)
			if err == nil {
				out = append(out, repo)
			}
		}
	}
	var opts []name.Option
	if s.isInsecure(domain) {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(domain+"/"+path, opts...)
	if err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	return append(out, repo), nil
}

func refIn(repo name.Repository, named reference.Named) name.Reference {
	if c, ok := named.(reference.Canonical); ok {
		return repo.Digest(c.Digest().String())
	}
	return repo.Tag(named.(reference.Tagged).Tag())
}

// Pull fetches an image and reports progress as docker pull shows it.
// Errors before the first message mean nothing happened; the caller maps
// them to HTTP statuses.
func (s *Service) Pull(ctx context.Context, req *enginev1.ImagePullRequest, emit Emit) error {
	named, err := PullRef(req.GetImage(), req.GetTag())
	if err != nil {
		return err
	}
	platStr := req.GetPlatform()
	if platStr == "" {
		platStr = defaultPlatform()
	}
	platform, err := v1.ParsePlatform(platStr)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid platform %q: %w", platStr, err))
	}
	repos, err := s.candidates(named)
	if err != nil {
		return err
	}
	opts := s.remoteOptions(ctx, req.GetAuth(), platform)
	var desc *remote.Descriptor
	var errs []error
	for _, repo := range repos {
		desc, err = remote.Get(refIn(repo, named), opts...)
		if err == nil {
			break
		}
		errs = append(errs, err)
		s.cfg.Logger.Debug("pull: registry failed", "repo", repo.String(), "err", err)
	}
	if desc == nil {
		return pullError(named, errs)
	}
	img, err := desc.Image()
	if err != nil {
		return pullError(named, []error{err})
	}

	s.gc.RLock()
	defer s.gc.RUnlock()
	e := &serialEmit{emit: emit}
	familiar := reference.FamiliarString(named)
	var tagLabel string
	if t, ok := named.(reference.Tagged); ok {
		tagLabel = t.Tag()
	} else {
		tagLabel = named.(reference.Canonical).Digest().String()
	}
	if err := e.send(&enginev1.Progress{Id: tagLabel, Status: "Pulling from " + reference.Path(named)}); err != nil {
		return err
	}
	rec, err := s.fetchImage(ctx, img, e)
	if err != nil {
		return err
	}
	repoDigest := reference.TrimNamed(named).String() + "@" + desc.Digest.String()
	var tagRef string
	if t, ok := named.(reference.Tagged); ok {
		tagRef = t.String()
	}
	upToDate, err := s.commit(rec, tagRef, repoDigest)
	if err != nil {
		return err
	}
	if err := e.send(&enginev1.Progress{Status: "Digest: " + desc.Digest.String()}); err != nil {
		return err
	}
	status := "Downloaded newer image for " + familiar
	if upToDate {
		status = "Image is up to date for " + familiar
	}
	return e.send(&enginev1.Progress{Status: "Status: " + status})
}

func pullError(named reference.Named, errs []error) error {
	// Prefer what a registry said over a network failure of a later one.
	var terr *transport.Error
	for _, err := range errs {
		if errors.As(err, &terr) {
			break
		}
	}
	if terr == nil {
		return fmt.Errorf("pull %s: %w", reference.FamiliarString(named), errors.Join(errs...))
	}
	switch {
	case terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
		what := reference.FamiliarString(named)
		return errdefs.NotFound(fmt.Errorf("manifest for %s not found: manifest unknown: %s", what, terr.Error()))
	case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden || hasCode(terr, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
		return errdefs.NotFound(fmt.Errorf("pull access denied for %s, repository does not exist or may require 'docker login': %s", reference.FamiliarName(named), terr.Error()))
	}
	return fmt.Errorf("pull %s: %w", reference.FamiliarString(named), terr)
}

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// serialEmit lets the layer goroutines report through one stream.
type serialEmit struct {
	mu   sync.Mutex
	emit Emit
	err  error
}

func (e *serialEmit) send(p *enginev1.Progress) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	if err := e.emit(p); err != nil {
		e.err = err
	}
	return e.err
}

// fetchImage downloads and unpacks what is missing and returns the record
// to commit.
func (s *Service) fetchImage(ctx context.Context, img v1.Image, e *serialEmit) (*Record, error) {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	if mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed {
		return nil, errdefs.InvalidArgument(errors.New("image uses Docker manifest schema 1, which is no longer supported"))
	}
	manifest, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfgDigest := digest.Digest(manifest.Config.Digest.String())
	if got := digest.FromBytes(rawConfig); got != cfgDigest {
		return nil, fmt.Errorf("image config is corrupt: digest %s, manifest says %s", got, cfgDigest)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(manifest.Layers) {
		return nil, fmt.Errorf("image has %d layers but its config lists %d", len(manifest.Layers), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]Layer, len(manifest.Layers))
	diffIDs := make([]digest.Digest, len(manifest.Layers))
	for i, l := range manifest.Layers {
		diffIDs[i] = digest.Digest(cfg.RootFS.DiffIDs[i].String())
		layers[i] = Layer{Digest: digest.Digest(l.Digest.String()), MediaType: string(l.MediaType), Size: l.Size, DiffID: diffIDs[i]}
	}
	chain := identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))
	for i := range layers {
		layers[i].ChainID = chain[i]
	}

	// Announce every layer, then fetch what is missing, a few at a time.
	for _, l := range layers {
		status := "Pulling fs layer"
		if s.snaps.Has(l.ChainID) {
			status = "Already exists"
		}
		if err := e.send(&enginev1.Progress{Id: shortHex(l.Digest), Status: status}); err != nil {
			return nil, err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxConcurrentDownloads)
	for i := range layers {
		l := &layers[i]
		if s.snaps.Has(l.ChainID) {
			l.Unpacked = s.unpackedSize(l.ChainID)
			continue
		}
		g.Go(func() error {
			remoteLayer, err := img.LayerByDigest(v1.Hash{Algorithm: l.Digest.Algorithm().String(), Hex: l.Digest.Encoded()})
			if err != nil {
				return err
			}
			return s.fetchLayer(gctx, l, func() (io.ReadCloser, error) { return remoteLayer.Compressed() }, e)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := s.content.WriteBytes(ctx, cfgDigest, rawConfig); err != nil {
		return nil, err
	}
	manDigest := digest.FromBytes(rawManifest)
	if err := s.content.WriteBytes(ctx, manDigest, rawManifest); err != nil {
		return nil, err
	}
	return &Record{
		ID: cfgDigest, Manifest: manDigest, ManifestMediaType: string(mt),
		Layers: layers, Created: cfg.Created.Time, Added: s.now(),
	}, nil
}

// fetchLayer downloads a layer blob (unless stored) and unpacks it into
// its snapshot, verifying both digests. A download is unpacked as it
// arrives: the snapshot is committed only once the blob is stored and
// verified, and a layer no longer waits for its whole download before
// its extraction starts (with three downloads at a time, the fourth
// layer waited for the first's extraction too).
func (s *Service) fetchLayer(ctx context.Context, l *Layer, open func() (io.ReadCloser, error), e *serialEmit) error {
	id := shortHex(l.Digest)
	if s.content.Has(l.Digest) {
		if err := s.unpack(ctx, l, nil, func(n int64) {
			e.send(&enginev1.Progress{Id: id, Status: "Extracting", Current: n, Total: l.Size})
		}); err != nil {
			return err
		}
		return e.send(&enginev1.Progress{Id: id, Status: "Pull complete"})
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("download layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	stored := make(chan error, 1)
	go func() {
		last := time.Time{}
		// rc is go-containerregistry's: it checks the digest and size.
		err := s.content.WriteVerified(ctx, l.Digest, l.Size, io.TeeReader(rc, pw), func(n int64) {
			if now := time.Now(); now.Sub(last) >= progressInterval || n == l.Size {
				last = now
				e.send(&enginev1.Progress{Id: id, Status: "Downloading", Current: n, Total: l.Size})
			}
		})
		if err == nil {
			e.send(&enginev1.Progress{Id: id, Status: "Verifying Checksum"})
			e.send(&enginev1.Progress{Id: id, Status: "Download complete"})
		}
		// The unpack reads to the end only once the blob is stored: a
		// failed download or digest is the error its reads end with.
		pw.CloseWithError(err)
		stored <- err
	}()
	err = s.unpack(ctx, l, pr, nil)
	// The rest of the download, if the unpack stopped short (a hostile
	// or corrupt archive; a snapshot another pull made meanwhile): the
	// blob is stored all the same, as before an unpack, and a corrupt
	// blob is the error to report, not what its extraction made of it.
	io.Copy(io.Discard, pr)
	if serr := <-stored; serr != nil {
		return serr
	}
	if err != nil {
		return err
	}
	if err := e.send(&enginev1.Progress{Id: id, Status: "Extracting", Current: l.Size, Total: l.Size}); err != nil {
		return err
	}
	return e.send(&enginev1.Progress{Id: id, Status: "Pull complete"})
}

// unpack extracts a layer into the snapshot for its chain ID and checks
// the uncompressed stream against the layer's diff ID. It reads blob, or
// the stored blob if blob is nil.
func (s *Service) unpack(ctx context.Context, l *Layer, blob io.Reader, progress func(int64)) error {
	return s.snaps.Create(ctx, l.ChainID, func(ctx context.Context, dir string) error {
		if blob == nil {
			f, err := s.content.Open(l.Digest)
			if err != nil {
				return err
			}
			defer f.Close()
			blob = f
		}
		counted := &countingReader{r: blob, every: progressInterval, report: progress}
		plain, err := decompress(bufio.NewReaderSize(counted, 256<<10))
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		defer plain.Close()
		verifier := l.DiffID.Algorithm().Digester()
		tee := io.TeeReader(plain, verifier.Hash())
		n, err := archive.Apply(ctx, dir, tee, archive.Options{Overlay: true})
		if err != nil {
			return fmt.Errorf("unpack layer %s: %w", l.Digest, err)
		}
		// Read tar padding past the end marker so the digest covers it all.
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return fmt.Errorf("read layer %s: %w", l.Digest, err)
		}
		if got := verifier.Digest(); got != l.DiffID {
			return fmt.Errorf("layer %s: uncompressed digest %s, config says %s: %w", l.Digest, got, l.DiffID, errCorruptLayer)
		}
		l.Unpacked = n
		return writeSize(dir, n)
	})
}

// errCorruptLayer: a layer's content is not what its digest or diff ID
// says.
var errCorruptLayer = errors.New("layer is corrupt")

type countingReader struct {
	r      io.Reader
	n      int64
	last   time.Time
	every  time.Duration
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.report != nil {
		if now := time.Now(); now.Sub(c.last) >= c.every {
			c.last = now
			c.report(c.n)
		}
	}
	return n, err
}

// decompress detects gzip and zstd by their magic numbers; anything else
// is taken as a plain tar.
func decompress(r *bufio.Reader) (io.ReadCloser, error) {
	return compression.Decompress(r)
}

// commit records the image and points its tag at it. upToDate reports
// that the tag already named this image.
func (s *Service) commit(rec *Record, tagRef, repoDigest string) (upToDate bool, err error) {
	err = s.cfg.Store.Update(func(tx *bolt.Tx) error {
		existing, err := getRecord(tx, rec.ID)
		if err != nil {
			return err
		}
		if existing != nil {
			existing.Layers = rec.Layers
			rec = existing
		}
		if repoDigest != "" && !contains(rec.RepoDigests, repoDigest) {
			rec.RepoDigests = append(rec.RepoDigests, repoDigest)
		}
		if err := putRecord(tx, rec); err != nil {
			return err
		}
		if tagRef == "" {
			upToDate = existing != nil
			return nil
		}
		if cur, err := getRef(tx, tagRef); err != nil {
			return err
		} else if cur == rec.ID {
			upToDate = true
			return nil
		}
		return setTag(tx, tagRef, rec.ID, s.now())
	})
	return upToDate, err
}

func shortHex(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}
