package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/console"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/engined/engined/gateway"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// confirm asks on stderr/stdin as the Docker CLI's prune commands do.
func (c *CLI) confirm(msg string) bool {
	fmt.Fprintf(c.Out, "%s [y/N] ", msg)
	line, _ := bufio.NewReader(c.In).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

// eventRow is an event for --format, with the JSON fields of Docker's events.Message.
type eventRow struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

func (c *CLI) eventsCmd() *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use: "events [OPTIONS]", Short: "Get real time events from the server", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			fj, err := filterJSON(filters)
			if err != nil {
				return flagError{err}
			}
			now := time.Now()
			req := &enginev1.SystemEventsRequest{Filters: fj}
			if req.Since, err = parseTime("since", since, now); err != nil {
				return err
			}
			if req.Until, err = parseTime("until", until, now); err != nil {
				return err
			}
			var tmpl interface{ Execute(io.Writer, any) error }
			if format != "" {
				t, err := parseTemplate(templateString(format))
				if err != nil {
					return err
				}
				tmpl = t
			}
			st, err := e.SystemEvents(cmd.Context(), req)
			if err != nil {
				return c.daemonErr(err)
			}
			for {
				ev, err := st.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return c.daemonErr(err)
				}
				if ev.GetType() == "" {
					continue // the stream's first, empty message
				}
				row := eventRow{Type: ev.GetType(), Action: ev.GetAction(), Scope: "local", Time: ev.GetTimeNano() / 1e9, TimeNano: ev.GetTimeNano()}
				row.Actor.ID, row.Actor.Attributes = ev.GetActorId(), ev.GetAttributes()
				if row.Actor.Attributes == nil {
					row.Actor.Attributes = map[string]string{}
				}
				if tmpl != nil {
					// The REST shape, as the Docker CLI formats it.
					if err := tmpl.Execute(c.Out, gateway.EventMessage(cmd.Context(), ev)); err != nil {
						return err
					}
					fmt.Fprintln(c.Out)
					continue
				}
				fmt.Fprintf(c.Out, "%s %s %s %s", time.Unix(0, row.TimeNano).Format("2006-01-02T15:04:05.000000000Z07:00"), row.Type, row.Action, row.Actor.ID)
				if len(row.Actor.Attributes) > 0 {
					var kv []string
					for k, v := range row.Actor.Attributes {
						kv = append(kv, k+"="+v)
					}
					sort.Strings(kv)
					fmt.Fprintf(c.Out, " (%s)", strings.Join(kv, ", "))
				}
				fmt.Fprintln(c.Out)
			}
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	cmd.Flags().StringVar(&format, "format", "", inspectFormatHelp)
	cmd.Flags().StringVar(&since, "since", "", "Show all events created since timestamp")
	cmd.Flags().StringVar(&until, "until", "", "Stream events until this timestamp")
	return cmd
}

func (c *CLI) containerPruneCmd() *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use: "prune [OPTIONS]", Short: "Remove all stopped containers", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force && !c.confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?") {
				return nil
			}
			n, err := c.pruneContainers(cmd, filters)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(n)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

func (c *CLI) pruneContainers(cmd *cobra.Command, filters []string) (int64, error) {
	e, err := c.engine()
	if err != nil {
		return 0, err
	}
	fj, err := filterJSON(filters)
	if err != nil {
		return 0, flagError{err}
	}
	resp, err := e.ContainerPrune(cmd.Context(), &enginev1.ContainerPruneRequest{Filters: fj})
	if err != nil {
		return 0, c.daemonErr(err)
	}
	c.printDeleted("Containers", resp.GetDeleted())
	return resp.GetSpaceReclaimed(), nil
}

func (c *CLI) pruneImages(cmd *cobra.Command, all bool, filters []string) (int64, error) {
	e, err := c.engine()
	if err != nil {
		return 0, err
	}
	if !all {
		filters = append(filters, "dangling=true")
	} else {
		filters = append(filters, "dangling=false")
	}
	fj, err := filterJSON(filters)
	if err != nil {
		return 0, flagError{err}
	}
	resp, err := e.ImagePrune(cmd.Context(), &enginev1.ImagePruneRequest{Filters: fj})
	if err != nil {
		return 0, c.daemonErr(err)
	}
	if len(resp.GetDeleted()) > 0 {
		fmt.Fprintln(c.Out, "Deleted Images:")
		for _, it := range resp.GetDeleted() {
			if it.GetUntagged() != "" {
				fmt.Fprintln(c.Out, "untagged:", it.GetUntagged())
			} else {
				fmt.Fprintln(c.Out, "deleted:", it.GetDeleted())
			}
		}
		fmt.Fprintln(c.Out)
	}
	return resp.GetSpaceReclaimed(), nil
}

