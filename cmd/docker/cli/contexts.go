package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/engined/engined/internal/engineclient"
)

// The Docker CLI's context store, read (ls, show) and its current
// context set (use): contexts are made with the Docker CLI.

type contextRow struct {
	name, description, endpoint string
	current                     bool
}

func (r contextRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r contextRow) Name() string                 { return r.name }
func (r contextRow) Description() string          { return r.description }
func (r contextRow) DockerEndpoint() string       { return r.endpoint }
func (r contextRow) Current() bool                { return r.current }
func (r contextRow) Error() string                { return "" }

var contextHeader = headers{"Name": "NAME", "Description": "DESCRIPTION", "DockerEndpoint": "DOCKER ENDPOINT", "Error": "ERROR", "Current": ""}

// contexts lists the store's contexts by name.
func (c *CLI) contexts() ([]contextRow, error) {
	dir := filepath.Join(c.config(), "contexts", "meta")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []contextRow
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue
		}
		var meta struct {
			Name      string
			Metadata  struct{ Description string }
			Endpoints map[string]struct{ Host string }
		}
		if json.Unmarshal(b, &meta) != nil {
			continue
		}
		out = append(out, contextRow{name: meta.Name, description: meta.Metadata.Description, endpoint: meta.Endpoints["docker"].Host})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (c *CLI) contextCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "context", Short: "Manage contexts", Args: groupArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.Out)
		return cmd.Help()
	}}
	var quiet bool
	var format string
	ls := &cobra.Command{
		Use: "ls [OPTIONS]", Aliases: []string{"list"}, Short: "List contexts", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := c.contexts()
			if err != nil {
				return err
			}
			current := c.contextName()
			host := os.Getenv("DOCKER_HOST")
			if host == "" {
				host = engineclient.DefaultHost
			}
			rows := []any{contextRow{name: "default", description: "Current DOCKER_HOST based configuration", endpoint: host, current: current == "default"}}
			for _, r := range list {
				r.current = r.name == current
				rows = append(rows, r)
			}
			if quiet && format == "" {
				format = "{{.Name}}"
			}
			if err := writeRows(c.Out, format, "table {{.Name}}{{if .Current}} *{{end}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}", contextHeader, rows); err != nil {
				return err
			}
			if os.Getenv("DOCKER_HOST") != "" {
				fmt.Fprintln(c.Err, "Warning: DOCKER_HOST environment variable overrides the active context. To use a context, either set the global --context flag, or unset DOCKER_HOST environment variable.")
			}
			return nil
		},
	}
	ls.Flags().StringVar(&format, "format", "", formatHelp)
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show context names")
	show := &cobra.Command{
		Use: "show", Short: "Print the name of the current context", Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(c.Out, c.contextName())
			return nil
		},
	}
	use := &cobra.Command{
		Use: "use CONTEXT", Short: "Set the current docker context", Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			if name != "default" {
				sum := sha256.Sum256([]byte(name))
				p := filepath.Join(c.config(), "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
				f, err := os.Open(p)
				if err != nil {
					return fmt.Errorf("context %q: context not found: %w", name, err)
				}
				f.Close()
			}
			if err := c.updateConfig(func(all map[string]any) {
				if name == "default" {
					delete(all, "currentContext")
				} else {
					all["currentContext"] = name
				}
			}); err != nil {
				return err
			}
			fmt.Fprintln(c.Out, name)
			fmt.Fprintf(c.Err, "Current context is now %q\n", name)
			if os.Getenv("DOCKER_HOST") != "" {
				fmt.Fprintf(c.Err, "Warning: DOCKER_HOST environment variable overrides the active context. To use %q, either set the global --context flag, or unset DOCKER_HOST environment variable.\n", name)
			}
			return nil
		},
	}
	cmd.AddCommand(ls, show, use)
	return cmd
}
