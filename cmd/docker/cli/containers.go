package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/engined/engined/gateway"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// dockerShape converts an Engine reply into Docker's JSON type T through
// the gateway's converters (the same code that serves REST).
func dockerShape[T any](ctx context.Context, m proto.Message) (T, error) {
	var out T
	v, err := gateway.DockerShape(ctx, m)
	if err != nil {
		return out, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

func truncID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func ellipsis(s string, n int) string {
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-1]) + "…"
}

// containerRow is one line of `docker ps`, with the Docker CLI's field names.
type containerRow struct {
	c     container.Summary
	trunc bool
}

func (r containerRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }

func (r containerRow) ID() string {
	if r.trunc {
		return truncID(r.c.ID)
	}
	return r.c.ID
}

func (r containerRow) Names() string {
	var names []string
	for _, n := range r.c.Names {
		n = strings.TrimPrefix(n, "/")
		if r.trunc {
			if !strings.Contains(n, "/") {
				return n
			}
			continue
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

func (r containerRow) Image() string {
	if r.c.Image == "" {
		return "<no image>"
	}
	if r.trunc && truncID(r.c.ImageID) == truncID(r.c.Image) {
		return truncID(r.c.Image)
	}
	return r.c.Image
}

func (r containerRow) Command() string {
	cmd := r.c.Command
	if r.trunc {
		cmd = ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

func (r containerRow) CreatedAt() string { return time.Unix(r.c.Created, 0).String() }
func (r containerRow) RunningFor() string {
	return units.HumanDuration(time.Now().UTC().Sub(time.Unix(r.c.Created, 0))) + " ago"
}
func (r containerRow) Ports() string  { return displayablePorts(r.c.Ports) }
func (r containerRow) State() string  { return string(r.c.State) }
func (r containerRow) Status() string { return r.c.Status }
func (r containerRow) Size() string {
	s := units.HumanSizeWithPrecision(float64(r.c.SizeRw), 3)
	if r.c.SizeRootFs > 0 {
		s = fmt.Sprintf("%s (virtual %s)", s, units.HumanSizeWithPrecision(float64(r.c.SizeRootFs), 3))
	}
	return s
}
func (r containerRow) Labels() string {
	var kv []string
	for k, v := range r.c.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}
func (r containerRow) Label(name string) string { return r.c.Labels[name] }
func (r containerRow) Mounts() string {
	var ms []string
	for _, m := range r.c.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if r.trunc {
			name = ellipsis(name, 15)
		}
		ms = append(ms, name)
	}
	return strings.Join(ms, ",")
}
func (r containerRow) LocalVolumes() string {
	n := 0
	for _, m := range r.c.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}
func (r containerRow) Networks() string {
	if r.c.NetworkSettings == nil {
		return ""
	}
	var ns []string
	for k := range r.c.NetworkSettings.Networks {
		ns = append(ns, k)
	}
	sort.Strings(ns)
	return strings.Join(ns, ",")
}

// Platform is the image's platform; engined's list does not give it.
func (r containerRow) Platform() any { return nil }

var containerHeader = headers{
	"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS",
	"Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
}

// displayablePorts is the PORTS column, as the Docker CLI builds it:
// ports sorted by container port, address, host port and protocol;
// unpublished ports (and those published on the same port number) in
// runs of consecutive numbers per protocol and address, then each
// published mapping as ip:host->container/proto.
func displayablePorts(ports []container.PortSummary) string {
	sorted := append([]container.PortSummary(nil), ports...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		switch {
		case a.PrivatePort != b.PrivatePort:
			return a.PrivatePort < b.PrivatePort
		case a.IP != b.IP:
			return a.IP.String() < b.IP.String()
		case a.PublicPort != b.PublicPort:
			return a.PublicPort < b.PublicPort
		}
		return a.Type < b.Type
	})
	type run struct {
		ip, proto   string
		first, last uint16
	}
	format := func(r *run) string {
		ports := strconv.Itoa(int(r.first))
		if r.last != r.first {
			ports += "-" + strconv.Itoa(int(r.last))
		}
		if r.ip != "" {
			ports = net.JoinHostPort(r.ip, ports) + "->" + ports
		}
		return ports + "/" + r.proto
	}
	runs := map[string]*run{}
	var order, out, mappings []string
	for _, p := range sorted {
		ip := ""
		if p.IP.IsValid() {
			if p.PublicPort != p.PrivatePort {
				mappings = append(mappings, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.IP.String(), strconv.Itoa(int(p.PublicPort))), p.PrivatePort, p.Type))
				continue
			}
			ip = p.IP.String()
		}
		key := ip + "/" + string(p.Type)
		r := runs[key]
		switch {
		case r == nil:
			runs[key] = &run{ip: ip, proto: string(p.Type), first: p.PrivatePort, last: p.PrivatePort}
			order = append(order, key)
		case p.PrivatePort == r.last+1:
			r.last = p.PrivatePort
		default:
			out = append(out, format(r))
			runs[key] = &run{ip: ip, proto: string(p.Type), first: p.PrivatePort, last: p.PrivatePort}
		}
	}
	for _, k := range order {
		out = append(out, format(runs[k]))
	}
	return strings.Join(append(out, mappings...), ", ")
}

// filterJSON turns repeated --filter k=v into the engine's filters JSON
// (Docker's map of name to set).
func filterJSON(fs []string) (string, error) {
	if len(fs) == 0 {
		return "", nil
	}
	m := map[string]map[string]bool{}
	for _, f := range fs {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", fmt.Errorf("invalid argument %q for \"-f, --filter\" flag: bad format of filter (expected name=value)", f)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
	}
	b, _ := json.Marshal(m)
	return string(b), nil
}

