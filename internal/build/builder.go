package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/opencontainers/go-digest"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/compression"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/image"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type runConfig = dockerspec.DockerOCIImageConfig

// builder is one build.
type builder struct {
	svc     *Service
	opts    *enginev1.BuildOptions
	out     *output
	workDir string
	context string // the extracted context
	tags    []string

	stages     []stageResult
	cacheBust  bool
	cacheFrom  []*image.Record
	containers []string // made by the current step
	// noCommit applies instructions to the config only (commit --change).
	noCommit bool
	// released undo the marks of the images the build uses.
	released []func()
}

// hold marks an image the build goes on from, so build prune keeps it.
func (b *builder) hold(rec *image.Record) {
	if rec != nil {
		b.holdID(rec.ID)
	}
}

func (b *builder) holdID(id digest.Digest) {
	if b.svc != nil {
		b.released = append(b.released, b.svc.use(id))
	}
}

// holdFound holds a cached image found by a lookup and says whether it
// is still there (a prune may have taken it between the two).
func (b *builder) holdFound(ctx context.Context, rec *image.Record) bool {
	b.hold(rec)
	_, err := b.svc.cfg.Images.Resolve(ctx, rec.ID.String())
	return err == nil
}

func (b *builder) releaseImages() {
	for _, f := range b.released {
		f()
	}
	b.released = nil
}

type stageResult struct {
	name    string
	imageID string
}

// state is a stage's: the image so far and its config.
type state struct {
	img        *image.Record // nil: scratch, nothing committed yet
	cfg        runConfig
	os, arch   string
	variant    string
	stageName  string
	args       *buildArgs
	maintainer string
	cmdSet     bool
}

func (st *state) imageID() string {
	if st.img == nil {
		return ""
	}
	return st.img.ID.String()
}

func (b *builder) run(ctx context.Context, ctxTar io.Reader) (digest.Digest, error) {
	tags, err := image.Tags(b.opts.GetTags())
	if err != nil {
		return "", err
	}
	b.tags = tags
	if err := b.checkOptions(); err != nil {
		return "", err
	}
	if err := b.extractContext(ctx, ctxTar); err != nil {
		return "", err
	}
	dockerfileName := b.opts.GetDockerfile()
	if dockerfileName == "" {
		dockerfileName = "Dockerfile"
	}
	df, err := b.readDockerfile(dockerfileName)
	if err != nil {
		return "", err
	}
	if err := b.applyDockerignore(dockerfileName); err != nil {
		return "", err
	}
	if len(df) == 0 {
		return "", errdefs.InvalidArgument(fmt.Errorf("the Dockerfile (%s) cannot be empty", dockerfileName))
	}
	result, err := parser.Parse(strings.NewReader(string(df)))
	if err != nil {
		return "", errdefs.InvalidArgument(err)
	}
	if len(result.AST.Children) == 0 {
		return "", errdefs.InvalidArgument(fmt.Errorf("the Dockerfile (%s) cannot be empty", dockerfileName))
	}
	stages, metaArgs, err := instructions.Parse(result.AST, nil)
	if err != nil {
		return "", errdefs.InvalidArgument(err)
	}
	if t := b.opts.GetTarget(); t != "" {
		i, ok := instructions.HasStage(stages, t)
		if !ok {
			return "", errdefs.InvalidArgument(fmt.Errorf("target stage %q could not be found", t))
		}
		stages = stages[:i+1]
	}
	if len(stages) == 0 {
		return "", errdefs.InvalidArgument(errors.New("No image was generated. Is your Dockerfile empty?"))
	}
	labels := b.opts.GetLabels()
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		stages[len(stages)-1].AddCommand(instructions.NewLabelCommand(k, labels[k], true))
	}
	for _, ref := range b.opts.GetCacheFrom() {
		if rec, err := b.svc.cfg.Images.Resolve(ctx, ref); err == nil {
			b.cacheFrom = append(b.cacheFrom, rec)
		}
	}
	var warn strings.Builder
	result.PrintWarnings(&warn)
	if warn.Len() > 0 {
		b.out.write(warn.String())
	}
	st, err := b.dispatchAll(ctx, stages, metaArgs, result.EscapeToken)
	if err != nil {
		return "", err
	}
	if st.img == nil {
		return "", errors.New("No image was generated. Is your Dockerfile empty?")
	}
	if err := b.svc.cfg.Images.TagBuilt(ctx, st.img.ID, b.tags); err != nil {
		return "", err
	}
	b.out.printf("Successfully built %s\n", st.img.ID.Encoded()[:12])
	for _, t := range b.tags {
		named, _ := reference.ParseNormalizedNamed(t)
		b.out.printf("Successfully tagged %s\n", reference.FamiliarString(named))
	}
	return st.img.ID, nil
}

