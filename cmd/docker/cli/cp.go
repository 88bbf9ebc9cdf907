package cli

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// splitCpArg splits CONTAINER:PATH; a path with a slash before the colon
// (or starting with / or .) is local, as the Docker CLI decides.
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || strings.Contains(ctr, "/") {
		return "", arg
	}
	return ctr, p
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *CLI) cpCmd() *cobra.Command {
	var archive, follow, quiet bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem", Args: exactArgs(2),
		Long: "Copy files/folders between a container and the local filesystem\n\n" +
			"Use '-' as the source to read a tar archive from stdin\n" +
			"and extract it to a directory destination in a container.\n" +
			"Use '-' as the destination to stream a tar archive of a\n" +
			"container source to stdout.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow {
				return errors.New("cp --follow-link is not supported by engined's CLI yet")
			}
			srcCtr, src := splitCpArg(args[0])
			dstCtr, dst := splitCpArg(args[1])
			switch {
			case srcCtr != "" && dstCtr != "":
				return errors.New("copying between containers is not supported")
			case srcCtr == "" && dstCtr == "":
				return errors.New("must specify at least one container source")
			case srcCtr != "":
				return c.cpFrom(cmd, srcCtr, src, dst, quiet)
			}
			return c.cpTo(cmd, src, dstCtr, dst, archive, quiet)
		},
	}
	cmd.Flags().BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolVarP(&follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached")
	return cmd
}

func (c *CLI) cpFrom(cmd *cobra.Command, ctr, src, dst string, quiet bool) error {
	e, err := c.engine()
	if err != nil {
		return err
	}
	st, err := e.ContainerArchiveGet(cmd.Context(), &enginev1.ContainerArchiveRequest{Id: ctr, Path: src})
	if err != nil {
		return c.daemonErr(err)
	}
	if dst == "-" {
		return c.daemonErr(writeChunks(c.Out, st.Recv))
	}
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw}
	go func() { pw.CloseWithError(writeChunks(cw, st.Recv)) }()
	defer pr.Close()
	// Into an existing directory the copy keeps its name; otherwise it
	// becomes dst.
	dir, rename := dst, ""
	if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
		dir, rename = filepath.Dir(dst), filepath.Base(dst)
	}
	if _, err := extractTar(pr, dir, rename); err != nil {
		return c.daemonErr(err)
	}
	// As the Docker CLI: the size of the archive, on a terminal only.
	if !quiet && c.outIsTerminal(c.Err) {
		fmt.Fprintf(c.Err, "Successfully copied %s to %s\n", units.HumanSizeWithPrecision(float64(cw.n), 3), dst)
	}
	return nil
}

// extractTar writes a tar stream under dir, its first path component
// renamed to rename if set; entries leaving dir are refused.
func extractTar(r io.Reader, dir, rename string) (int64, error) {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		name := path.Clean(h.Name)
		if rename != "" {
			first, rest, _ := strings.Cut(name, "/")
			_ = first
			name = path.Join(rename, rest)
		}
		if name == ".." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return total, fmt.Errorf("archive entry %q leaves the destination", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		mode := h.FileInfo().Mode().Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return total, err
			}
		case tar.TypeSymlink:
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return total, err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
			if err != nil {
				return total, err
			}
			n, err := io.Copy(f, tr)
			total += n
			f.Close()
			if err != nil {
				return total, err
			}
		}
	}
}