func (c *CLI) psCmd() *cobra.Command {
	var all, quiet, size, latest, noTrunc bool
	var last int
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			fj, err := filterJSON(filters)
			if err != nil {
				return flagError{err}
			}
			if latest {
				last = 1
			}
			if format == "" {
				format = c.configFormat("psFormat")
			}
			if strings.Contains(format, ".Size") {
				size = true
			}
			req := &enginev1.ContainerListRequest{All: all || last > 0, Limit: int32(last), Size: size, Filters: fj}
			resp, err := e.ContainerList(cmd.Context(), req)
			if err != nil {
				return c.daemonErr(err)
			}
			list, err := dockerShape[[]container.Summary](cmd.Context(), resp)
			if err != nil {
				return err
			}
			if quiet && format == "" {
				format = "{{.ID}}"
			}
			def := "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			if size && format == "" {
				def += "\t{{.Size}}"
			}
			rows := make([]any, 0, len(list))
			for _, s := range list {
				rows = append(rows, containerRow{c: s, trunc: !noTrunc})
			}
			return writeRows(c.Out, format, def, containerHeader, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	f.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	f.StringVar(&format, "format", "", formatHelp)
	f.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	f.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	return cmd
}

// configFormat is a default format from the Docker config file (psFormat, imagesFormat).
func (c *CLI) configFormat(key string) string {
	b, err := os.ReadFile(c.config() + "/config.json")
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

// simple is a command that calls fn for each container argument and
// prints the argument on success, as start/stop/kill/rm/pause do.
func (c *CLI) simple(use, short string, aliases []string, fn func(ctx context.Context, e enginev1.EngineClient, id string) error) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Aliases: aliases, Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			return c.forEach(args, func(id string) error {
				if err := fn(cmd.Context(), e, id); err != nil {
					return c.daemonErr(err)
				}
				fmt.Fprintln(c.Out, id)
				return nil
			})
		},
	}
}

func (c *CLI) stopCmd() *cobra.Command {
	var t int
	var sig string
	cmd := c.simple("stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", nil, nil)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		e, err := c.engine()
		if err != nil {
			return err
		}
		return c.forEach(args, func(id string) error {
			req := &enginev1.ContainerStopRequest{Id: id, Signal: sig}
			if cmd.Flags().Changed("timeout") {
				t32 := int32(t)
				req.T = &t32
			}
			if _, err := e.ContainerStop(cmd.Context(), req); err != nil {
				return c.daemonErr(err)
			}
			fmt.Fprintln(c.Out, id)
			return nil
		})
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container")
	cmd.Flags().IntVarP(&t, "timeout", "t", 0, "Seconds to wait before killing the container")
	cmd.Flags().IntVar(&t, "time", 0, "Seconds to wait before killing the container")
	cmd.Flags().MarkHidden("time")
	return cmd
}

