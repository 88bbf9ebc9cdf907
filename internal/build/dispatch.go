package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/sys/signal"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// requiresBuildKit is dockerd's message for what only BuildKit does.
func requiresBuildKit(opt string) error {
	return errdefs.InvalidArgument(fmt.Errorf("the --%s option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled", opt))
}

// dispatch runs one instruction.
func (b *builder) dispatch(ctx context.Context, st *state, cmd instructions.Command, shlex *shell.Lex) (err error) {
	env := append(append([]string(nil), st.cfg.Env...), st.args.filterAllowed(st.cfg.Env)...)
	envs := shell.EnvsFromSlice(env)
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(func(w string) (string, error) {
			s, _, err := shlex.ProcessWord(w, envs)
			return s, err
		}); err != nil {
			return errdefs.InvalidArgument(err)
		}
	}
	defer func() { b.removeContainers(ctx, err != nil) }()
	cfg := &st.cfg
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		msg := "ENV"
		for _, e := range c.Env {
			kv := e.String()
			msg += " " + kv
			found := false
			for i, old := range cfg.Env {
				if k, _, _ := strings.Cut(old, "="); shell.EqualEnvKeys(k, e.Key) {
					cfg.Env[i], found = kv, true
					break
				}
			}
			if !found {
				cfg.Env = append(cfg.Env, kv)
			}
		}
		return b.commitMeta(ctx, st, msg)
	case *instructions.MaintainerCommand:
		st.maintainer = c.Maintainer
		return b.commitMeta(ctx, st, "MAINTAINER "+c.Maintainer)
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		msg := "LABEL"
		for _, l := range c.Labels {
			cfg.Labels[l.Key] = l.Value
			msg += " " + l.String()
		}
		return b.commitMeta(ctx, st, msg)
	case *instructions.AddCommand:
		if c.Chmod != "" {
			return requiresBuildKit("chmod")
		}
		if c.Link {
			return requiresBuildKit("link")
		}
		if len(c.ExcludePatterns) > 0 {
			return requiresBuildKit("exclude")
		}
		if c.Checksum != "" {
			return requiresBuildKit("checksum")
		}
		if c.KeepGitDir != nil {
			return requiresBuildKit("keep-git-dir")
		}
		if c.Unpack != nil {
			return requiresBuildKit("unpack")
		}
		return b.copy(ctx, st, copyRequest{name: "ADD", sd: c.SourcesAndDest, chown: c.Chown, add: true})
	case *instructions.CopyCommand:
		if c.Chmod != "" {
			return requiresBuildKit("chmod")
		}
		if c.Link {
			return requiresBuildKit("link")
		}
		if c.Parents {
			return requiresBuildKit("parents")
		}
		if len(c.ExcludePatterns) > 0 {
			return requiresBuildKit("exclude")
		}
		return b.copy(ctx, st, copyRequest{name: "COPY", sd: c.SourcesAndDest, chown: c.Chown, from: c.From})
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
		return b.commitMeta(ctx, st, "ONBUILD "+c.Expression)
	case *instructions.WorkdirCommand:
		return b.workdir(ctx, st, c.Path)
	case *instructions.RunCommand:
		return b.runStep(ctx, st, c)
	case *instructions.CmdCommand:
		cmd := resolveCmdLine(c.ShellDependantCmdLine, cfg)
		cfg.Cmd = cmd
		cfg.ArgsEscaped = false
		if err := b.commitMeta(ctx, st, fmt.Sprintf("CMD %q", cmd)); err != nil {
			return err
		}
		if len(c.CmdLine) != 0 {
			st.cmdSet = true
		}
		return nil
	case *instructions.HealthCheckCommand:
		if cfg.Healthcheck != nil && len(cfg.Healthcheck.Test) > 0 && cfg.Healthcheck.Test[0] != "NONE" {
			b.out.printf("Note: overriding previous HEALTHCHECK: %v\n", cfg.Healthcheck.Test)
		}
		cfg.Healthcheck = c.Health
		return b.commitMeta(ctx, st, fmt.Sprintf("HEALTHCHECK %+v", cfg.Healthcheck))
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = resolveCmdLine(c.ShellDependantCmdLine, cfg)
		cfg.ArgsEscaped = false
		if !st.cmdSet {
			cfg.Cmd = nil
		}
		return b.commitMeta(ctx, st, fmt.Sprintf("ENTRYPOINT %q", cfg.Entrypoint))
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			ps, err := shlex.ProcessWords(p, envs)
			if err != nil {
				return err
			}
			ports = append(ports, ps...)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			list, err := parseExpose(p)
			if err != nil {
				return errdefs.InvalidArgument(err)
			}
			for _, x := range list {
				cfg.ExposedPorts[x] = struct{}{}
			}
		}
		return b.commitMeta(ctx, st, "EXPOSE "+strings.Join(ports, " "))
	case *instructions.UserCommand:
		cfg.User = c.User
		return b.commitMeta(ctx, st, "USER "+c.User)
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
		return b.commitMeta(ctx, st, fmt.Sprintf("VOLUME %v", c.Volumes))
	case *instructions.StopSignalCommand:
		if _, err := signal.ParseSignal(c.Signal); err != nil {
			return errdefs.InvalidArgument(err)
		}
		cfg.StopSignal = c.Signal
		return b.commitMeta(ctx, st, "STOPSIGNAL "+c.Signal)
	case *instructions.ArgCommand:
		var msg strings.Builder
		msg.WriteString("ARG ")
		for i, a := range c.Args {
			if i > 0 {
				msg.WriteString(" ")
			}
			msg.WriteString(a.Key)
			if a.Value != nil {
				msg.WriteString("=" + *a.Value)
			}
			st.args.addArg(a.Key, a.Value)
		}
		return b.commitMeta(ctx, st, msg.String())
	case *instructions.ShellCommand:
		cfg.Shell = c.Shell
		return b.commitMeta(ctx, st, fmt.Sprintf("SHELL %v", c.Shell))
	}
	return errdefs.InvalidArgument(fmt.Errorf("unsupported command type: %T", cmd))
}

