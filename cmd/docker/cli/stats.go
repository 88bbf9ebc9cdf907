package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

type statsRow struct {
	id, name                   string
	cpu, mem, memLimit, memPct float64
	pids                       uint64
}

func (r statsRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r statsRow) ID() string                   { return truncID(r.id) }
func (r statsRow) Container() string            { return r.name }
func (r statsRow) Name() string                 { return r.name }
func (r statsRow) CPUPerc() string              { return fmt.Sprintf("%.2f%%", r.cpu) }
func (r statsRow) MemUsage() string {
	return units.BytesSize(r.mem) + " / " + units.BytesSize(r.memLimit)
}
func (r statsRow) MemPerc() string { return fmt.Sprintf("%.2f%%", r.memPct) }
func (r statsRow) NetIO() string {
	return units.HumanSizeWithPrecision(0, 3) + " / " + units.HumanSizeWithPrecision(0, 3)
}
func (r statsRow) BlockIO() string {
	return units.HumanSizeWithPrecision(0, 3) + " / " + units.HumanSizeWithPrecision(0, 3)
}
func (r statsRow) PIDs() string { return fmt.Sprintf("%d", r.pids) }

var statsHeader = map[string]string{"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}

// sample computes a row from two samples, as the Docker CLI does from
// cpu_stats and precpu_stats.
func sample(prev, cur *enginev1.ContainerStatsResponse) statsRow {
	r := statsRow{id: cur.GetId(), name: strings.TrimPrefix(cur.GetName(), "/"), pids: cur.GetPidsCurrent()}
	cpuDelta := float64(cur.GetCpuTotalNs()) - float64(prev.GetCpuTotalNs())
	sysDelta := float64(cur.GetSystemCpuNs()) - float64(prev.GetSystemCpuNs())
	n := float64(cur.GetOnlineCpus())
	if n == 0 {
		n = float64(len(cur.GetCpuPercpuNs()))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		r.cpu = cpuDelta / sysDelta * n * 100
	}
	mem := float64(cur.GetMemoryUsage())
	st := cur.GetMemoryStats()
	if v, ok := st["total_inactive_file"]; ok && float64(v) < mem {
		mem -= float64(v)
	} else if v, ok := st["inactive_file"]; ok && float64(v) < mem {
		mem -= float64(v)
	}
	r.mem, r.memLimit = mem, float64(cur.GetMemoryLimit())
	if r.memLimit > 0 {
		r.memPct = mem / r.memLimit * 100
	}
	return r
}

func (c *CLI) statsCmd() *cobra.Command {
	var all, noStream, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use: "stats [OPTIONS] [CONTAINER...]", Short: "Display a live stream of container(s) resource usage statistics",
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := c.engine()
			if err != nil {
				return err
			}
			ids := args
			if len(ids) == 0 {
				list, err := e.ContainerList(ctx, &enginev1.ContainerListRequest{All: all})
				if err != nil {
					return c.daemonErr(err)
				}
				for _, ct := range list.GetContainers() {
					ids = append(ids, ct.GetId())
				}
			}
			var rows []any
			var errs []error
			for _, id := range ids {
				st, err := e.ContainerStats(ctx, &enginev1.ContainerStatsRequest{Id: id, Stream: true})
				if err != nil {
					errs = append(errs, c.daemonErr(err))
					continue
				}
				first, err := st.Recv()
				if err != nil {
					errs = append(errs, c.daemonErr(err))
					continue
				}
				// CPU % needs a second sample, as dockerd's precpu_stats.
				second := first
				if m, err := st.Recv(); err == nil {
					second = m
				} else if !errors.Is(err, io.EOF) {
					errs = append(errs, c.daemonErr(err))
					continue
				}
				r := sample(first, second)
				if r.name == "" {
					r.name = filepath.Base(id)
				}
				rows = append(rows, r)
			}
			if err := writeRows(c.Out, format, "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}", statsHeader, rows); err != nil {
				return err
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	return cmd
}
