package image

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Import makes a one-layer image from a root filesystem tar (plain, gzip
// or zstd), as docker import does.
func (s *Service) Import(ctx context.Context, opts *enginev1.ImageImportOptions, rootfs io.Reader) (*Record, error) {
	var tags []string
	if opts.GetRepo() != "" {
		named, err := reference.ParseNormalizedNamed(opts.GetRepo())
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid reference format: %q: %w", opts.GetRepo(), err))
		}
		if opts.GetTag() != "" {
			if named, err = reference.WithTag(reference.TrimNamed(named), opts.GetTag()); err != nil {
				return nil, errdefs.InvalidArgument(err)
			}
		}
		tags = []string{reference.TagNameOnly(named).String()}
	}
	cfg := v1.ConfigFile{OS: "linux", Architecture: strings.TrimPrefix(defaultPlatform(), "linux/"), Created: v1.Time{Time: s.now().UTC()}}
	if p := opts.GetPlatform(); p != "" {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid platform %q: %w", p, err))
		}
		cfg.OS, cfg.Architecture, cfg.Variant = plat.OS, plat.Architecture, plat.Variant
	}
	if err := applyChanges(&cfg.Config, opts.GetChanges()); err != nil {
		return nil, err
	}
	plain, err := decompress(bufio.NewReader(rootfs))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read root filesystem: %w", err))
	}
	defer plain.Close()

	// Compress while computing the diff ID, in one pass.
	s.gc.RLock()
	defer s.gc.RUnlock()
	diff := digest.SHA256.Digester()
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		_, err := io.Copy(zw, io.TeeReader(plain, diff.Hash()))
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	blob, size, err := s.content.Ingest(ctx, pr)
	pr.CloseWithError(err)
	if err != nil {
		return nil, fmt.Errorf("import root filesystem: %w", err)
	}
	comment := opts.GetMessage()
	if comment == "" {
		comment = "Imported from -"
	}
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{mustHash(diff.Digest())}}
	cfg.History = []v1.History{{Created: cfg.Created, Comment: comment}}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return s.addImage(ctx, raw, []Layer{{Digest: blob, MediaType: string(types.DockerLayer), Size: size}}, tags)
}

// applyChanges applies docker import --change instructions (CMD,
// ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL).
func applyChanges(c *v1.Config, changes []string) error {
	for _, ch := range changes {
		instr, arg, _ := strings.Cut(strings.TrimSpace(ch), " ")
		arg = strings.TrimSpace(arg)
		list := func() []string {
			var l []string
			if strings.HasPrefix(arg, "[") && json.Unmarshal([]byte(arg), &l) == nil {
				return l
			}
			return []string{"/bin/sh", "-c", arg}
		}
		switch strings.ToUpper(instr) {
		case "CMD":
			c.Cmd = list()
		case "ENTRYPOINT":
			c.Entrypoint = list()
		case "ENV":
			k, v, ok := strings.Cut(arg, "=")
			if !ok {
				k, v, _ = strings.Cut(arg, " ")
			}
			c.Env = append(c.Env, k+"="+strings.TrimSpace(v))
		case "WORKDIR":
			c.WorkingDir = arg
		case "USER":
			c.User = arg
		case "STOPSIGNAL":
			c.StopSignal = arg
		case "LABEL":
			k, v, _ := strings.Cut(arg, "=")
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			c.Labels[k] = strings.Trim(v, `"`)
		case "EXPOSE":
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(arg) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				c.ExposedPorts[p] = struct{}{}
			}
		case "VOLUME":
			if c.Volumes == nil {
				c.Volumes = map[string]struct{}{}
			}
			for _, v := range list() {
				c.Volumes[v] = struct{}{}
			}
		default:
			return errdefs.InvalidArgument(fmt.Errorf("%s is not a valid change command", instr))
		}
	}
	return nil
}

func (s *Service) ImageImport(stream enginev1.Engine_ImageImportServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f, err := s.receiveToFile(ctx, first.GetData(), func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetData(), err
	})
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec, err := s.Import(ctx, first.GetOptions(), f)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&enginev1.ImageImportResponse{Id: rec.ID.String()})
}