func (c *CLI) imagePruneCmd() *cobra.Command {
	return c.pruneAllCmd("Remove unused images",
		"WARNING! This will remove all dangling images.\nAre you sure you want to continue?",
		"WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?",
		"Remove all unused images, not just dangling ones", `Provide filter values (e.g. "until=<timestamp>")`, c.pruneImages)
}

// pruneAllCmd is a prune command with --all (image prune, volume prune):
// the Docker CLI's confirmation (one warning without --all, another
// with it), then prune, then the space it freed.
func (c *CLI) pruneAllCmd(short, warning, allWarning, allHelp, filterHelp string, prune func(cmd *cobra.Command, all bool, filters []string) (int64, error)) *cobra.Command {
	var force, all bool
	var filters []string
	cmd := &cobra.Command{
		Use: "prune [OPTIONS]", Short: short, Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			msg := warning
			if all {
				msg = allWarning
			}
			if !force && !c.confirm(msg) {
				return nil
			}
			n, err := prune(cmd, all, filters)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(n)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, allHelp)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, filterHelp)
	return cmd
}

func (c *CLI) systemCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage Docker", Args: groupArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.Out)
		return cmd.Help()
	}}
	var force, all, volumes bool
	var filters []string
	prune := &cobra.Command{
		Use: "prune [OPTIONS]", Short: "Remove unused data", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			imgs := "  - all dangling images\n"
			if all {
				imgs = "  - all images without at least one container associated to them\n"
			}
			vols := ""
			if volumes {
				vols = "  - all anonymous volumes not used by at least one container\n"
			}
			msg := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n" + vols + imgs + "\nAre you sure you want to continue?"
			if !force && !c.confirm(msg) {
				return nil
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			n, err := c.pruneContainers(cmd, filters)
			if err != nil {
				return err
			}
			fj, _ := filterJSON(filters)
			nets, err := e.NetworkPrune(cmd.Context(), &enginev1.NetworkPruneRequest{Filters: fj})
			if err != nil {
				return c.daemonErr(err)
			}
			c.printDeleted("Networks", nets.GetNetworksDeleted())
			var v int64
			if volumes {
				if v, err = c.pruneVolumes(cmd, false, filters); err != nil {
					return err
				}
			}
			m, err := c.pruneImages(cmd, all, filters)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(n+v+m)))
			return nil
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	prune.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	prune.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "label=<key>=<value>")`)
	prune.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	cmd.AddCommand(prune, c.dfCmd(), c.infoCmd(), c.eventsCmd())
	return cmd
}

// containerCmd is "docker container ...": the same commands under their management names.
func (c *CLI) containerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Manage containers", Args: groupArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.Out)
		return cmd.Help()
	}}
	ls := c.psCmd()
	ls.Use, ls.Aliases = "ls [OPTIONS]", []string{"list", "ps"}
	cmd.AddCommand(c.runCmd(), c.createCmd(), c.startCmd(), c.stopCmd(), c.restartCmd(), c.killCmd(), c.rmCmd(), ls,
		c.logsCmd(), c.execCmd(), c.attachCmd(), c.waitCmd(), c.topCmd(), c.pauseCmd(), c.unpauseCmd(), c.renameCmd(), c.portCmd(),
		c.diffCmd(), c.exportCmd(), c.statsCmd(), c.cpCmd(), c.updateCmd(), c.containerPruneCmd(),
		c.inspectSub("inspect [OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more containers", inspectContainerObj, c.completeContainers))
	return cmd
}

func (c *CLI) imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images", Args: groupArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.Out)
		return cmd.Help()
	}}
	ls := c.imagesCmd()
	ls.Use, ls.Aliases = "ls [OPTIONS] [REPOSITORY[:TAG]]", []string{"list"}
	rm := c.rmiCmd()
	rm.Use, rm.Aliases = "rm [OPTIONS] IMAGE [IMAGE...]", []string{"remove"}
	inspect := withUnsupported(c.inspectSub("inspect [OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images", inspectImageObj, c.completeImages),
		func(f *pflag.FlagSet) {
			f.String("platform", "", "Inspect a specific platform of the multi-platform image.\n"+
				"If the image or the server is not multi-platform capable, the command will error out if the platform does not match.\n"+
				"'os[/arch[/variant]]': Explicit platform (eg. linux/amd64)")
		}, "platform")
	cmd.AddCommand(ls, rm, c.pullCmd(), c.pushCmd(), c.tagCmd(), c.historyCmd(), c.saveCmd(), c.loadCmd(), c.importCmd(), c.imagePruneCmd(), inspect)
	return cmd
}

// configFile is the part of the Docker CLI's config.json we use; the
// rest of the file is kept as it is when we write it.
type configFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth,omitempty"`
		IdentityToken string `json:"identitytoken,omitempty"`
	} `json:"auths"`
}