// checkOptions refuses what the builder cannot honour.
func (b *builder) checkOptions() error {
	if p := b.opts.GetPlatform(); p != "" {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid platform %q: %w", p, err))
		}
		if plat.OS != "linux" {
			return errdefs.InvalidArgument(fmt.Errorf("platform %q: only linux images can be built", p))
		}
	}
	if b.opts.GetShmSize() < 0 {
		return errdefs.InvalidArgument(errors.New("shmsize must be a positive number"))
	}
	return nil
}

// extractContext unpacks the context (plain, gzip, bzip2, xz or zstd)
// inside the build's directory; entries cannot land outside it.
func (b *builder) extractContext(ctx context.Context, r io.Reader) error {
	b.context = filepath.Join(b.workDir, "context")
	if err := os.Mkdir(b.context, 0o755); err != nil {
		return err
	}
	plain, err := compression.Decompress(r)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("read build context: %w", err))
	}
	defer plain.Close()
	if _, err := archive.Apply(ctx, b.context, plain, archive.Options{}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errdefs.InvalidArgument(fmt.Errorf("read build context: %w", err))
	}
	return nil
}

// readDockerfile reads the Dockerfile from the context, resolved inside
// it (a Dockerfile symlinked out of the context is not read).
func (b *builder) readDockerfile(name string) ([]byte, error) {
	root, err := archive.OpenRoot(b.context)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(name)
	if errors.Is(err, fs.ErrNotExist) && name == "Dockerfile" {
		f, err = root.OpenFile("dockerfile")
	}
	if err != nil {
		return nil, fmt.Errorf("Cannot locate specified Dockerfile: %s", name)
	}
	defer f.Close()
	// Read whole (the parser needs all of it); it is a file of the
	// context, which is on disk already, so no bound beyond that.
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	return data, nil
}

// applyDockerignore removes what .dockerignore excludes from the context
// (clients filter too; dockerd itself drops only the Dockerfile and
// .dockerignore when they are excluded).
func (b *builder) applyDockerignore(dockerfile string) error {
	root, err := archive.OpenRoot(b.context)
	if err != nil {
		return err
	}
	f, err := root.OpenFile(".dockerignore")
	root.Close()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read .dockerignore: %w", err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("read .dockerignore: %w", err))
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid .dockerignore: %w", err))
	}
	// The context directory is the engine's own and nothing else writes
	// it, so a plain walk (which never follows links) is safe here.
	return filepath.WalkDir(b.context, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(b.context, p)
		if err != nil || rel == "." {
			return err
		}
		match, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if !match {
			return nil
		}
		if d.IsDir() {
			if pm.Exclusions() {
				return nil // a later "!" pattern may keep something under it
			}
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			return fs.SkipDir
		}
		return os.Remove(p)
	})
}

