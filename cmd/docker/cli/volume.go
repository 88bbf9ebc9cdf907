package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"
	"github.com/spf13/cobra"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// volumeRow is one line of `docker volume ls` (and of system df -v's
// volumes), with the Docker CLI's field names.
type volumeRow struct{ v volume.Volume }

func (r volumeRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r volumeRow) Name() string                 { return r.v.Name }
func (r volumeRow) Driver() string               { return r.v.Driver }
func (r volumeRow) Scope() string                { return r.v.Scope }
func (r volumeRow) Mountpoint() string           { return r.v.Mountpoint }
func (r volumeRow) Labels() string {
	var kv []string
	for k, v := range r.v.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}
func (r volumeRow) Label(name string) string { return r.v.Labels[name] }
func (r volumeRow) Links() string {
	if r.v.UsageData == nil {
		return "N/A"
	}
	return strconv.FormatInt(r.v.UsageData.RefCount, 10)
}
func (r volumeRow) Size() string {
	if r.v.UsageData == nil || r.v.UsageData.Size == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(r.v.UsageData.Size))
}
func (r volumeRow) Group() string        { return "N/A" }
func (r volumeRow) Availability() string { return "N/A" }
func (r volumeRow) Status() string       { return "N/A" }

var volumeHeader = headers{"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
	"Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY", "Status": "STATUS"}

func inspectVolumeObj(ctx context.Context, e enginev1.EngineClient, ref string, _ bool) (inspected, error) {
	m, err := e.VolumeInspect(ctx, &enginev1.VolumeInspectRequest{Name: ref})
	if err != nil {
		return inspected{}, err
	}
	return shapeOf[volume.Volume](ctx, m)
}

func (c *CLI) completeVolumes(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	e, err := c.engine()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	resp, err := e.VolumeList(cmd.Context(), &enginev1.VolumeListRequest{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, v := range resp.GetVolumes() {
		if strings.HasPrefix(v.GetName(), prefix) {
			out = append(out, v.GetName())
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *CLI) volumeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "volume COMMAND", Short: "Manage volumes", Args: groupArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.Out)
		return cmd.Help()
	}}
	inspect := c.inspectSub("inspect [OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes", inspectVolumeObj, c.completeVolumes)
	cmd.AddCommand(c.volumeCreateCmd(), c.volumeLsCmd(), c.volumeRmCmd(), c.volumePruneCmd(), inspect)
	return cmd
}

func (c *CLI) volumeCreateCmd() *cobra.Command {
	var driver, name string
	var labels, opts []string
	cmd := &cobra.Command{
		Use: "create [OPTIONS] [VOLUME]", Short: "Create a volume", Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" {
					return flagError{fmt.Errorf("conflicting options: cannot specify a volume-name through both --name and as a positional arg")}
				}
				name = args[0]
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			v, err := e.VolumeCreate(cmd.Context(), &enginev1.VolumeCreateRequest{Name: name, Driver: driver,
				DriverOpts: kvMap(opts), Labels: kvMap(labels), LabelsSet: true})
			if err != nil {
				return c.daemonErr(err)
			}
			fmt.Fprintln(c.Out, v.GetName())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	f.StringVar(&name, "name", "", "Specify volume name")
	f.MarkHidden("name")
	f.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	return cmd
}

func (c *CLI) volumeLsCmd() *cobra.Command {
	var quiet bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use: "ls [OPTIONS]", Aliases: []string{"list"}, Short: "List volumes", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			fj, err := filterJSON(filters)
			if err != nil {
				return flagError{err}
			}
			resp, err := e.VolumeList(cmd.Context(), &enginev1.VolumeListRequest{Filters: fj})
			if err != nil {
				return c.daemonErr(err)
			}
			list, err := dockerShape[volume.ListResponse](cmd.Context(), resp)
			if err != nil {
				return err
			}
			for _, w := range list.Warnings {
				fmt.Fprintln(c.Err, w)
			}
			sort.Slice(list.Volumes, func(i, j int) bool { return naturalLess(list.Volumes[i].Name, list.Volumes[j].Name) })
			rows := make([]any, 0, len(list.Volumes))
			for _, v := range list.Volumes {
				rows = append(rows, volumeRow{v: v})
			}
			if format == "" {
				format = c.configFormat("volumesFormat")
			}
			if quiet && format == "" {
				format = "{{.Name}}"
			}
			return writeRows(c.Out, format, "table {{.Driver}}\t{{.Name}}", volumeHeader, rows)
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, `Provide filter values (e.g. "dangling=true")`)
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	return cmd
}

