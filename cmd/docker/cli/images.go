package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client/pkg/jsonmessage"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/engined/engined/gateway"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

type imageRow struct {
	i                 image.Summary
	trunc             bool
	repo, tag, digest string
}

func (r imageRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r imageRow) ID() string {
	if r.trunc {
		return truncID(r.i.ID)
	}
	return r.i.ID
}
func (r imageRow) Repository() string { return r.repo }
func (r imageRow) Tag() string        { return r.tag }
func (r imageRow) Digest() string     { return r.digest }
func (r imageRow) CreatedSince() string {
	t := time.Unix(r.i.Created, 0)
	if t.IsZero() {
		return ""
	}
	return units.HumanDuration(time.Now().UTC().Sub(t)) + " ago"
}
func (r imageRow) CreatedAt() string { return time.Unix(r.i.Created, 0).String() }
func (r imageRow) Size() string      { return units.HumanSizeWithPrecision(float64(r.i.Size), 3) }
func (r imageRow) Containers() string {
	if r.i.Containers == -1 {
		return "N/A"
	}
	return strconv.FormatInt(r.i.Containers, 10)
}
func (r imageRow) SharedSize() string {
	if r.i.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(r.i.SharedSize))
}
func (r imageRow) VirtualSize() string { return units.HumanSize(float64(r.i.Size)) }
func (r imageRow) UniqueSize() string {
	if r.i.Size == -1 || r.i.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(r.i.Size - r.i.SharedSize))
}