// dispatchAll runs the stages, as dockerd's dispatchDockerfileWithCancellation.
func (b *builder) dispatchAll(ctx context.Context, stages []instructions.Stage, metaArgs []instructions.ArgCommand, escape rune) (*state, error) {
	args := newBuildArgs(b.opts.GetBuildArgs())
	total := len(metaArgs) + len(stages)
	for _, s := range stages {
		total += len(s.Commands)
	}
	step := 1
	shlex := shell.NewLex(escape)
	for i := range metaArgs {
		b.out.printf("Step %d/%d : %s\n", step, total, metaArgs[i].String())
		step++
		env := shell.EnvsFromSlice(envList(args.allAllowed()))
		if err := metaArgs[i].Expand(func(w string) (string, error) {
			s, _, err := shlex.ProcessWord(w, env)
			return s, err
		}); err != nil {
			return nil, err
		}
		for _, a := range metaArgs[i].Args {
			args.addArg(a.Key, a.Value)
			args.addMetaArg(a.Key, a.Value)
		}
	}
	var st *state
	for si := range stages {
		stage := stages[si]
		if stage.Name != "" {
			for _, r := range b.stages {
				if strings.EqualFold(r.name, stage.Name) {
					return nil, fmt.Errorf("%s stage name already used", stage.Name)
				}
			}
		}
		st = &state{args: args.clone()}
		st.args.resetAllowed()
		b.out.printf("Step %d/%d : %s\n", step, total, stage.SourceCode)
		step++
		if err := b.initStage(ctx, st, &stage, shlex); err != nil {
			return nil, err
		}
		b.out.printf(" ---> %s\n", shortID(st.imageID()))
		for _, cmd := range stage.Commands {
			if err := ctx.Err(); err != nil {
				b.out.write("Build cancelled\n")
				return nil, errors.New("Build cancelled")
			}
			b.out.printf("Step %d/%d : %s\n", step, total, cmd)
			step++
			if err := b.dispatch(ctx, st, cmd, shlex); err != nil {
				return nil, err
			}
			b.out.printf(" ---> %s\n", shortID(st.imageID()))
		}
		if st.img != nil {
			b.out.aux(st.img.ID)
		}
		args.mergeReferenced(st.args)
		b.stages = append(b.stages, stageResult{name: stage.Name, imageID: st.imageID()})
	}
	if w := args.unused(); len(w) > 0 {
		b.out.printf("[Warning] One or more build-args %v were not consumed\n", w)
	}
	return st, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// initStage resolves FROM and runs the base image's ONBUILD triggers.
func (b *builder) initStage(ctx context.Context, st *state, stage *instructions.Stage, shlex *shell.Lex) error {
	b.cacheBust = b.opts.GetNoCache()
	platform := b.opts.GetPlatform()
	if stage.Platform != "" {
		p, err := expandMeta(shlex, st.args, stage.Platform)
		if err != nil {
			return fmt.Errorf("failed to process arguments for platform %s: %w", stage.Platform, err)
		}
		if _, err := v1.ParsePlatform(p); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("failed to parse platform %s: %w", p, err))
		}
		platform = p
	}
	name, err := expandMeta(shlex, st.args, stage.BaseName)
	if err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("base name (%s) should not be blank", stage.BaseName)
	}
	st.stageName = stage.Name
	for _, r := range b.stages {
		if r.name != "" && strings.EqualFold(r.name, name) {
			if r.imageID == "" {
				return fmt.Errorf("stage %s produced no image", r.name)
			}
			name = r.imageID
			break
		}
	}
	if name == "scratch" {
		st.os, st.arch = "linux", runtime.GOARCH
		if platform != "" {
			p, _ := v1.ParsePlatform(platform)
			st.os, st.arch, st.variant = p.OS, p.Architecture, p.Variant
		}
	} else {
		img, err := b.baseImage(ctx, name, platform)
		if err != nil {
			return err
		}
		cfg, err := b.svc.cfg.Images.ReadConfig(img)
		if err != nil {
			return err
		}
		st.img = img
		b.hold(img)
		st.cfg = cfg.Config
		st.os, st.arch, st.variant = cfg.OS, cfg.Architecture, cfg.Variant
	}
	if !slices.ContainsFunc(st.cfg.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		st.cfg.Env = append(st.cfg.Env, defaultPath)
	}
	if len(st.cfg.OnBuild) > 0 {
		triggers := st.cfg.OnBuild
		st.cfg.OnBuild = nil
		s := ""
		if len(triggers) > 1 {
			s = "s"
		}
		b.out.printf("# Executing %d build trigger%s\n", len(triggers), s)
		for _, t := range triggers {
			ast, err := parser.Parse(strings.NewReader(t))
			if err != nil {
				return err
			}
			if len(ast.AST.Children) != 1 {
				return errors.New("onbuild trigger should be a single expression")
			}
			cmd, err := instructions.ParseCommand(ast.AST.Children[0])
			if err != nil {
				return err
			}
			if err := b.dispatch(ctx, st, cmd, shlex); err != nil {
				return err
			}
		}
	}
	return nil
}

