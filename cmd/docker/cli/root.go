// Package cli is engined's docker CLI: the Docker CLI's commands, flags,
// output and exit codes over the Engine gRPC service.
package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/engined/engined/internal/engineclient"
	"github.com/engined/engined/internal/version"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// StatusError ends the CLI with Code, printing Status (if any) on stderr.
type StatusError struct {
	Status string
	Code   int
}

func (e StatusError) Error() string { return e.Status }

// CLI is the state shared by the commands.
type CLI struct {
	host       string
	contextArg string
	configDir  string
	logLevel   string
	debug      bool
	tls        engineclient.TLS

	conn   *engineclient.Conn
	target string // the address dialled, for error messages

	In       io.Reader
	Out, Err io.Writer
}

// Execute runs the CLI with args and returns the process's exit code.
func Execute(ctx context.Context, args []string) int {
	c := &CLI{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	root := c.rootCmd()
	if len(args) > 0 && (args[0] == "completion" || args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		// Completion scripts are for the name the CLI is installed under
		// (engined-docker), so they leave the Docker CLI's alone.
		if name := filepath.Base(os.Args[0]); name != "docker" && name != "." {
			root.Use = name + " [OPTIONS] COMMAND [ARG...]"
		}
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if c.conn != nil {
		c.conn.Close()
	}
	if err == nil {
		return 0
	}
	var se StatusError
	if errors.As(err, &se) {
		if se.Status != "" {
			fmt.Fprintln(c.Err, se.Status)
		}
		if se.Code == 0 {
			return 1
		}
		return se.Code
	}
	if isFlagError(err) {
		fmt.Fprintf(c.Err, "%s\n\nUsage:  %s\n\nRun '%s --help' for more information\n", err, usageLine(cmd), cmd.CommandPath())
		return 125
	}
	fmt.Fprintln(c.Err, err)
	return 1
}

type flagError struct{ error }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// usageLine is the command's path and Use, without cobra's " [flags]".
func usageLine(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Use
	}
	return cmd.Parent().CommandPath() + " " + cmd.Use
}

func (c *CLI) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:               "docker [OPTIONS] COMMAND [ARG...]",
		Short:             "A self-sufficient runtime for containers",
		SilenceUsage:      true,
		SilenceErrors:     true,
		TraverseChildren:  true,
		Version:           "",
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return StatusError{Status: fmt.Sprintf("docker: unknown command: docker %s\n\nRun 'docker --help' for more information", args[0]), Code: 1}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				fmt.Fprintf(c.Out, "Docker version %s, build %s\n", clientVersion(), version.GitCommit)
				return nil
			}
			cmd.SetOut(c.Out)
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError{err} })
	// Global options go before the command, as with the Docker CLI (they
	// are not inherited: -c, -l and -H mean other things to commands).
	pf := root.Flags()
	home, _ := os.UserHomeDir()
	dot := filepath.Join(home, ".docker")
	pf.StringVar(&c.configDir, "config", "", `Location of client config files (default "`+dot+`")`)
	pf.StringVarP(&c.contextArg, "context", "c", "", `Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and default context set with "docker context use")`)
	pf.BoolVarP(&c.debug, "debug", "D", false, "Enable debug mode")
	pf.StringVarP(&c.host, "host", "H", "", "Daemon socket to connect to")
	pf.Lookup("host").Value = typed{pf.Lookup("host").Value, "list"}
	pf.StringVarP(&c.logLevel, "log-level", "l", "info", `Set the logging level ("debug", "info", "warn", "error", "fatal")`)
	pf.BoolVar(&c.tls.Enabled, "tls", false, "Use TLS; implied by --tlsverify")
	pf.StringVar(&c.tls.CAFile, "tlscacert", "", `Trust certs signed only by this CA (default "`+filepath.Join(dot, "ca.pem")+`")`)
	pf.StringVar(&c.tls.Cert, "tlscert", "", `Path to TLS certificate file (default "`+filepath.Join(dot, "cert.pem")+`")`)
	pf.StringVar(&c.tls.Key, "tlskey", "", `Path to TLS key file (default "`+filepath.Join(dot, "key.pem")+`")`)
	pf.BoolVar(&c.tls.Verify, "tlsverify", false, "Use TLS and verify the remote")
	pf.BoolP("version", "v", false, "Print version information and quit")

	root.AddCommand(
		c.versionCmd(), c.infoCmd(), c.engineCmd(),
		c.runCmd(), c.createCmd(), c.startCmd(), c.stopCmd(), c.restartCmd(), c.killCmd(), c.rmCmd(),
		c.psCmd(), c.logsCmd(), c.execCmd(), c.attachCmd(), c.inspectCmd(), c.waitCmd(), c.topCmd(),
		c.pauseCmd(), c.unpauseCmd(), c.renameCmd(), c.portCmd(), c.diffCmd(), c.exportCmd(), c.statsCmd(), c.cpCmd(), c.updateCmd(),
		c.imagesCmd(), c.pullCmd(), c.pushCmd(), c.rmiCmd(), c.tagCmd(), c.historyCmd(), c.saveCmd(), c.loadCmd(), c.importCmd(),
		c.networkCmd(), c.volumeCmd(), c.contextCmd(), c.eventsCmd(), c.systemCmd(), c.containerCmd(), c.imageCmd(), c.loginCmd(), c.logoutCmd(),
	)
	root.InitDefaultCompletionCmd()
	if comp, _, err := root.Find([]string{"completion"}); err == nil && comp != root {
		comp.Hidden = true // as in the Docker CLI's command list
	}
	dockerHelp(root)
	return root
}