func (c *CLI) restartCmd() *cobra.Command {
	var t int
	var sig string
	cmd := c.simple("restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", nil, nil)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		e, err := c.engine()
		if err != nil {
			return err
		}
		return c.forEach(args, func(id string) error {
			req := &enginev1.ContainerRestartRequest{Id: id, Signal: sig}
			if cmd.Flags().Changed("timeout") {
				t32 := int32(t)
				req.T = &t32
			}
			if _, err := e.ContainerRestart(cmd.Context(), req); err != nil {
				return c.daemonErr(err)
			}
			fmt.Fprintln(c.Out, id)
			return nil
		})
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container")
	cmd.Flags().IntVarP(&t, "timeout", "t", 0, "Seconds to wait before killing the container")
	return cmd
}

func (c *CLI) killCmd() *cobra.Command {
	var sig string
	cmd := c.simple("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", nil,
		func(ctx context.Context, e enginev1.EngineClient, id string) error {
			_, err := e.ContainerKill(ctx, &enginev1.ContainerKillRequest{Id: id, Signal: sig})
			return err
		})
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (c *CLI) rmCmd() *cobra.Command {
	var force, vols, link bool
	cmd := c.simple("rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", []string{"remove"},
		func(ctx context.Context, e enginev1.EngineClient, id string) error {
			_, err := e.ContainerRemove(ctx, &enginev1.ContainerRemoveRequest{Id: id, Force: force, V: vols, Link: link})
			return err
		})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&link, "link", "l", false, "Remove the specified link")
	cmd.Flags().BoolVarP(&vols, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return cmd
}

func (c *CLI) pauseCmd() *cobra.Command {
	return c.simple("pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", nil,
		func(ctx context.Context, e enginev1.EngineClient, id string) error {
			_, err := e.ContainerPause(ctx, &enginev1.ContainerPauseRequest{Id: id})
			return err
		})
}

func (c *CLI) unpauseCmd() *cobra.Command {
	return c.simple("unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", nil,
		func(ctx context.Context, e enginev1.EngineClient, id string) error {
			_, err := e.ContainerUnpause(ctx, &enginev1.ContainerUnpauseRequest{Id: id})
			return err
		})
}

func (c *CLI) renameCmd() *cobra.Command {
	return &cobra.Command{
		Use: "rename CONTAINER NEW_NAME", Short: "Rename a container", Args: exactArgs(2),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			if _, err := e.ContainerRename(cmd.Context(), &enginev1.ContainerRenameRequest{Id: args[0], Name: args[1]}); err != nil {
				return fmt.Errorf("%w\nError: failed to rename container named %s", c.daemonErr(err), args[0])
			}
			return nil
		},
	}
}

func (c *CLI) waitCmd() *cobra.Command {
	return &cobra.Command{
		Use: "wait CONTAINER [CONTAINER...]", Short: "Block until one or more containers stop, then print their exit codes", Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			return c.forEach(args, func(id string) error {
				st, err := e.ContainerWait(cmd.Context(), &enginev1.ContainerWaitRequest{Id: id})
				if err != nil {
					return c.daemonErr(err)
				}
				resp, err := st.Recv()
				if err != nil {
					return c.daemonErr(err)
				}
				fmt.Fprintln(c.Out, resp.GetStatusCode())
				return nil
			})
		},
	}
}

func (c *CLI) topCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "top CONTAINER [ps OPTIONS]", Short: "Display the running processes of a container", Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			resp, err := e.ContainerTop(cmd.Context(), &enginev1.ContainerTopRequest{Id: args[0], PsArgs: strings.Join(args[1:], " ")})
			if err != nil {
				return c.daemonErr(err)
			}
			tw := tabwriter.NewWriter(c.Out, 20, 1, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(resp.GetTitles(), "\t"))
			for _, p := range resp.GetProcesses() {
				fmt.Fprintln(tw, strings.Join(p.GetFields(), "\t"))
			}
			return tw.Flush()
		},
	}
	interspersed(cmd) // ps options after the container are ps's
	return cmd
}