func (c *CLI) cpTo(cmd *cobra.Command, src, ctr, dst string, archive, quiet bool) error {
	e, err := c.engine()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	dir, rename := dst, ""
	if src != "-" {
		stat, err := e.ContainerArchiveStat(ctx, &enginev1.ContainerArchiveRequest{Id: ctr, Path: dst})
		isDir := err == nil && os.FileMode(stat.GetMode()).IsDir()
		if err != nil && !isNotFound(c.daemonErr(err)) {
			return c.daemonErr(err)
		}
		if !isDir {
			if strings.HasSuffix(dst, "/") {
				return fmt.Errorf("Error response from daemon: Could not find the file %s in container %s", dst, ctr)
			}
			dir, rename = path.Dir(dst), path.Base(dst)
		}
	}
	put, err := e.ContainerArchivePut(ctx)
	if err != nil {
		return c.daemonErr(err)
	}
	if err := put.Send(&enginev1.ContainerArchivePutRequest{Options: &enginev1.ContainerArchivePutOptions{Id: ctr, Path: dir, CopyUidGid: archive}}); err != nil {
		return c.daemonErr(err)
	}
	send := func(b []byte) error { return put.Send(&enginev1.ContainerArchivePutRequest{Data: b}) }
	var size int64
	if src == "-" {
		if err := sendFile(c.In, send); err != nil {
			return err
		}
	} else {
		pr, pw := io.Pipe()
		cw := &countingWriter{w: pw}
		name := filepath.Base(src)
		if rename != "" {
			name = rename
		}
		go func() { pw.CloseWithError(writeTar(cw, src, name)) }()
		err := sendFile(pr, send)
		pr.Close()
		if err != nil {
			return err
		}
		size = cw.n
	}
	if _, err := put.CloseAndRecv(); err != nil {
		return c.daemonErr(err)
	}
	if !quiet && src != "-" && c.outIsTerminal(c.Err) {
		fmt.Fprintf(c.Err, "Successfully copied %s to %s:%s\n", units.HumanSizeWithPrecision(float64(size), 3), ctr, dst)
	}
	return nil
}

// writeTar writes src (a file or a tree) as a tar stream named name.
func writeTar(w io.Writer, src, name string) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = path.Join(name, filepath.ToSlash(rel))
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func (c *CLI) updateCmd() *cobra.Command {
	var memory, memorySwap, memoryReservation, restart string
	var cpus float64
	var cpuShares, cpuPeriod, cpuQuota, pidsLimit int64
	var cpusetCpus, cpusetMems string
	cmd := &cobra.Command{
		Use: "update [OPTIONS] CONTAINER [CONTAINER...]", Short: "Update configuration of one or more containers", Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().NFlag() == 0 {
				return errors.New("you must provide one or more flags when using this command")
			}
			if err := unsupported(cmd, "blkio-weight", "cpu-rt-period", "cpu-rt-runtime"); err != nil {
				return err
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			hc := &enginev1.HostConfig{CpuShares: cpuShares, CpuPeriod: cpuPeriod, CpuQuota: cpuQuota, CpusetCpus: cpusetCpus, CpusetMems: cpusetMems,
				NanoCpus: int64(cpus * 1e9)}
			if hc.Memory, err = parseSize("memory", memory); err != nil {
				return err
			}
			if hc.MemorySwap, err = parseSize("memory-swap", memorySwap); err != nil {
				return err
			}
			if hc.MemoryReservation, err = parseSize("memory-reservation", memoryReservation); err != nil {
				return err
			}
			if cmd.Flags().Changed("pids-limit") {
				hc.PidsLimit = &pidsLimit
			}
			if cmd.Flags().Changed("restart") {
				p, err := parseRestart(restart)
				if err != nil {
					return err
				}
				hc.RestartPolicy = &enginev1.RestartPolicy{Name: string(p.Name), MaximumRetryCount: int32(p.MaximumRetryCount)}
			}
			return c.forEach(args, func(id string) error {
				resp, err := e.ContainerUpdate(cmd.Context(), &enginev1.ContainerUpdateRequest{Id: id, Resources: hc})
				if err != nil {
					return c.daemonErr(err)
				}
				for _, w := range resp.GetWarnings() {
					fmt.Fprintln(c.Err, w)
				}
				fmt.Fprintln(c.Out, id)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Uint16("blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	f.Int64("cpu-rt-period", 0, "Limit the CPU real-time period in microseconds")
	f.Int64("cpu-rt-runtime", 0, "Limit the CPU real-time runtime in microseconds")
	f.StringVarP(&memory, "memory", "m", "", "Memory limit")
	f.StringVar(&memorySwap, "memory-swap", "", `Swap limit equal to memory plus swap: -1 to enable unlimited swap`)
	f.StringVar(&memoryReservation, "memory-reservation", "", "Memory soft limit")
	f.StringVar(&restart, "restart", "", "Restart policy to apply when a container exits")
	f.Float64Var(&cpus, "cpus", 0, "Number of CPUs")
	f.Int64VarP(&cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	f.Int64Var(&pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	return cmd
}

var _ = container.Config{}
