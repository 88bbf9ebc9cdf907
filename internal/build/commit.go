package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/image"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// validCommitCommands are the instructions docker commit --change takes.
var validCommitCommands = map[string]bool{
	"cmd": true, "entrypoint": true, "healthcheck": true, "env": true, "expose": true, "label": true,
	"onbuild": true, "stopsignal": true, "user": true, "volume": true, "workdir": true,
}

// ApplyChanges applies --change instructions to cfg, as dockerd's
// BuildFromConfig: the builder's own dispatch, nothing committed.
func ApplyChanges(ctx context.Context, cfg *runConfig, changes []string) error {
	if len(changes) == 0 {
		return nil
	}
	res, err := parser.Parse(strings.NewReader(strings.Join(changes, "\n")))
	if err != nil {
		return errdefs.InvalidArgument(err)
	}
	st := &state{cfg: *copyConfig(cfg), args: newBuildArgs(nil)}
	shlex := shell.NewLex(res.EscapeToken)
	for _, n := range res.AST.Children {
		if !validCommitCommands[strings.ToLower(n.Value)] {
			return errdefs.InvalidArgument(fmt.Errorf("%s is not a valid change command", n.Value))
		}
		cmd, err := instructions.ParseCommand(n)
		if err != nil {
			return errdefs.InvalidArgument(err)
		}
		if err := applyChange(st, cmd, shlex); err != nil {
			return errdefs.InvalidArgument(err)
		}
	}
	*cfg = st.cfg
	return nil
}

// applyChange dispatches one change without committing: a builder with
// the cache off and no image to commit to.
func applyChange(st *state, cmd instructions.Command, shlex *shell.Lex) error {
	if w, ok := cmd.(*instructions.WorkdirCommand); ok {
		env := shell.EnvsFromSlice(st.cfg.Env)
		p, _, err := shlex.ProcessWord(w.Path, env)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(p, "/") {
			p = "/" + strings.TrimPrefix(st.cfg.WorkingDir+"/"+p, "/")
		}
		st.cfg.WorkingDir = cleanPath(p)
		return nil
	}
	b := &builder{opts: &enginev1.BuildOptions{}, out: &output{quiet: true, send: func(*enginev1.BuildMessage) error { return nil }}, noCommit: true}
	return b.dispatch(context.Background(), st, cmd, shlex)
}

func cleanPath(p string) string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, s)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// ContainerCommit is docker commit: the container's changes on its
// image, with the container's config (and the request's, and --change)
// as the new image's.
func (s *Service) ContainerCommit(ctx context.Context, req *enginev1.ContainerCommitRequest) (*enginev1.ContainerCommitResponse, error) {
	src, err := s.cfg.Containers.ForCommit(req.GetContainer())
	if err != nil {
		return nil, err
	}
	var tags []string
	if req.GetRepo() != "" {
		ref := req.GetRepo()
		if req.GetTag() != "" {
			ref += ":" + req.GetTag()
		}
		if tags, err = image.Tags([]string{ref}); err != nil {
			return nil, err
		}
	} else if req.GetTag() != "" {
		return nil, errdefs.InvalidArgument(errors.New("tag without a repository name"))
	}
	parent, err := s.cfg.Images.Resolve(ctx, src.ImageID)
	if err != nil {
		return nil, fmt.Errorf("image of container %s: %w", src.Name, err)
	}
	pc, err := s.cfg.Images.ReadConfig(parent)
	if err != nil {
		return nil, err
	}
	cfg := mergeContainerConfig(pc.Config, src.Config)
	if rc := req.GetConfig(); rc != nil {
		cfg = mergeContainerConfig(cfg, rc)
	}
	if err := ApplyChanges(ctx, &cfg, req.GetChanges()); err != nil {
		return nil, err
	}
	if req.GetPause() && src.Running && !src.Paused {
		if err := s.cfg.Containers.Pause(ctx, src.ID); err != nil {
			return nil, fmt.Errorf("pause container for commit: %w", err)
		}
		defer func() {
			if err := s.cfg.Containers.Unpause(context.WithoutCancel(ctx), src.ID); err != nil {
				s.cfg.Logger.Warn("unpause after commit", "id", src.ID, "err", err)
			}
		}()
	}
	containerCfg := copyConfig(&cfg)
	rec, err := s.cfg.Images.Commit(ctx, image.CommitOptions{
		Parent: parent, Layer: func(w io.Writer) (int, error) { return s.cfg.Containers.LayerDiff(ctx, src.ID, w) },
		Config: cfg, ContainerConfig: containerCfg, Container: src.ID, Author: req.GetAuthor(), Comment: req.GetComment(),
		Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	if s.cfg.Events != nil {
		attrs := map[string]string{"comment": req.GetComment(), "imageID": rec.ID.String(), "name": strings.TrimPrefix(src.Name, "/")}
		if len(tags) > 0 {
			attrs["imageRef"] = tags[0]
		}
		for k, v := range src.Config.GetLabels() {
			attrs[k] = v
		}
		s.cfg.Events.Publish("container", "commit", src.ID, attrs)
	}
	return &enginev1.ContainerCommitResponse{Id: rec.ID.String()}, nil
}

// mergeContainerConfig lays what a container's config sets over base.
func mergeContainerConfig(base runConfig, c *enginev1.ContainerConfig) runConfig {
	out := *copyConfig(&base)
	if c.GetUser() != "" {
		out.User = c.GetUser()
	}
	if c.GetWorkingDir() != "" {
		out.WorkingDir = c.GetWorkingDir()
	}
	if c.GetEntrypointSet() || len(c.GetEntrypoint()) > 0 {
		out.Entrypoint = c.GetEntrypoint()
		if !c.GetCmdSet() {
			out.Cmd = nil
		}
	}
	if c.GetCmdSet() || len(c.GetCmd()) > 0 {
		out.Cmd = c.GetCmd()
	}
	for _, e := range c.GetEnv() {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, old := range out.Env {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				out.Env[i], replaced = e, true
				break
			}
		}
		if !replaced {
			out.Env = append(out.Env, e)
		}
	}
	if len(c.GetLabels()) > 0 && out.Labels == nil {
		out.Labels = map[string]string{}
	}
	for k, v := range c.GetLabels() {
		out.Labels[k] = v
	}
	if len(c.GetExposedPorts()) > 0 && out.ExposedPorts == nil {
		out.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range c.GetExposedPorts() {
		out.ExposedPorts[p] = struct{}{}
	}
	if len(c.GetVolumes()) > 0 && out.Volumes == nil {
		out.Volumes = map[string]struct{}{}
	}
	for _, v := range c.GetVolumes() {
		out.Volumes[v] = struct{}{}
	}
	if c.GetStopSignal() != "" {
		out.StopSignal = c.GetStopSignal()
	}
	return out
}
