package cli

import (
	"os"
	"strings"
	"text/template"

	"github.com/containerd/console"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Help in the Docker CLI's layout: "Usage:  docker ps [OPTIONS]", the
// description, the aliases with their full paths, "Options:" wrapped to
// the terminal (80 columns otherwise), flag types named as the Docker
// CLI names them (list, filter, bytes, ...), and no --help line.

// typed renames a flag's value type in help ("list" for repeatable flags).
type typed struct {
	pflag.Value
	name string
}

func (t typed) Type() string { return t.name }

// flagTypes are the Docker CLI's type names where they differ from the
// repeatable-flag default, "list".
var flagTypes = map[string]string{
	"filter": "filter", "mount": "mount", "network": "network", "ulimit": "ulimit",
	"annotation": "map", "sysctl": "map", "opt": "map", "aux-address": "map", "ipam-opt": "map",
	"gateway": "strings", "ip-range": "strings", "subnet": "strings",
	"memory": "bytes", "memory-swap": "bytes", "memory-reservation": "bytes", "shm-size": "bytes",
	"io-maxbandwidth": "bytes", "kernel-memory": "bytes", "gpus": "gpu-request",
}

// listDefaults are the repeatable flags whose help says "(default [])"
// in the Docker CLI.
var listDefaults = map[string]bool{"blkio-weight-device": true, "device-read-bps": true, "device-read-iops": true,
	"device-write-bps": true, "device-write-iops": true, "ulimit": true}

func dockerFlagTypes(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		name := ""
		switch f.Value.Type() {
		case "stringArray":
			name = "list"
		case "stringSlice":
			name = "strings"
		case "float64":
			name = "decimal"
		case "int64", "int32":
			name = "int"
		}
		if n, ok := flagTypes[f.Name]; ok && (name != "" || n == "bytes" || n == "network" || n == "gpu-request") {
			name = n
		}
		if name != "" {
			f.Value = typed{f.Value, name}
			switch {
			case name == "map":
				f.DefValue = "map[]"
			case f.DefValue == "[]" && !listDefaults[f.Name]:
				f.DefValue = "" // no "(default [])", as the Docker CLI
			}
		}
	})
}

func helpWidth() int {
	if con, err := console.ConsoleFromFile(os.Stdout); err == nil {
		if sz, err := con.Size(); err == nil && sz.Width > 0 {
			return int(sz.Width)
		}
	}
	return 80
}

var helpFuncs = template.FuncMap{
	"hasAliases": func(cmd *cobra.Command) bool { return len(cmd.Aliases) > 0 || cmd.Annotations["aliases"] != "" },
	"aliases": func(cmd *cobra.Command) string {
		if a := cmd.Annotations["aliases"]; a != "" {
			return a
		}
		parent := ""
		if cmd.HasParent() {
			parent = cmd.Parent().CommandPath() + " "
		}
		out := []string{cmd.CommandPath()}
		for _, a := range cmd.Aliases {
			out = append(out, parent+a)
		}
		return strings.Join(out, ", ")
	},
	"options": func(cmd *cobra.Command) string {
		return strings.TrimRight(cmd.Flags().FlagUsagesWrapped(helpWidth()-1), " \n")
	},
	"top": func(cmd *cobra.Command) []*cobra.Command {
		if cmd.HasParent() {
			return nil
		}
		var out []*cobra.Command
		for _, name := range topCommands {
			for _, s := range cmd.Commands() {
				if s.Name() == name && s.IsAvailableCommand() {
					out = append(out, s)
				}
			}
		}
		return out
	},
	"management": func(cmd *cobra.Command) []*cobra.Command {
		var out []*cobra.Command
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() && s.HasSubCommands() && !isTop(s) {
				out = append(out, s)
			}
		}
		return out
	},
	"operations": func(cmd *cobra.Command) []*cobra.Command {
		var out []*cobra.Command
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() && !s.HasSubCommands() && !isTop(s) {
				out = append(out, s)
			}
		}
		return out
	},
	"rpad": func(s string, n int) string { return s + strings.Repeat(" ", max(n-len(s), 0)) },
	"trim": strings.TrimSpace,
}