func (c *CLI) volumeRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "rm [OPTIONS] VOLUME [VOLUME...]", Aliases: []string{"remove"}, Short: "Remove one or more volumes", Args: minArgs(1),
		Long:              "Remove one or more volumes. You cannot remove a volume that is in use by a container.",
		ValidArgsFunction: c.completeVolumes,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			var errs []string
			for _, name := range args {
				if _, err := e.VolumeRemove(cmd.Context(), &enginev1.VolumeRemoveRequest{Name: name, Force: force}); err != nil {
					errs = append(errs, c.daemonErr(err).Error())
					continue
				}
				fmt.Fprintln(c.Out, name)
			}
			if len(errs) > 0 {
				return StatusError{Code: 1, Status: strings.Join(errs, "\n")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

// pruneVolumes prunes volumes (named ones too with all) and prints what
// went, as the Docker CLI's volume prune; it returns the space freed.
func (c *CLI) pruneVolumes(cmd *cobra.Command, all bool, filters []string) (int64, error) {
	e, err := c.engine()
	if err != nil {
		return 0, err
	}
	if all {
		filters = append(filters, "all=true")
	}
	fj, err := filterJSON(filters)
	if err != nil {
		return 0, flagError{err}
	}
	resp, err := e.VolumePrune(cmd.Context(), &enginev1.VolumePruneRequest{Filters: fj})
	if err != nil {
		return 0, c.daemonErr(err)
	}
	c.printDeleted("Volumes", resp.GetVolumesDeleted())
	return resp.GetSpaceReclaimed(), nil
}

func (c *CLI) volumePruneCmd() *cobra.Command {
	return c.pruneAllCmd("Remove unused local volumes",
		"WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?",
		"WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?",
		"Remove all unused volumes, not just anonymous ones", `Provide filter values (e.g. "label=<label>")`, c.pruneVolumes)
}

// naturalLess orders names as the Docker CLI's lists do: runs of digits
// by their value, the rest byte by byte.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// diskUsage is GET /system/df's answer, as the gateway shapes it.
type diskUsage struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []build.CacheRecord
}

// dfRow is one line of `docker system df`.
type dfRow struct {
	typ               string
	total, active     int
	size, reclaimable int64
	percent           bool
}

func (r dfRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r dfRow) Type() string                 { return r.typ }
func (r dfRow) TotalCount() string           { return strconv.Itoa(r.total) }
func (r dfRow) Active() string               { return strconv.Itoa(r.active) }
func (r dfRow) Size() string                 { return units.HumanSize(float64(r.size)) }
func (r dfRow) Reclaimable() string {
	if r.percent && r.size > 0 {
		return fmt.Sprintf("%s (%v%%)", units.HumanSize(float64(r.reclaimable)), (r.reclaimable*100)/r.size)
	}
	return units.HumanSize(float64(r.reclaimable))
}

var dfHeader = headers{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}

// buildCacheRow is one line of system df -v's build cache.
type buildCacheRow struct{ b build.CacheRecord }

func (r buildCacheRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r buildCacheRow) ID() string {
	if r.b.InUse {
		return truncID(r.b.ID) + "*"
	}
	return truncID(r.b.ID)
}
func (r buildCacheRow) CacheType() string { return r.b.Type }
func (r buildCacheRow) Size() string      { return units.HumanSizeWithPrecision(float64(r.b.Size), 3) }
func (r buildCacheRow) CreatedSince() string {
	return units.HumanDuration(time.Now().UTC().Sub(r.b.CreatedAt)) + " ago"
}
func (r buildCacheRow) LastUsedSince() string {
	if r.b.LastUsedAt == nil {
		return ""
	}
	return units.HumanDuration(time.Now().UTC().Sub(*r.b.LastUsedAt)) + " ago"
}
func (r buildCacheRow) UsageCount() string { return strconv.Itoa(r.b.UsageCount) }
func (r buildCacheRow) Shared() string     { return strconv.FormatBool(r.b.Shared) }

var buildCacheHeader = headers{"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
	"LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}

func (c *CLI) dfCmd() *cobra.Command {
	var verbose bool
	var format string
	cmd := &cobra.Command{
		Use: "df [OPTIONS]", Short: "Show docker disk usage", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if verbose && format != "" {
				return fmt.Errorf("docker system df --verbose with --format is not supported by engined yet")
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			resp, err := e.SystemDataUsage(cmd.Context(), &enginev1.SystemDataUsageRequest{})
			if err != nil {
				return c.daemonErr(err)
			}
			du, err := dockerShape[diskUsage](cmd.Context(), resp)
			if err != nil {
				return err
			}
			if verbose {
				return c.writeDiskUsageVerbose(du)
			}
			return writeRows(c.Out, format, "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}", dfHeader, diskUsageRows(du))
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	return cmd
}

// diskUsageRows sum up the four kinds as the Docker CLI's system df does.
func diskUsageRows(du diskUsage) []any {
	imgs := dfRow{typ: "Images", total: len(du.Images), size: du.LayersSize, percent: true}
	var used int64
	for _, i := range du.Images {
		if i.Containers > 0 {
			imgs.active++
			if i.Size != -1 && i.SharedSize != -1 {
				used += i.Size - i.SharedSize
			}
		}
	}
	imgs.reclaimable = du.LayersSize - used
	ctrs := dfRow{typ: "Containers", total: len(du.Containers), percent: true}
	for _, ct := range du.Containers {
		ctrs.size += ct.SizeRw
		switch ct.State {
		case container.StateRunning, container.StatePaused, container.StateRestarting:
			ctrs.active++
		default:
			ctrs.reclaimable += ct.SizeRw
		}
	}
	vols := dfRow{typ: "Local Volumes", total: len(du.Volumes), percent: true}
	for _, v := range du.Volumes {
		if v.UsageData == nil {
			continue
		}
		if v.UsageData.RefCount > 0 {
			vols.active++
		}
		if v.UsageData.Size != -1 {
			vols.size += v.UsageData.Size
			if v.UsageData.RefCount == 0 {
				vols.reclaimable += v.UsageData.Size
			}
		}
	}
	cache := dfRow{typ: "Build Cache", total: len(du.BuildCache)}
	for _, b := range du.BuildCache {
		if b.InUse {
			cache.active++
		}
		if !b.Shared {
			cache.size += b.Size
			if !b.InUse {
				cache.reclaimable += b.Size
			}
		}
	}
	return []any{imgs, ctrs, vols, cache}
}

// writeDiskUsageVerbose is system df -v: a table per kind, as the Docker
// CLI lays it out.
func (c *CLI) writeDiskUsageVerbose(du diskUsage) error {
	fmt.Fprint(c.Out, "Images space usage:\n\n")
	var rows []any
	for _, i := range du.Images {
		repo, tag := "<none>", "<none>"
		if len(i.RepoTags) > 0 {
			if ref, err := reference.ParseNormalizedNamed(i.RepoTags[0]); err == nil {
				if nt, ok := ref.(reference.NamedTagged); ok {
					repo, tag = reference.FamiliarName(ref), nt.Tag()
				}
			}
		}
		rows = append(rows, imageRow{i: i, trunc: true, repo: repo, tag: tag})
	}
	if err := writeRows(c.Out, "", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", imageHeader, rows); err != nil {
		return err
	}
	fmt.Fprint(c.Out, "\nContainers space usage:\n\n")
	rows = nil
	for _, ct := range du.Containers {
		ct.SizeRootFs = 0
		rows = append(rows, containerRow{c: ct, trunc: true})
	}
	if err := writeRows(c.Out, "", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", containerHeader, rows); err != nil {
		return err
	}
	fmt.Fprint(c.Out, "\nLocal Volumes space usage:\n\n")
	rows = nil
	for _, v := range du.Volumes {
		rows = append(rows, volumeRow{v: v})
	}
	if err := writeRows(c.Out, "", "table {{.Name}}\t{{.Links}}\t{{.Size}}", volumeHeader, rows); err != nil {
		return err
	}
	var builder int64
	rows = nil
	for _, b := range du.BuildCache {
		if !b.Shared {
			builder += b.Size
		}
		rows = append(rows, buildCacheRow{b: b})
	}
	fmt.Fprintf(c.Out, "\nBuild cache usage: %s\n\n", units.HumanSize(float64(builder)))
	return writeRows(c.Out, "", "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}", buildCacheHeader, rows)
}
