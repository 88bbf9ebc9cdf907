package cli

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/engined/engined/internal/version"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func clientVersion() string { return version.Version }

func (c *CLI) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the client and engine version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
			fmt.Fprintln(tw, "Client:")
			fmt.Fprintf(tw, " Version:\t%s\n", version.Version)
			fmt.Fprintf(tw, " API version:\t%s\n", version.APIVersion)
			fmt.Fprintf(tw, " Go version:\t%s\n", runtime.Version())
			fmt.Fprintf(tw, " OS/Arch:\t%s/%s\n", runtime.GOOS, runtime.GOARCH)
			tw.Flush()
			e, err := c.engine()
			if err != nil {
				return err
			}
			v, err := e.SystemVersion(cmd.Context(), &enginev1.SystemVersionRequest{})
			if err != nil {
				return c.daemonErr(err)
			}
			printServerVersion(out, v)
			return nil
		},
	}
}

func printServerVersion(out io.Writer, v *enginev1.SystemVersionResponse) {
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "\nServer: %s\n", v.GetPlatformName())
	for _, c := range v.GetComponents() {
		fmt.Fprintf(tw, " %s:\n", c.GetName())
		fmt.Fprintf(tw, "  Version:\t%s\n", c.GetVersion())
		if c.GetName() == "Engine" {
			fmt.Fprintf(tw, "  API version:\t%s (minimum version %s)\n", v.GetApiVersion(), v.GetMinApiVersion())
			fmt.Fprintf(tw, "  Go version:\t%s\n", v.GetGoVersion())
			fmt.Fprintf(tw, "  Git commit:\t%s\n", v.GetGitCommit())
			if t := v.GetBuildTime(); t != nil {
				fmt.Fprintf(tw, "  Built:\t%s\n", t.AsTime().Format(time.ANSIC))
			}
			fmt.Fprintf(tw, "  OS/Arch:\t%s/%s\n", v.GetOs(), v.GetArch())
			fmt.Fprintf(tw, "  Experimental:\t%t\n", v.GetExperimental())
		}
	}
}

func (c *CLI) infoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			in, err := e.SystemInfo(cmd.Context(), &enginev1.SystemInfoRequest{})
			if err != nil {
				return c.daemonErr(err)
			}
			printInfo(cmd.OutOrStdout(), in)
			return nil
		},
	}
}

func printInfo(out io.Writer, in *enginev1.SystemInfoResponse) {
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	p("Server:")
	p(" Containers: %d", in.GetContainers())
	p("  Running: %d", in.GetContainersRunning())
	p("  Paused: %d", in.GetContainersPaused())
	p("  Stopped: %d", in.GetContainersStopped())
	p(" Images: %d", in.GetImages())
	p(" Server Version: %s", in.GetServerVersion())
	p(" Storage Driver: %s", in.GetDriver())
	for _, kv := range in.GetDriverStatus() {
		p("  %s: %s", kv.GetKey(), kv.GetValue())
	}
	p(" Logging Driver: %s", in.GetLoggingDriver())
	p(" Cgroup Driver: %s", in.GetCgroupDriver())
	p(" Cgroup Version: %s", in.GetCgroupVersion())
	p(" Default Runtime: %s", in.GetDefaultRuntime())
	p(" Security Options: %s", strings.Join(in.GetSecurityOptions(), ", "))
	p(" Kernel Version: %s", in.GetKernelVersion())
	p(" Operating System: %s", in.GetOperatingSystem())
	p(" OSType: %s", in.GetOsType())
	p(" Architecture: %s", in.GetArchitecture())
	p(" CPUs: %d", in.GetNcpu())
	p(" Total Memory: %s", humanBytes(in.GetMemTotal()))
	p(" Name: %s", in.GetName())
	p(" ID: %s", in.GetId())
	p(" Docker Root Dir: %s", in.GetDockerRootDir())
	p(" Debug Mode: %t", in.GetDebug())
	if len(in.GetLabels()) > 0 {
		p(" Labels:")
		for _, l := range in.GetLabels() {
			p("  %s", l)
		}
	}
	if m := in.GetRegistryConfig().GetMirrors(); len(m) > 0 {
		p(" Registry Mirrors:")
		for _, x := range m {
			p("  %s", x)
		}
	}
	for _, w := range in.GetWarnings() {
		fmt.Fprintln(out, w)
	}
}

// humanBytes prints binary sizes the way `docker info` does ("23.43GiB").
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
