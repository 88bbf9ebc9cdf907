// Package build is the classic builder (docker build without BuildKit)
// and docker commit. Dockerfiles are parsed with BuildKit's parser
// packages; every step runs on the engine's own machinery: a RUN is a
// container on a shim, and each step's result is an image committed from
// its parent plus the step's layer, so the build cache is dockerd's: a
// step is a hit when a child of the current image was made by the same
// instruction with the same config.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/engined/engined/internal/container"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/image"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Images is what the builder needs of the image store.
type Images interface {
	Resolve(ctx context.Context, name string) (*image.Record, error)
	ReadConfig(r *image.Record) (*image.ConfigFile, error)
	Commit(ctx context.Context, o image.CommitOptions) (*image.Record, error)
	Children(ctx context.Context, id digest.Digest) ([]*image.Record, error)
	NewRWLayer(rec *image.Record) (*image.RWLayer, error)
	Pull(ctx context.Context, req *enginev1.ImagePullRequest, emit image.Emit) error
	TagBuilt(ctx context.Context, id digest.Digest, refs []string) error
	PruneBuildCache(ctx context.Context, keep func(digest.Digest) bool) ([]string, int64, error)
}

// Containers is what the builder needs of the container service.
type Containers interface {
	Create(ctx context.Context, req *enginev1.ContainerCreateRequest) (*enginev1.ContainerCreateResponse, error)
	RunAttached(ctx context.Context, id string, out func(stream int32, data []byte) error) (int, error)
	LayerDiff(ctx context.Context, ref string, w io.Writer) (int, error)
	Remove(ctx context.Context, ref string, force bool) error
	ForCommit(ref string) (*container.CommitSource, error)
	Pause(ctx context.Context, ref string) error
	Unpause(ctx context.Context, ref string) error
}

// Config wires the service.
type Config struct {
	Images     Images
	Containers Containers
	// TmpDir holds build contexts while they are used; it is emptied at
	// start.
	TmpDir string
	Logger *slog.Logger
	// Events, if set, receives docker commit's container commit events.
	Events *events.Bus
}

// Service serves Build, BuildPrune and ContainerCommit.
type Service struct {
	cfg Config

	mu sync.Mutex
	// inUse counts the running builds' uses of each image (their
	// stages' current images), which build prune leaves alone.
	inUse map[digest.Digest]int
}

// use marks id as a running build's until the returned func is called.
func (s *Service) use(id digest.Digest) func() {
	s.mu.Lock()
	s.inUse[id]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.inUse[id]--; s.inUse[id] <= 0 {
			delete(s.inUse, id)
		}
		s.mu.Unlock()
	}
}

func (s *Service) used(id digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse[id] > 0
}

// New returns the service, clearing contexts a killed engined left.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.RemoveAll(cfg.TmpDir); err != nil {
		return nil, fmt.Errorf("clear build contexts: %w", err)
	}
	if err := os.MkdirAll(cfg.TmpDir, 0o700); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, inUse: map[digest.Digest]int{}}, nil
}

// Build is the Engine method: options first, then the context.
func (s *Service) Build(stream enginev1.Engine_BuildServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return errdefs.InvalidArgument(errors.New("build: the first message must carry options"))
	}
	dir, err := os.MkdirTemp(s.cfg.TmpDir, "ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "context.tar"))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(first.GetData()); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(m.GetData()); err != nil {
			return fmt.Errorf("store build context: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out := &output{send: stream.Send, quiet: opts.GetQuiet()}
	b := &builder{svc: s, opts: opts, out: out, workDir: dir}
	defer b.releaseImages()
	id, err := b.run(ctx, f)
	if err != nil {
		// Errors before the build started (bad options, a missing
		// Dockerfile) are the request's: a status, as dockerd answers
		// them before it streams. Later ones go in-band.
		if !out.started {
			return err
		}
		return out.fail(err)
	}
	if opts.GetQuiet() {
		return stream.Send(&enginev1.BuildMessage{Stream: id.String() + "\n"})
	}
	return nil
}

// BuildPrune removes the build cache.
func (s *Service) BuildPrune(ctx context.Context, req *enginev1.BuildPruneRequest) (*enginev1.BuildPruneResponse, error) {
	if req.GetKeepStorage() != 0 {
		return nil, errdefs.InvalidArgument(errors.New("build prune: keep-storage is not supported"))
	}
	if f := strings.TrimSpace(req.GetFilters()); f != "" && f != "{}" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("build prune: filters are not supported: %s", f))
	}
	deleted, reclaimed, err := s.cfg.Images.PruneBuildCache(ctx, s.used)
	if err != nil {
		return nil, err
	}
	return &enginev1.BuildPruneResponse{CachesDeleted: deleted, SpaceReclaimed: reclaimed}, nil
}

// output sends the build's output as dockerd writes it.
type output struct {
	send    func(*enginev1.BuildMessage) error
	quiet   bool
	started bool
}

func (o *output) printf(format string, args ...any) {
	o.write(fmt.Sprintf(format, args...))
}

func (o *output) write(s string) {
	o.started = true
	if o.quiet || s == "" {
		return
	}
	o.send(&enginev1.BuildMessage{Stream: s})
}

// aux reports a stage's image; -q does not suppress it (the CLI's
// --iidfile reads it), as with dockerd.
func (o *output) aux(id digest.Digest) {
	o.started = true
	o.send(&enginev1.BuildMessage{AuxId: id.String()})
}

// fail sends the error that ended the build in-band, with a code where
// it has one (a RUN's exit status), and ends the stream.
func (o *output) fail(err error) error {
	var se *stepError
	code := int32(0)
	if errors.As(err, &se) {
		code = int32(se.code)
	}
	if sendErr := o.send(&enginev1.BuildMessage{Error: err.Error(), ErrorCode: code}); sendErr != nil {
		return sendErr
	}
	return nil
}

// stepError is a RUN that exited non-zero.
type stepError struct {
	msg  string
	code int
}

func (e *stepError) Error() string { return e.msg }