// baseImage finds FROM's image locally, pulling it when it is missing,
// of another platform, or --pull asks.
func (b *builder) baseImage(ctx context.Context, name, platform string) (*image.Record, error) {
	if _, err := digest.Parse(name); err == nil {
		return b.svc.cfg.Images.Resolve(ctx, name) // a stage's image
	}
	if !b.opts.GetPull() {
		rec, err := b.svc.cfg.Images.Resolve(ctx, name)
		if err == nil {
			if platform == "" || b.platformMatches(rec, platform) {
				return rec, nil
			}
		} else if !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	req := &enginev1.ImagePullRequest{Image: name, Platform: platform, Auth: b.authFor(name)}
	err := b.svc.cfg.Images.Pull(ctx, req, func(p *enginev1.Progress) error {
		if !b.out.quiet {
			b.out.started = true
			return b.out.send(&enginev1.BuildMessage{Progress: p})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	named, err := image.PullRef(name, "")
	if err != nil {
		return nil, err
	}
	rec, err := b.svc.cfg.Images.Resolve(ctx, named.String())
	if err != nil {
		return nil, err
	}
	if platform != "" && !b.platformMatches(rec, platform) {
		// A registry that has the image for one platform only.
		actual := ""
		if cfg, err := b.svc.cfg.Images.ReadConfig(rec); err == nil {
			actual = cfg.OS + "/" + cfg.Architecture
		}
		return nil, errdefs.NotFound(fmt.Errorf("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s", name, platform, actual))
	}
	return rec, nil
}

func (b *builder) platformMatches(rec *image.Record, platform string) bool {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return false
	}
	cfg, err := b.svc.cfg.Images.ReadConfig(rec)
	if err != nil {
		return false
	}
	return cfg.OS == want.OS && cfg.Architecture == want.Architecture && (want.Variant == "" || want.Variant == cfg.Variant)
}

// authFor picks X-Registry-Config's credentials for the image's registry.
func (b *builder) authFor(name string) *enginev1.RegistryAuth {
	auth := b.opts.GetAuth()
	if len(auth) == 0 {
		return nil
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil
	}
	host := reference.Domain(named)
	for k, a := range auth {
		h := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://"), "/")
		h, _, _ = strings.Cut(h, "/")
		if h == host || (host == "docker.io" && (h == "index.docker.io" || h == "registry-1.docker.io")) {
			return a
		}
	}
	return nil
}

func expandMeta(shlex *shell.Lex, args *buildArgs, word string) (string, error) {
	s, _, err := shlex.ProcessWord(word, shell.EnvsFromSlice(envList(args.allMeta())))
	return s, err
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// probe looks for a cached image made from the current one by a step
// with config key; the first miss ends the cache for the stage.
func (b *builder) probe(ctx context.Context, st *state, key *runConfig) (bool, error) {
	if b.cacheBust {
		return false, nil
	}
	want, err := json.Marshal(key)
	if err != nil {
		return false, err
	}
	var parent digest.Digest
	if st.img != nil {
		parent = st.img.ID
	}
	children, err := b.svc.cfg.Images.Children(ctx, parent)
	if err != nil {
		return false, err
	}
	sort.Slice(children, func(i, j int) bool { return children[i].Created.After(children[j].Created) })
	for _, c := range children {
		cfg, err := b.svc.cfg.Images.ReadConfig(c)
		if err != nil || cfg.ContainerConfig == nil {
			continue
		}
		if st.img == nil && (cfg.OS != st.os || cfg.Architecture != st.arch) {
			continue
		}
		got, err := json.Marshal(cfg.ContainerConfig)
		if err == nil && string(got) == string(want) && b.holdFound(ctx, c) {
			b.out.write(" ---> Using cache\n")
			st.img = c
			return true, nil
		}
	}
	if hit, err := b.probeCacheFrom(ctx, st, key); err != nil || hit {
		return hit, err
	}
	b.cacheBust = true
	return false, nil
}

// probeCacheFrom matches --cache-from images as dockerd does: one whose
// history and layers start with the current image's and whose next step
// was made by the same command. When that step is its last, it is the
// step's image; else the step's image is made from the current one and
// that step's layer.
func (b *builder) probeCacheFrom(ctx context.Context, st *state, key *runConfig) (bool, error) {
	if len(b.cacheFrom) == 0 {
		return false, nil
	}
	var parentHist []string
	var parentDiffs []digest.Digest
	if st.img != nil {
		pc, err := b.svc.cfg.Images.ReadConfig(st.img)
		if err != nil {
			return false, err
		}
		for _, h := range pc.History {
			parentHist = append(parentHist, h.CreatedBy)
		}
		parentDiffs = pc.RootFS.DiffIDs
	}
	n := len(parentHist)
	createdBy := strings.Join(key.Cmd, " ")
	for _, cand := range b.cacheFrom {
		cc, err := b.svc.cfg.Images.ReadConfig(cand)
		if err != nil || len(cc.History) <= n || cc.History[n].CreatedBy != createdBy {
			continue
		}
		if len(cc.RootFS.DiffIDs) < len(parentDiffs) || !slices.Equal(cc.RootFS.DiffIDs[:len(parentDiffs)], parentDiffs) {
			continue
		}
		ok := true
		layer := 0
		for i, h := range parentHist {
			ok = ok && cc.History[i].CreatedBy == h
			if !cc.History[i].EmptyLayer {
				layer++
			}
		}
		if !ok || layer != len(parentDiffs) {
			continue
		}
		if len(cc.History) == n+1 {
			b.out.write(" ---> Using cache\n")
			st.img = cand
			b.hold(cand)
			return true, nil
		}
		var reuse *image.Layer
		if !cc.History[n].EmptyLayer {
			if layer >= len(cand.Layers) {
				continue
			}
			l := cand.Layers[layer]
			reuse = &l
		}
		cfg := copyConfig(&st.cfg)
		rec, err := b.svc.cfg.Images.Commit(ctx, image.CommitOptions{
			Parent: st.img, OS: st.os, Architecture: st.arch, Variant: st.variant, ReuseLayer: reuse,
			Config: *cfg, ContainerConfig: copyConfig(key), Author: st.maintainer, CreatedBy: createdBy, BuildCache: true,
			Hold: b.holdID,
		})
		if err != nil {
			return false, err
		}
		b.out.write(" ---> Using cache\n")
		st.img = rec
		return true, nil
	}
	return false, nil
}

// commit commits a step: the stage's config, the step's key and layer.
func (b *builder) commit(ctx context.Context, st *state, key *runConfig, layer func(io.Writer) (int, error), containerID string) error {
	cfg := copyConfig(&st.cfg)
	rec, err := b.svc.cfg.Images.Commit(ctx, image.CommitOptions{
		Parent: st.img, OS: st.os, Architecture: st.arch, Variant: st.variant,
		Layer: layer, Config: *cfg, ContainerConfig: copyConfig(key), Container: containerID,
		Author: st.maintainer, CreatedBy: strings.Join(key.Cmd, " "), BuildCache: true, Hold: b.holdID,
	})
	if err != nil {
		return err
	}
	st.img = rec
	return nil
}

// removeContainers removes the step's containers (--rm on success,
// --force-rm always), as dockerd does after each step.
func (b *builder) removeContainers(ctx context.Context, failed bool) {
	if failed && !b.opts.GetForceRemove() {
		b.containers = nil
		return
	}
	if !b.opts.GetRemove() && !b.opts.GetForceRemove() {
		b.containers = nil
		return
	}
	for _, id := range b.containers {
		if err := b.svc.cfg.Containers.Remove(context.WithoutCancel(ctx), id, true); err != nil && !errdefs.IsNotFound(err) {
			b.out.printf("Removing intermediate container %s: %v\n", shortID(id), err)
			continue
		}
		b.out.printf(" ---> Removed intermediate container %s\n", shortID(id))
	}
	b.containers = nil
}

func copyConfig(c *runConfig) *runConfig {
	out := *c
	out.Cmd = slices.Clone(c.Cmd)
	out.Env = slices.Clone(c.Env)
	out.Entrypoint = slices.Clone(c.Entrypoint)
	out.OnBuild = slices.Clone(c.OnBuild)
	out.Shell = slices.Clone(c.Shell)
	if c.Volumes != nil {
		out.Volumes = map[string]struct{}{}
		for k := range c.Volumes {
			out.Volumes[k] = struct{}{}
		}
	}
	if c.ExposedPorts != nil {
		out.ExposedPorts = map[string]struct{}{}
		for k := range c.ExposedPorts {
			out.ExposedPorts[k] = struct{}{}
		}
	}
	if c.Labels != nil {
		out.Labels = map[string]string{}
		for k, v := range c.Labels {
			out.Labels[k] = v
		}
	}
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		out.Healthcheck = &h
	}
	return &out
}

func getShell(c *runConfig) []string {
	if len(c.Shell) == 0 {
		return []string{"/bin/sh", "-c"}
	}
	return slices.Clone(c.Shell)
}