func resolveCmdLine(c instructions.ShellDependantCmdLine, cfg *runConfig) []string {
	if c.PrependShell && c.CmdLine != nil {
		return append(getShell(cfg), c.CmdLine...)
	}
	return c.CmdLine
}

// parseExpose expands an EXPOSE word into port/proto keys.
func parseExpose(p string) ([]string, error) {
	port, proto, _ := strings.Cut(p, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, errors.New("invalid proto: " + proto)
	}
	if i := strings.LastIndex(port, ":"); i >= 0 {
		port = port[i+1:]
	}
	if port == "" {
		return nil, fmt.Errorf("no port specified: %s<empty>", p)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, errors.New("invalid containerPort: " + port)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, errors.New("invalid containerPort: " + port)
		}
	}
	var out []string
	for n := start; n <= end; n++ {
		out = append(out, fmt.Sprintf("%d/%s", n, proto))
	}
	return out, nil
}

// commitMeta commits a step that changes only the config ("#(nop)").
// dockerd makes (and removes) a container for it; nothing runs in one,
// so this builder commits without.
func (b *builder) commitMeta(ctx context.Context, st *state, comment string) error {
	if b.noCommit {
		return nil
	}
	key := copyConfig(&st.cfg)
	key.Cmd = append(getShell(&st.cfg), "#(nop) ", comment)
	if hit, err := b.probe(ctx, st, key); err != nil || hit {
		return err
	}
	return b.commit(ctx, st, key, nil, "")
}