// config is the Docker CLI's config directory: --config, DOCKER_CONFIG,
// ~/.docker.
func (c *CLI) config() string {
	if c.configDir != "" {
		return c.configDir
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker")
}

// endpoint resolves the engine's address and TLS as the Docker CLI does:
// -H, then --context, then DOCKER_HOST, then DOCKER_CONTEXT, then the
// config file's currentContext, then the default.
func (c *CLI) endpoint() (string, engineclient.TLS, error) {
	if c.host != "" && c.contextArg != "" {
		return "", c.tls, errors.New("conflicting options: cannot specify both --host and --context")
	}
	if c.host != "" {
		return c.host, engineclient.TLSFromEnv(c.tls), nil
	}
	name := c.contextArg
	if name == "" {
		if h := os.Getenv("DOCKER_HOST"); h != "" {
			return h, engineclient.TLSFromEnv(c.tls), nil
		}
		name = os.Getenv("DOCKER_CONTEXT")
	}
	if name == "" {
		name = c.currentContext()
	}
	if name == "" || name == "default" {
		return engineclient.DefaultHost, engineclient.TLSFromEnv(c.tls), nil
	}
	return c.contextEndpoint(name)
}

// currentContext is the config file's currentContext ("" for none).
func (c *CLI) currentContext() string {
	var cf struct {
		CurrentContext string `json:"currentContext"`
	}
	if b, err := os.ReadFile(filepath.Join(c.config(), "config.json")); err == nil {
		_ = json.Unmarshal(b, &cf)
	}
	return cf.CurrentContext
}

// contextEndpoint reads a context from the Docker CLI's store:
// contexts/meta/<sha256(name)>/meta.json, its TLS files under
// contexts/tls/<sha256(name)>/docker/.
func (c *CLI) contextEndpoint(name string) (string, engineclient.TLS, error) {
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	b, err := os.ReadFile(filepath.Join(c.config(), "contexts", "meta", id, "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return "", c.tls, fmt.Errorf("context %q does not exist", name)
	}
	if err != nil {
		return "", c.tls, fmt.Errorf("load context %q: %w", name, err)
	}
	var meta struct {
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", c.tls, fmt.Errorf("load context %q: %w", name, err)
	}
	ep, ok := meta.Endpoints["docker"]
	if !ok || ep.Host == "" {
		return "", c.tls, fmt.Errorf("context %q has no docker endpoint", name)
	}
	t := c.tls
	dir := filepath.Join(c.config(), "contexts", "tls", id, "docker")
	for file, dst := range map[string]*string{"ca.pem": &t.CAFile, "cert.pem": &t.Cert, "key.pem": &t.Key} {
		if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
			*dst = filepath.Join(dir, file)
			t.Enabled = true
		}
	}
	if t.Enabled && !ep.SkipTLSVerify {
		t.Verify = true
	}
	return ep.Host, t, nil
}

// engine is the Engine client, dialled on first use.
func (c *CLI) engine() (enginev1.EngineClient, error) {
	if c.conn != nil {
		return c.conn.Engine, nil
	}
	host, t, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	conn, err := engineclient.Dial(host, t)
	if err != nil {
		return nil, err
	}
	c.conn, c.target = conn, host
	return conn.Engine, nil
}

// daemonErr words an Engine error as the Docker CLI words the daemon's.
func (c *CLI) daemonErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("Cannot connect to the Docker daemon at %s. Is the docker daemon running?", c.target)
	case codes.Canceled:
		return context.Canceled
	}
	return daemonError{st.Message(), st.Code()}
}

