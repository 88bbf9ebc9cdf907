package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

type statsRow struct {
	id, name                   string
	noTrunc                    bool
	cpu, mem, memLimit, memPct float64
	pids                       uint64
}

func (r statsRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r statsRow) ID() string {
	if r.noTrunc {
		return r.id
	}
	return truncID(r.id)
}
func (r statsRow) Container() string { return r.name }
func (r statsRow) Name() string      { return r.name }
func (r statsRow) CPUPerc() string   { return fmt.Sprintf("%.2f%%", r.cpu) }
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

var statsHeader = headers{"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
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
			def := "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
			if noStream {
				// One sample pair per container, all at once (each takes
				// the engine's sampling interval).
				results := make([]statsRow, len(ids))
				errs := make([]error, len(ids))
				var wg sync.WaitGroup
				for i, id := range ids {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i], errs[i] = c.statsOnce(ctx, e, id)
					}()
				}
				wg.Wait()
				var rows []any
				for i, r := range results {
					if errs[i] == nil {
						r.noTrunc = noTrunc
						rows = append(rows, r)
					}
				}
				if err := writeRows(c.Out, format, def, statsHeader, rows); err != nil {
					return err
				}
				return errors.Join(errs...)
			}
			return c.statsStream(ctx, e, ids, format, def, noTrunc)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	return cmd
}

// statsOnce is one row from two samples of the container's stream.
func (c *CLI) statsOnce(ctx context.Context, e enginev1.EngineClient, id string) (statsRow, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := e.ContainerStats(ctx, &enginev1.ContainerStatsRequest{Id: id, Stream: true})
	if err != nil {
		return statsRow{}, c.daemonErr(err)
	}
	first, err := st.Recv()
	if err != nil {
		return statsRow{}, c.daemonErr(err)
	}
	// CPU % needs a second sample, as dockerd's precpu_stats.
	second := first
	if m, err := st.Recv(); err == nil {
		second = m
	} else if !errors.Is(err, io.EOF) {
		return statsRow{}, c.daemonErr(err)
	}
	r := sample(first, second)
	if r.name == "" {
		r.name = filepath.Base(id)
	}
	return r, nil
}

// statsStream redraws the table as samples come, one stream per
// container, until the command's context ends (ctrl-c ends the CLI).
func (c *CLI) statsStream(ctx context.Context, e enginev1.EngineClient, ids []string, format, def string, noTrunc bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type update struct {
		i   int
		row statsRow
		err error
	}
	updates := make(chan update)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := e.ContainerStats(ctx, &enginev1.ContainerStatsRequest{Id: id, Stream: true})
			var prev *enginev1.ContainerStatsResponse
			for err == nil {
				var m *enginev1.ContainerStatsResponse
				if m, err = st.Recv(); err != nil {
					break
				}
				if prev != nil {
					r := sample(prev, m)
					r.noTrunc = noTrunc
					select {
					case updates <- update{i: i, row: r}:
					case <-ctx.Done():
						return
					}
				}
				prev = m
			}
			select {
			case updates <- update{i: i, err: c.daemonErr(err)}:
			case <-ctx.Done():
			}
		}()
	}
	rows := make([]*statsRow, len(ids))
	live := len(ids)
	for live > 0 {
		var u update
		select {
		case u = <-updates:
		case <-ctx.Done():
			return nil
		}
		if u.err != nil {
			live--
			if !errors.Is(u.err, io.EOF) && !errors.Is(u.err, context.Canceled) {
				fmt.Fprintln(c.Err, u.err)
			}
			continue
		}
		rows[u.i] = &u.row
		var out []any
		for _, r := range rows {
			if r != nil {
				out = append(out, *r)
			}
		}
		if c.outIsTerminal(c.Out) {
			fmt.Fprint(c.Out, "\x1b[2J\x1b[H")
		}
		if err := writeRows(c.Out, format, def, statsHeader, out); err != nil {
			return err
		}
	}
	return nil
}