// runStep is RUN: a container from the current image runs the command;
// its changes are the step's layer.
func (b *builder) runStep(ctx context.Context, st *state, c *instructions.RunCommand) error {
	if len(c.FlagsUsed) > 0 {
		return requiresBuildKit(c.FlagsUsed[0])
	}
	if len(c.Files) > 0 {
		return errdefs.InvalidArgument(errors.New("heredocs in RUN require BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"))
	}
	cmd := resolveCmdLine(c.ShellDependantCmdLine, &st.cfg)
	buildEnv := st.args.filterAllowed(st.cfg.Env)
	saveCmd := cmd
	if len(buildEnv) > 0 {
		var shown []string
		for _, e := range buildEnv {
			k, _, _ := strings.Cut(e, "=")
			if st.args.isReferencedOrNotBuiltin(k) {
				shown = append(shown, e)
			}
		}
		sort.Strings(shown)
		saveCmd = append(append([]string{fmt.Sprintf("|%d", len(shown))}, shown...), cmd...)
	}
	key := copyConfig(&st.cfg)
	key.Cmd = saveCmd
	key.ArgsEscaped = false
	if len(saveCmd) > 0 {
		key.Entrypoint = nil
	}
	if hit, err := b.probe(ctx, st, key); err != nil || hit {
		return err
	}
	if st.img == nil {
		return errors.New("Please provide a source image with `from` prior to run")
	}
	env := append(append([]string(nil), st.cfg.Env...), buildEnv...)
	cc := &enginev1.ContainerConfig{Image: st.img.ID.String(), Cmd: cmd, CmdSet: true, EntrypointSet: true,
		Env: env, User: st.cfg.User, WorkingDir: st.cfg.WorkingDir, Labels: st.cfg.Labels}
	hc := &enginev1.HostConfig{NetworkMode: b.opts.GetNetworkMode(), ExtraHosts: b.opts.GetExtraHosts(), ShmSize: b.opts.GetShmSize(),
		Memory: b.opts.GetMemory(), MemorySwap: b.opts.GetMemorySwap(), CpuShares: b.opts.GetCpuShares(), CpuPeriod: b.opts.GetCpuPeriod(),
		CpuQuota: b.opts.GetCpuQuota(), CpusetCpus: b.opts.GetCpusetCpus(), CpusetMems: b.opts.GetCpusetMems(), Ulimits: b.opts.GetUlimits()}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "default"
	}
	created, err := b.svc.cfg.Containers.Create(ctx, &enginev1.ContainerCreateRequest{Config: cc, HostConfig: hc})
	if err != nil {
		return err
	}
	id := created.GetId()
	b.containers = append(b.containers, id)
	for _, w := range created.GetWarnings() {
		b.out.printf(" ---> [Warning] %s\n", w)
	}
	b.out.printf(" ---> Running in %s\n", shortID(id))
	code, err := b.svc.cfg.Containers.RunAttached(ctx, id, func(_ int32, data []byte) error {
		b.out.write(string(data))
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			// The client went away: the step's container goes too, as
			// dockerd removes it when a build is cancelled.
			if rerr := b.svc.cfg.Containers.Remove(context.WithoutCancel(ctx), id, true); rerr != nil {
				b.svc.cfg.Logger.Warn("remove cancelled build container", "id", id, "err", rerr)
			}
			b.containers = nil
			return errors.New("Build cancelled")
		}
		return err
	}
	if code != 0 {
		return &stepError{msg: fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(cmd, " "), code), code: code}
	}
	return b.commit(ctx, st, key, func(w io.Writer) (int, error) {
		return b.svc.cfg.Containers.LayerDiff(ctx, id, w)
	}, id)
}

// workdir is WORKDIR: the directory is made in the image, as dockerd's.
func (b *builder) workdir(ctx context.Context, st *state, p string) error {
	if p == "" {
		return errors.New("cannot normalize nothing")
	}
	if !path.IsAbs(p) {
		p = path.Join("/", st.cfg.WorkingDir, p)
	}
	st.cfg.WorkingDir = path.Clean(p)
	key := copyConfig(&st.cfg)
	key.Cmd = append(getShell(&st.cfg), "#(nop) WORKDIR "+st.cfg.WorkingDir)
	if hit, err := b.probe(ctx, st, key); err != nil || hit {
		return err
	}
	layer, err := b.svc.cfg.Images.NewRWLayer(st.img)
	if err != nil {
		return err
	}
	defer b.release(layer)
	if err := mkdirInRoot(ctx, layer.Rootfs, st.cfg.WorkingDir, nil); err != nil {
		return fmt.Errorf("create WORKDIR %s: %w", st.cfg.WorkingDir, err)
	}
	return b.commit(ctx, st, key, func(w io.Writer) (int, error) { return tarUpper(ctx, layer.Upper, w) }, "")
}