func (c *CLI) inspectContainer(ctx context.Context, id string) (container.InspectResponse, error) {
	e, err := c.engine()
	if err != nil {
		return container.InspectResponse{}, err
	}
	resp, err := e.ContainerInspect(ctx, &enginev1.ContainerInspectRequest{Id: id})
	if err != nil {
		return container.InspectResponse{}, c.daemonErr(err)
	}
	return dockerShape[container.InspectResponse](ctx, resp)
}

func (c *CLI) portCmd() *cobra.Command {
	return &cobra.Command{
		Use: "port CONTAINER [PRIVATE_PORT[/PROTO]]", Short: "List port mappings or a specific mapping for the container", Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			ci, err := c.inspectContainer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			type line struct{ port, binding string }
			var lines []line
			if ci.NetworkSettings != nil {
				for p, bs := range ci.NetworkSettings.Ports {
					if len(args) > 1 {
						want := args[1]
						if !strings.Contains(want, "/") {
							want += "/tcp"
						}
						if p.String() != want {
							continue
						}
					}
					for _, b := range bs {
						ip := b.HostIP.String()
						if !b.HostIP.IsValid() {
							ip = "0.0.0.0"
						}
						if strings.Contains(ip, ":") {
							ip = "[" + ip + "]"
						}
						lines = append(lines, line{p.String(), ip + ":" + b.HostPort})
					}
				}
			}
			if len(args) > 1 && len(lines) == 0 {
				return fmt.Errorf("Error: No public port '%s' published for %s", args[1], args[0])
			}
			sort.Slice(lines, func(i, j int) bool { return lines[i].port+lines[i].binding < lines[j].port+lines[j].binding })
			for _, l := range lines {
				if len(args) > 1 {
					fmt.Fprintln(c.Out, l.binding)
				} else {
					fmt.Fprintf(c.Out, "%s -> %s\n", l.port, l.binding)
				}
			}
			return nil
		},
	}
}

func (c *CLI) diffCmd() *cobra.Command {
	return &cobra.Command{
		Use: "diff CONTAINER", Short: "Inspect changes to files or directories on a container's filesystem", Args: exactArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			resp, err := e.ContainerChanges(cmd.Context(), &enginev1.ContainerChangesRequest{Id: args[0]})
			if err != nil {
				return c.daemonErr(err)
			}
			for _, ch := range resp.GetChanges() {
				k := "C"
				switch ch.GetKind() {
				case 1:
					k = "A"
				case 2:
					k = "D"
				}
				fmt.Fprintf(c.Out, "%s %s\n", k, ch.GetPath())
			}
			return nil
		},
	}
}

// writeChunks copies a stream of chunks to w.
func writeChunks(w io.Writer, recv func() (*enginev1.Chunk, error)) error {
	for {
		ch, err := recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(ch.GetData()); err != nil {
			return err
		}
	}
}

// outputFile is -o FILE, or stdout when it is not a terminal.
func (c *CLI) outputFile(path, what string) (io.WriteCloser, error) {
	if path != "" {
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("failed to %s: invalid output path: %w", what, err)
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("failed to %s: %w", what, err)
		}
		return f, nil
	}
	if f, ok := c.Out.(*os.File); ok && isTerminal(f) {
		return nil, fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")
	}
	return nopCloser{c.Out}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (c *CLI) exportCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "export [OPTIONS] CONTAINER", Short: "Export a container's filesystem as a tar archive", Args: exactArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			w, err := c.outputFile(output, "export container")
			if err != nil {
				return err
			}
			defer w.Close()
			st, err := e.ContainerExport(cmd.Context(), &enginev1.ContainerExportRequest{Id: args[0]})
			if err != nil {
				return c.daemonErr(err)
			}
			return c.daemonErr(writeChunks(w, st.Recv))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}
