package cli

import (
	"fmt"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/system"
	"os"
	"runtime"
	"sort"
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
			if format == "" {
				c.printClientInfo()
			}
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
			info, err := dockerShape[system.Info](cmd.Context(), in)
			if err != nil {
				return err
			}
			// The gateway fills in engined's commit from its own build;
			// in this process that is the CLI's, so ask the engine.
			if v, err := e.SystemVersion(cmd.Context(), &enginev1.SystemVersionRequest{}); err == nil {
				info.ContainerdCommit.ID = v.GetGitCommit()
			}
			c.printInfo(info)
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

// printClientInfo is the client part of `docker info`, printed before the
// engine is asked, as the Docker CLI does.
func (c *CLI) printClientInfo() {
	fmt.Fprintln(c.Out, "Client:")
	fmt.Fprintln(c.Out, " Version:   ", clientVersion())
	fmt.Fprintln(c.Out, " Context:   ", c.contextName())
	fmt.Fprintln(c.Out, " Debug Mode:", c.debug)
	fmt.Fprintln(c.Out)
	fmt.Fprintln(c.Out, "Server:")
}

// printInfo lays `docker info` out as the Docker CLI does, from the REST
// shape of the engine's info.
func (c *CLI) printInfo(in system.Info) {
	out := c.Out
	p := func(args ...any) { fmt.Fprintln(out, args...) }
	nonEmpty := func(label, v string) {
		if v != "" {
			p(label, v)
		}
	}
	p(" Containers:", in.Containers)
	p("  Running:", in.ContainersRunning)
	p("  Paused:", in.ContainersPaused)
	p("  Stopped:", in.ContainersStopped)
	p(" Images:", in.Images)
	nonEmpty(" Server Version:", in.ServerVersion)
	nonEmpty(" Storage Driver:", in.Driver)
	for _, kv := range in.DriverStatus {
		fmt.Fprintf(out, "  %s: %s\n", kv[0], kv[1])
	}
	for _, kv := range in.SystemStatus {
		fmt.Fprintf(out, " %s: %s\n", kv[0], kv[1])
	}
	nonEmpty(" Logging Driver:", in.LoggingDriver)
	nonEmpty(" Cgroup Driver:", in.CgroupDriver)
	nonEmpty(" Cgroup Version:", in.CgroupVersion)
	p(" Plugins:")
	p("  Volume:", strings.Join(in.Plugins.Volume, " "))
	p("  Network:", strings.Join(in.Plugins.Network, " "))
	if len(in.Plugins.Authorization) > 0 {
		p("  Authorization:", strings.Join(in.Plugins.Authorization, " "))
	}
	p("  Log:", strings.Join(in.Plugins.Log, " "))
	p(" Swarm:", in.Swarm.LocalNodeState)
	if len(in.Runtimes) > 0 {
		names := make([]string, 0, len(in.Runtimes))
		for n := range in.Runtimes {
			names = append(names, n)
		}
		sort.Strings(names)
		p(" Runtimes:", strings.Join(names, " "))
		p(" Default Runtime:", in.DefaultRuntime)
	}
	if in.OSType == "linux" {
		p(" Init Binary:", in.InitBinary)
		p(" containerd version:", in.ContainerdCommit.ID)
		p(" runc version:", in.RuncCommit.ID)
		p(" init version:", in.InitCommit.ID)
		if len(in.SecurityOptions) > 0 {
			p(" Security Options:")
			for _, so := range in.SecurityOptions {
				// name=seccomp,profile=builtin
				var name, profile string
				for _, kv := range strings.Split(so, ",") {
					k, v, _ := strings.Cut(kv, "=")
					switch k {
					case "name":
						name = v
					case "profile":
						profile = v
					}
				}
				p("  " + name)
				if profile != "" {
					p("   Profile:", profile)
				}
			}
		}
	}
	nonEmpty(" Kernel Version:", in.KernelVersion)
	nonEmpty(" Operating System:", in.OperatingSystem)
	nonEmpty(" OSType:", in.OSType)
	nonEmpty(" Architecture:", in.Architecture)
	p(" CPUs:", in.NCPU)
	p(" Total Memory:", units.BytesSize(float64(in.MemTotal)))
	nonEmpty(" Name:", in.Name)
	nonEmpty(" ID:", in.ID)
	p(" Docker Root Dir:", in.DockerRootDir)
	p(" Debug Mode:", in.Debug)
	if in.Debug || c.debug {
		p("  File Descriptors:", in.NFd)
		p("  Goroutines:", in.NGoroutines)
		p("  System Time:", in.SystemTime)
		p("  EventsListeners:", in.NEventsListener)
	}
	nonEmpty(" HTTP Proxy:", in.HTTPProxy)
	nonEmpty(" HTTPS Proxy:", in.HTTPSProxy)
	nonEmpty(" No Proxy:", in.NoProxy)
	if len(in.Labels) > 0 {
		p(" Labels:")
		for _, l := range in.Labels {
			p("  " + l)
		}
	}
	p(" Experimental:", in.ExperimentalBuild)
	if rc := in.RegistryConfig; rc != nil {
		if len(rc.InsecureRegistryCIDRs) > 0 || len(rc.IndexConfigs) > 0 {
			p(" Insecure Registries:")
			names := make([]string, 0, len(rc.IndexConfigs))
			for n := range rc.IndexConfigs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if !rc.IndexConfigs[n].Secure {
					p("  " + rc.IndexConfigs[n].Name)
				}
			}
			for _, cidr := range rc.InsecureRegistryCIDRs {
				fmt.Fprintf(out, "  %s\n", cidr)
			}
		}
		if len(rc.Mirrors) > 0 {
			p(" Registry Mirrors:")
			for _, m := range rc.Mirrors {
				p("  " + m)
			}
		}
	}
	p(" Live Restore Enabled:", in.LiveRestoreEnabled)
	p()
	for _, w := range in.Warnings {
		fmt.Fprintln(c.Err, w)
	}
}