var imageHeader = headers{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
	"CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}

// imageRows expands an image into a row per repository and tag (and
// digest when asked), as the Docker CLI lists them.
func imageRows(img image.Summary, trunc, digests bool) []any {
	tags := map[string][]string{}
	dgsts := map[string][]string{}
	for _, s := range img.RepoTags {
		if ref, err := reference.ParseNormalizedNamed(s); err == nil {
			if nt, ok := ref.(reference.NamedTagged); ok {
				n := reference.FamiliarName(ref)
				tags[n] = append(tags[n], nt.Tag())
			}
		}
	}
	for _, s := range img.RepoDigests {
		if ref, err := reference.ParseNormalizedNamed(s); err == nil {
			if cn, ok := ref.(reference.Canonical); ok {
				n := reference.FamiliarName(ref)
				dgsts[n] = append(dgsts[n], cn.Digest().String())
			}
		}
	}
	var rows []any
	add := func(repo, tag, d string) {
		rows = append(rows, imageRow{i: img, trunc: trunc, repo: repo, tag: tag, digest: d})
	}
	repos := make([]string, 0, len(tags))
	for r := range tags {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	for _, repo := range repos {
		ds := dgsts[repo]
		delete(dgsts, repo)
		if !digests {
			ds = nil
		}
		for _, t := range tags[repo] {
			if len(ds) == 0 {
				add(repo, t, "<none>")
			}
			for _, d := range ds {
				add(repo, t, d)
			}
		}
	}
	rest := make([]string, 0, len(dgsts))
	for r := range dgsts {
		rest = append(rest, r)
	}
	sort.Strings(rest)
	for _, repo := range rest {
		if digests {
			for _, d := range dgsts[repo] {
				add(repo, "<none>", d)
			}
		} else {
			add(repo, "<none>", "")
		}
	}
	if len(rows) == 0 {
		add("<none>", "<none>", "<none>")
	}
	return rows
}

func (c *CLI) imagesCmd() *cobra.Command {
	var all, quiet, digests, noTrunc, tree bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use: "images [OPTIONS] [REPOSITORY[:TAG]]", Short: "List images", Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return StatusError{Code: 1, Status: fmt.Sprintf("docker: '%s' requires at most 1 argument\n\nUsage:  %s\n\nSee '%s --help' for more information", cmd.CommandPath(), usageLine(cmd), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			if tree {
				return errors.New("--tree is not supported by engined's CLI yet")
			}
			if len(args) == 1 {
				filters = append(filters, "reference="+args[0])
			}
			fj, err := filterJSON(filters)
			if err != nil {
				return flagError{err}
			}
			resp, err := e.ImageList(cmd.Context(), &enginev1.ImageListRequest{All: all, Filters: fj, Digests: digests})
			if err != nil {
				return c.daemonErr(err)
			}
			list, err := dockerShape[[]image.Summary](cmd.Context(), resp)
			if err != nil {
				return err
			}
			sort.SliceStable(list, func(i, j int) bool { return list[i].Created > list[j].Created })
			if format == "" {
				format = c.configFormat("imagesFormat")
			}
			if quiet && format == "" {
				format = "{{.ID}}"
			}
			def := "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
			if digests {
				def = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
			}
			var rows []any
			seen := map[string]bool{}
			for _, img := range list {
				if quiet && format == "{{.ID}}" {
					// -q lists each image once.
					if seen[img.ID] {
						continue
					}
					seen[img.ID] = true
					rows = append(rows, imageRow{i: img, trunc: !noTrunc})
					continue
				}
				rows = append(rows, imageRows(img, !noTrunc, digests || strings.Contains(format, ".Digest"))...)
			}
			return writeRows(c.Out, format, def, imageHeader, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	f.BoolVar(&digests, "digests", false, "Show digests")
	f.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	f.StringVar(&format, "format", "", formatHelp)
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&tree, "tree", false, "List multi-platform images as a tree (EXPERIMENTAL)")
	return cmd
}

// registryAuth is the credentials for ref's registry from the Docker
// config file (auths), as docker login stores them.
func (c *CLI) registryAuth(ref string) *enginev1.RegistryAuth {
	host := "https://index.docker.io/v1/"
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		if d := reference.Domain(named); d != "docker.io" {
			host = d
		}
	}
	cf := c.readConfigFile()
	a, ok := cf.Auths[host]
	if !ok {
		return nil
	}
	out := &enginev1.RegistryAuth{ServerAddress: host, IdentityToken: a.IdentityToken}
	if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
		u, p, _ := strings.Cut(string(dec), ":")
		out.Username, out.Password = u, p
	}
	return out
}

// showProgress renders a pull or push stream as the Docker CLI does
// (moby's jsonmessage: a line per layer redrawn in place on a terminal,
// status lines only otherwise), from the gateway's Docker messages.
func (c *CLI) showProgress(out io.Writer, recv func() (*enginev1.Progress, error), quiet bool) error {
	var fd uintptr
	if f, ok := out.(*os.File); ok {
		fd = f.Fd()
	}
	msgs := func(yield func(jsonstream.Message, error) bool) {
		for {
			p, err := recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(jsonstream.Message{}, c.daemonErr(err))
				return
			}
			if quiet {
				continue
			}
			if !yield(gateway.ProgressMessage(p), nil) {
				return
			}
		}
	}
	return jsonmessage.DisplayJSONMessages(msgs, out, fd, c.outIsTerminal(out), nil)
}

func (c *CLI) outIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// pull pulls ref, showing progress on out (none when quiet).
func (c *CLI) pull(ctx context.Context, ref, platform string, quiet, implicit bool, out io.Writer) error {
	e, err := c.engine()
	if err != nil {
		return err
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return err
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	if !tagged && !digested && !quiet && !implicit {
		fmt.Fprintln(out, "Using default tag: latest")
	}
	named = reference.TagNameOnly(named)
	st, err := e.ImagePull(ctx, &enginev1.ImagePullRequest{Image: reference.FamiliarString(named), Platform: platform, Auth: c.registryAuth(ref)})
	if err != nil {
		return c.daemonErr(err)
	}
	return c.showProgress(out, st.Recv, quiet)
}

func (c *CLI) pullCmd() *cobra.Command {
	var quiet, all bool
	var platform string
	cmd := &cobra.Command{
		Use: "pull [OPTIONS] NAME[:TAG|@DIGEST]", Short: "Download an image from a registry", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all {
				return errors.New("pull --all-tags is not supported by engined yet")
			}
			if err := c.pull(cmd.Context(), args[0], platform, quiet, false, c.Out); err != nil {
				return err
			}
			named, _ := reference.ParseNormalizedNamed(args[0])
			fmt.Fprintln(c.Out, reference.TagNameOnly(named).String())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Download all tagged images in the repository")
	cmd.Flags().BoolVar(new(bool), "disable-content-trust", true, "Skip image verification")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return cmd
}

func (c *CLI) pushCmd() *cobra.Command {
	var quiet, all bool
	cmd := &cobra.Command{
		Use: "push [OPTIONS] NAME[:TAG]", Short: "Upload an image to a registry", Args: exactArgs(1),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			named, err := reference.ParseNormalizedNamed(args[0])
			if err != nil {
				return err
			}
			if all {
				return errors.New("push --all-tags is not supported by engined yet")
			}
			tag := ""
			if t, ok := named.(reference.Tagged); ok {
				tag = t.Tag()
			} else {
				tag = "latest"
				if !quiet {
					fmt.Fprintln(c.Out, "Using default tag: latest")
				}
			}
			st, err := e.ImagePush(cmd.Context(), &enginev1.ImagePushRequest{Name: reference.FamiliarName(named), Tag: tag, Auth: c.registryAuth(args[0])})
			if err != nil {
				return c.daemonErr(err)
			}
			if err := c.showProgress(c.Out, st.Recv, quiet); err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(c.Out, reference.FamiliarString(named))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Push all tags of an image to the repository")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return withUnsupported(cmd, func(f *pflag.FlagSet) {
		f.Bool("disable-content-trust", true, "Skip image signing")
		f.String("platform", "", "Push a platform-specific manifest as a single-platform image to the registry.\n"+
			"Image index won't be pushed, meaning that other manifests, including attestations won't be preserved.\n"+
			"'os[/arch[/variant]]': Explicit platform (eg. linux/amd64)")
	}, "platform")
}

func (c *CLI) rmiCmd() *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use: "rmi [OPTIONS] IMAGE [IMAGE...]", Short: "Remove one or more images", Args: minArgs(1),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			if p, _ := cmd.Flags().GetStringSlice("platform"); len(p) > 0 {
				return errors.New("rmi --platform is not supported by engined yet")
			}
			return c.forEach(args, func(name string) error {
				resp, err := e.ImageRemove(cmd.Context(), &enginev1.ImageRemoveRequest{Name: name, Force: force, Noprune: noPrune})
				if err != nil {
					return c.daemonErr(err)
				}
				for _, it := range resp.GetItems() {
					if it.GetUntagged() != "" {
						fmt.Fprintln(c.Out, "Untagged:", it.GetUntagged())
					} else {
						fmt.Fprintln(c.Out, "Deleted:", it.GetDeleted())
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	cmd.Flags().StringSlice("platform", nil, `Remove only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	return cmd
}

func (c *CLI) tagCmd() *cobra.Command {
	return &cobra.Command{
		Use: "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", Args: exactArgs(2),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			named, err := reference.ParseNormalizedNamed(args[1])
			if err != nil {
				return fmt.Errorf("Error parsing reference: %q is not a valid repository/tag: %w", args[1], err)
			}
			if _, ok := named.(reference.Digested); ok {
				return errors.New("refusing to create a tag with a digest reference")
			}
			named = reference.TagNameOnly(named)
			tag := named.(reference.Tagged).Tag()
			_, err = e.ImageTag(cmd.Context(), &enginev1.ImageTagRequest{Name: args[0], Repo: reference.FamiliarName(named), Tag: tag})
			return c.daemonErr(err)
		},
	}
}

func (c *CLI) historyCmd() *cobra.Command {
	var human, quiet, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use: "history [OPTIONS] IMAGE", Short: "Show the history of an image", Args: exactArgs(1),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			resp, err := e.ImageHistory(cmd.Context(), &enginev1.ImageHistoryRequest{Name: args[0]})
			if err != nil {
				return c.daemonErr(err)
			}
			items, err := dockerShape[[]image.HistoryResponseItem](cmd.Context(), resp)
			if err != nil {
				return err
			}
			rows := make([]any, 0, len(items))
			for _, it := range items {
				rows = append(rows, historyRow{h: it, trunc: !noTrunc, human: human})
			}
			if quiet && format == "" {
				format = "{{.ID}}"
			}
			def := "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
			if !human {
				def = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
			}
			return writeRows(c.Out, format, def, headers{
				"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
			}, rows)
		},
	}
	cmd.Flags().BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	return withUnsupported(cmd, func(f *pflag.FlagSet) {
		f.String("platform", "", "Show history for the given platform. Formatted as \"os[/arch[/variant]]\" (e.g., \"linux/amd64\")")
	}, "platform")
}

type historyRow struct {
	h            image.HistoryResponseItem
	trunc, human bool
}

func (r historyRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r historyRow) ID() string {
	if r.h.ID == "" || r.h.ID == "<missing>" {
		return "<missing>"
	}
	if r.trunc {
		return truncID(r.h.ID)
	}
	return r.h.ID
}
func (r historyRow) CreatedSince() string {
	if !r.human {
		return time.Unix(r.h.Created, 0).Format(time.RFC3339)
	}
	return units.HumanDuration(time.Now().UTC().Sub(time.Unix(r.h.Created, 0))) + " ago"
}
func (r historyRow) CreatedAt() string { return time.Unix(r.h.Created, 0).Format(time.RFC3339) }
func (r historyRow) CreatedBy() string {
	s := strings.ReplaceAll(r.h.CreatedBy, "\t", " ")
	if r.trunc {
		s = ellipsis(s, 45)
	}
	return s
}
func (r historyRow) Size() string {
	if r.human {
		return units.HumanSizeWithPrecision(float64(r.h.Size), 3)
	}
	return strconv.FormatInt(r.h.Size, 10)
}
func (r historyRow) Comment() string { return r.h.Comment }

func (c *CLI) saveCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "save [OPTIONS] IMAGE [IMAGE...]", Short: "Save one or more images to a tar archive (streamed to STDOUT by default)", Args: minArgs(1),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			w, err := c.outputFile(output, "save image")
			if err != nil {
				return err
			}
			defer w.Close()
			st, err := e.ImageSave(cmd.Context(), &enginev1.ImageSaveRequest{Names: args})
			if err != nil {
				return c.daemonErr(err)
			}
			return c.daemonErr(writeChunks(w, st.Recv))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return withUnsupported(cmd, func(f *pflag.FlagSet) {
		f.String("platform", "", `Save only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	}, "platform")
}

// sendFile streams r in chunks with send.
func sendFile(r io.Reader, send func([]byte) error) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := send(append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *CLI) loadCmd() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use: "load [OPTIONS]", Short: "Load an image from a tar archive or STDIN", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			var in io.Reader = c.In
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			} else if f, ok := c.In.(*os.File); ok && isTerminal(f) {
				return errors.New("requested load from stdin, but stdin is empty")
			}
			st, err := e.ImageLoad(cmd.Context())
			if err != nil {
				return c.daemonErr(err)
			}
			if err := sendFile(in, func(b []byte) error { return st.Send(&enginev1.Chunk{Data: b}) }); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			resp, err := st.CloseAndRecv()
			if err != nil {
				return c.daemonErr(err)
			}
			// -q quiets progress, as with the Docker CLI; engined sends none.
			for _, l := range resp.GetLoaded() {
				fmt.Fprintln(c.Out, l)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return withUnsupported(cmd, func(f *pflag.FlagSet) {
		f.String("platform", "", `Load only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	}, "platform")
}

func (c *CLI) importCmd() *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use: "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]", Short: "Import the contents from a tarball to create a filesystem image", Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			opts := &enginev1.ImageImportOptions{Message: message, Changes: changes, Platform: platform}
			if len(args) > 1 {
				named, err := reference.ParseNormalizedNamed(args[1])
				if err != nil {
					return err
				}
				named = reference.TagNameOnly(named)
				opts.Repo, opts.Tag = reference.FamiliarName(named), named.(reference.Tagged).Tag()
			}
			var in io.Reader = c.In
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			st, err := e.ImageImport(cmd.Context())
			if err != nil {
				return c.daemonErr(err)
			}
			if err := st.Send(&enginev1.ImageImportRequest{Options: opts}); err != nil {
				return c.daemonErr(err)
			}
			if err := sendFile(in, func(b []byte) error { return st.Send(&enginev1.ImageImportRequest{Data: b}) }); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			resp, err := st.CloseAndRecv()
			if err != nil {
				return c.daemonErr(err)
			}
			fmt.Fprintln(c.Out, resp.GetId())
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

var _ = json.Marshal
var _ = tabwriter.AlignRight