const usageTemplate = `Usage:
{{- if not .HasSubCommands}}  {{.UseLine}}{{end}}
{{- if .HasSubCommands}}  {{.CommandPath}}{{if .HasAvailableFlags}} [OPTIONS]{{end}} COMMAND{{end}}

{{if ne .Long ""}}{{trim .Long}}{{else}}{{trim .Short}}{{end}}
{{- if hasAliases .}}

Aliases:
  {{aliases .}}
{{- end}}
{{- if .HasParent}}{{if .HasAvailableFlags}}

Options:
{{options .}}
{{- end}}{{end}}
{{- if top .}}

Common Commands:
{{- range top .}}
  {{rpad .Name (add1 .NamePadding)}}{{.Short}}
{{- end}}
{{- end}}
{{- if management .}}

Management Commands:
{{- range management .}}
  {{rpad .Name (add1 .NamePadding)}}{{.Short}}
{{- end}}
{{- end}}
{{- if operations .}}{{if .HasSubCommands}}

Commands:
{{- range operations .}}
  {{rpad .Name .NamePadding}} {{.Short}}
{{- end}}
{{- end}}{{end}}
{{- if not .HasParent}}{{if .HasAvailableFlags}}

Global Options:
{{options .}}
{{- end}}{{end}}
{{- if .HasSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.
{{- end}}
{{- if not .HasParent}}

For more help on how to use Docker, head to https://docs.docker.com/go/guides/
{{- end}}
`

// topCommands are the root help's "Common Commands", in the Docker CLI's order.
var topCommands = []string{"run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search", "version", "info"}

func isTop(cmd *cobra.Command) bool {
	if cmd.Parent() == nil || cmd.Parent().HasParent() {
		return false
	}
	for _, n := range topCommands {
		if n == cmd.Name() {
			return true
		}
	}
	return false
}

// dockerHelp gives every command the Docker CLI's help layout.
func dockerHelp(root *cobra.Command) {
	helpFuncs["add1"] = func(n int) int { return n + 1 }
	for name, fn := range helpFuncs {
		cobra.AddTemplateFunc(name, fn)
	}
	shortcutAliases(root)
	var visit func(*cobra.Command)
	visit = func(cmd *cobra.Command) {
		cmd.DisableFlagsInUseLine = true
		cmd.SetUsageTemplate(usageTemplate)
		cmd.SetHelpTemplate(`{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}`)
		if cmd.Flags().Lookup("help") == nil {
			if cmd.Flags().ShorthandLookup("h") == nil {
				cmd.Flags().BoolP("help", "h", false, "Print usage")
			} else {
				cmd.Flags().Bool("help", false, "Print usage")
			}
		}
		if f := cmd.Flags().Lookup("help"); f.Shorthand == "h" {
			cmd.Flags().MarkHidden("help") // where -h is --hostname, the Docker CLI lists --help
		}
		dockerFlagTypes(cmd.Flags())
		for _, s := range cmd.Commands() {
			visit(s)
		}
	}
	visit(root)
}

// formatHelp is --format's help, as the Docker CLI words it.
const formatHelp = "Format output using a custom template:\n" +
	"'table':            Print output in table format with column headers (default)\n" +
	"'table TEMPLATE':   Print output in table format using the given Go template\n" +
	"'json':             Print in JSON format\n" +
	"'TEMPLATE':         Print output using the given Go template.\n" +
	"Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"

// shortcutAliases gives a top-level command and its management twin
// (docker ps and docker container ls) the Docker CLI's alias line:
// "docker container ls, docker container list, docker container ps, docker ps".
func shortcutAliases(root *cobra.Command) {
	twins := map[string][2]string{"images": {"image", "ls"}, "rmi": {"image", "rm"}, "ps": {"container", "ls"}}
	for _, top := range root.Commands() {
		if top.HasSubCommands() || top.Name() == "inspect" {
			continue
		}
		var twin *cobra.Command
		if t, ok := twins[top.Name()]; ok {
			if g, _, err := root.Find([]string{t[0], t[1]}); err == nil && g.Name() == t[1] {
				twin = g
			}
		}
		for _, group := range []string{"container", "image", "system"} {
			if twin != nil {
				break
			}
			if g, _, err := root.Find([]string{group, top.Name()}); err == nil && g != top && g.Name() == top.Name() && g.HasParent() && g.Parent().Name() == group {
				twin = g
			}
		}
		if twin == nil {
			continue
		}
		line := []string{twin.CommandPath()}
		for _, a := range twin.Aliases {
			line = append(line, twin.Parent().CommandPath()+" "+a)
		}
		line = append(line, top.CommandPath())
		if top.Annotations == nil {
			top.Annotations = map[string]string{}
		}
		if twin.Annotations == nil {
			twin.Annotations = map[string]string{}
		}
		top.Annotations["aliases"] = strings.Join(line, ", ")
		twin.Annotations["aliases"] = top.Annotations["aliases"]
	}
}

const inspectFormatHelp = "Format output using a custom template:\n" +
	"'json':             Print in JSON format\n" +
	"'TEMPLATE':         Print output using the given Go template.\n" +
	"Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"