func (c *CLI) readConfigFile() configFile {
	var cf configFile
	if b, err := os.ReadFile(filepath.Join(c.config(), "config.json")); err == nil {
		_ = json.Unmarshal(b, &cf)
	}
	return cf
}

// updateAuths rewrites the auths of config.json, keeping its other keys.
func (c *CLI) updateAuths(fn func(auths map[string]any)) error {
	return c.updateConfig(func(all map[string]any) {
		auths, _ := all["auths"].(map[string]any)
		if auths == nil {
			auths = map[string]any{}
		}
		fn(auths)
		all["auths"] = auths
	})
}

// updateConfig rewrites config.json through fn, keeping what fn leaves
// alone; the file is replaced atomically.
func (c *CLI) updateConfig(fn func(all map[string]any)) error {
	path := filepath.Join(c.config(), "config.json")
	all := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &all); err != nil {
			return fmt.Errorf("loading config file: %s: %w", path, err)
		}
	}
	if _, ok := all["auths"]; !ok {
		all["auths"] = map[string]any{}
	}
	fn(all)
	b, err := json.MarshalIndent(all, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func registryKey(server string) string {
	if server == "" || server == "docker.io" || server == "index.docker.io" || server == "registry-1.docker.io" {
		return "https://index.docker.io/v1/"
	}
	s := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	return strings.TrimSuffix(s, "/")
}

func (c *CLI) loginCmd() *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use: "login [OPTIONS] [SERVER]", Short: "Authenticate to a registry", Args: cobra.MaximumNArgs(1),
		Long: "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.",
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) > 0 {
				server = args[0]
			}
			key := registryKey(server)
			if password != "" && !passwordStdin {
				fmt.Fprintln(c.Err, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
			}
			if passwordStdin {
				b, err := io.ReadAll(c.In)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			in := bufio.NewReader(c.In)
			if user == "" {
				fmt.Fprint(c.Out, "Username: ")
				line, _ := in.ReadString('\n')
				user = strings.TrimSpace(line)
			}
			if password == "" {
				if f, ok := c.In.(*os.File); ok {
					if con, err := console.ConsoleFromFile(f); err == nil {
						fmt.Fprint(c.Out, "Password: ")
						con.DisableEcho()
						line, _ := in.ReadString('\n')
						con.Reset()
						fmt.Fprintln(c.Out)
						password = strings.TrimRight(line, "\r\n")
					}
				}
			}
			if user == "" || password == "" {
				return errors.New("Error: Cannot perform an interactive login from a non TTY device")
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			resp, err := e.SystemAuth(cmd.Context(), &enginev1.SystemAuthRequest{Username: user, Password: password, ServerAddress: key})
			if err != nil {
				return c.daemonErr(err)
			}
			err = c.updateAuths(func(auths map[string]any) {
				ent := map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
				if t := resp.GetIdentityToken(); t != "" {
					ent = map[string]any{"identitytoken": t, "auth": base64.StdEncoding.EncodeToString([]byte(user + ":"))}
				}
				auths[key] = ent
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Err, "WARNING! Your credentials are stored unencrypted in '%s'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n\n", filepath.Join(c.config(), "config.json"))
			fmt.Fprintln(c.Out, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&password, "password", "p", "", "Password or Personal Access Token (PAT)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "Take the Password or Personal Access Token (PAT) from stdin")
	return cmd
}

func (c *CLI) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use: "logout [SERVER]", Short: "Log out from a registry", Args: cobra.MaximumNArgs(1),
		Long: "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) > 0 {
				server = args[0]
			}
			key := registryKey(server)
			fmt.Fprintf(c.Out, "Removing login credentials for %s\n", key)
			if _, ok := c.readConfigFile().Auths[key]; !ok {
				return nil
			}
			return c.updateAuths(func(auths map[string]any) { delete(auths, key) })
		},
	}
}

// printDeleted lists what a prune removed as the Docker CLI does
// ("Deleted Volumes:", one per line, a blank line), nothing if none.
func (c *CLI) printDeleted(kind string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(c.Out, "Deleted %s:\n", kind)
	for _, it := range items {
		fmt.Fprintln(c.Out, it)
	}
	fmt.Fprintln(c.Out)
}