type daemonError struct {
	msg  string
	code codes.Code
}

func (e daemonError) Error() string { return "Error response from daemon: " + e.msg }

func isNotFound(err error) bool {
	var de daemonError
	return errors.As(err, &de) && de.code == codes.NotFound
}

// forEach runs fn on each argument as the Docker CLI's multi-object
// commands do: errors printed on stderr one by one, exit 1 at the end.
func (c *CLI) forEach(args []string, fn func(string) error) error {
	var failed bool
	for _, a := range args {
		if err := fn(a); err != nil {
			fmt.Fprintln(c.Err, err)
			failed = true
		}
	}
	if failed {
		return StatusError{Code: 1}
	}
	return nil
}

// noArgs, exactArgs, minArgs word argument errors as the Docker CLI does.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		pl := "s"
		if n == 1 {
			pl = ""
		}
		return StatusError{Code: 1, Status: fmt.Sprintf("docker: '%s' requires %d argument%s\n\nUsage:  %s\n\nRun '%s --help' for more information",
			cmd.CommandPath(), n, pl, usageLine(cmd), cmd.CommandPath())}
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		pl := "s"
		if n == 1 {
			pl = ""
		}
		return StatusError{Code: 1, Status: fmt.Sprintf("docker: '%s' requires at least %d argument%s\n\nUsage:  %s\n\nSee '%s --help' for more information",
			cmd.CommandPath(), n, pl, usageLine(cmd), cmd.CommandPath())}
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		pl := "s"
		if n == 1 {
			pl = ""
		}
		return StatusError{Code: 1, Status: fmt.Sprintf("docker: '%s' requires at most %d argument%s\n\nUsage:  %s\n\nSee '%s --help' for more information",
			cmd.CommandPath(), n, pl, usageLine(cmd), cmd.CommandPath())}
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return StatusError{Code: 1, Status: fmt.Sprintf("docker: '%s' accepts no arguments\n\nUsage:  %s\n\nRun '%s --help' for more information",
		cmd.CommandPath(), usageLine(cmd), cmd.CommandPath())}
}

// unsupported refuses the flags of cmd, among names, that were given:
// the Docker CLI has them, engined cannot honour them yet.
func unsupported(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			return fmt.Errorf("%s --%s is not supported by engined yet", cmd.CommandPath(), n)
		}
	}
	return nil
}

// withUnsupported adds flags engined cannot honour yet (shown in help as
// the Docker CLI shows them, refused when given) to cmd.
func withUnsupported(cmd *cobra.Command, add func(*pflag.FlagSet), names ...string) *cobra.Command {
	add(cmd.Flags())
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := unsupported(cmd, names...); err != nil {
			return err
		}
		return run(cmd, args)
	}
	return cmd
}

// groupArgs words an unknown subcommand of a management command
// (docker network foo) as the Docker CLI does.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return StatusError{Code: 1, Status: fmt.Sprintf("docker: unknown command: %s %s\n\nUsage:  %s\n\nRun '%s --help' for more information",
		cmd.CommandPath(), args[0], cmd.CommandPath(), cmd.CommandPath())}
}

// interspersed stops flag parsing at the first argument (docker run IMAGE CMD -x).
func interspersed(cmd *cobra.Command) { cmd.Flags().SetInterspersed(false) }
