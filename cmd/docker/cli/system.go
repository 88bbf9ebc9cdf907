package cli

import (
	"fmt"
	"github.com/moby/moby/api/types/system"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/engined/engined/internal/version"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func clientVersion() string { return version.Version }

// versionTemplate lays `docker version` out as the Docker CLI does.
const versionTemplate = `{{with .Client -}}
Client:{{if .Platform}}{{if .Platform.Name}} {{.Platform.Name}}{{end}}{{end}}
 Version:	{{.Version}}
 API version:	{{.APIVersion}}
 Go version:	{{.GoVersion}}
 Git commit:	{{.GitCommit}}
 Built:	{{.BuildTime}}
 OS/Arch:	{{.Os}}/{{.Arch}}
 Context:	{{.Context}}
{{- end}}
{{- if .Server}}{{with .Server}}

Server:{{if .Platform.Name}} {{.Platform.Name}}{{end}}
{{- range .Components}}
 {{.Name}}:
{{- if eq .Name "Engine"}}
  Version:	{{.Version}}
  API version:	{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:	{{index .Details "GoVersion"}}
  Git commit:	{{index .Details "GitCommit"}}
  Built:	{{index .Details "BuildTime"}}
  OS/Arch:	{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:	{{index .Details "Experimental"}}
{{- else}}
  Version:	{{.Version}}
{{- end}}
{{- end}}
{{- end}}{{end}}`

type versionPlatform struct {
	Name string `json:"Name,omitempty"`
}

type versionClient struct {
	Platform   *versionPlatform `json:"Platform,omitempty"`
	Version    string           `json:"Version,omitempty"`
	APIVersion string           `json:"ApiVersion,omitempty"`
	GitCommit  string           `json:"GitCommit,omitempty"`
	GoVersion  string           `json:"GoVersion,omitempty"`
	Os         string           `json:"Os,omitempty"`
	Arch       string           `json:"Arch,omitempty"`
	BuildTime  string           `json:"BuildTime,omitempty"`
	Context    string           `json:"Context"`
}

type versionAll struct {
	Client versionClient
	Server *system.VersionResponse
}

func ansicDate(t string) string {
	if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return p.Format(time.ANSIC)
	}
	return t
}

// contextName is the context the CLI uses, as `docker version` shows it.
func (c *CLI) contextName() string {
	if c.host != "" || os.Getenv("DOCKER_HOST") != "" && c.contextArg == "" {
		return "default"
	}
	if c.contextArg != "" {
		return c.contextArg
	}
	if n := os.Getenv("DOCKER_CONTEXT"); n != "" {
		return n
	}
	if n := c.currentContext(); n != "" {
		return n
	}
	return "default"
}

func (c *CLI) versionCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the Docker version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmplText := format
			switch format {
			case "":
				tmplText = versionTemplate
			case "json":
				tmplText = "{{json .}}"
			}
			tmpl, err := parseTemplate(tmplText)
			if err != nil {
				return StatusError{Code: 64, Status: err.Error()}
			}
			all := versionAll{Client: versionClient{Platform: &versionPlatform{Name: "engined"}, Version: version.Version,
				APIVersion: version.APIVersion, GitCommit: version.GitCommit, GoVersion: runtime.Version(), Os: runtime.GOOS,
				Arch: runtime.GOARCH, BuildTime: ansicDate(version.BuildTime), Context: c.contextName()}}
			var callErr error
			if e, err := c.engine(); err != nil {
				callErr = err
			} else if v, err := e.SystemVersion(cmd.Context(), &enginev1.SystemVersionRequest{}); err != nil {
				callErr = c.daemonErr(err)
			} else {
				sv, err := dockerShape[system.VersionResponse](cmd.Context(), v)
				if err != nil {
					return err
				}
				for i, comp := range sv.Components {
					if comp.Name == "Engine" && comp.Details != nil {
						if bt, ok := comp.Details["BuildTime"]; ok {
							sv.Components[i].Details["BuildTime"] = ansicDate(bt)
						} else {
							sv.Components[i].Details["BuildTime"] = ansicDate(sv.BuildTime)
						}
					}
				}
				all.Server = &sv
			}
			tw := tabwriter.NewWriter(c.Out, 20, 1, 1, ' ', 0)
			err = tmpl.Execute(tw, all)
			tw.Write([]byte("\n"))
			tw.Flush()
			if callErr != nil {
				return callErr
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

func (c *CLI) infoCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
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
			if format != "" {
				// The REST shape, as the Docker CLI formats it.
				obj, err := shapeOf[system.Info](cmd.Context(), in)
				if err != nil {
					return err
				}
				return c.formatOne(format, obj)
			}
			printInfo(c.Out, in)
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

// formatOne prints one object with a --format template ("json": the REST JSON).
func (c *CLI) formatOne(format string, obj inspected) error {
	if format == "json" {
		fmt.Fprintln(c.Out, string(obj.raw))
		return nil
	}
	tmpl, err := parseTemplate(templateString(format))
	if err != nil {
		return StatusError{Code: 64, Status: err.Error()}
	}
	if err := tmpl.Execute(c.Out, obj.typed); err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	fmt.Fprintln(c.Out)
	return nil
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
