package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/distribution/reference"
	"github.com/spf13/cobra"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// withHelp words a run error as the Docker CLI: "docker: ..." and the help hint.
func withHelp(err error, name string) string {
	return fmt.Sprintf("docker: %s\n\nRun 'docker %s --help' for more information", err, name)
}

// runStatus gives a failed run the Docker CLI's exit code: 127 when the
// command is not found, 126 when it cannot be invoked, else 125.
func runStatus(err error, name string) error {
	var se StatusError
	if errors.As(err, &se) {
		return err
	}
	msg := err.Error()
	code := 125
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		code = 127
	case strings.Contains(msg, "permission denied") || strings.Contains(msg, "is a directory"):
		code = 126
	}
	return StatusError{Status: withHelp(err, name), Code: code}
}

// createContainer creates the container, pulling its image first when the
// engine has none (and --pull allows), as the Docker CLI does.
func (c *CLI) createContainer(ctx context.Context, o *createOptions, cmd *cobra.Command, img string, args []string) (string, error) {
	e, err := c.engine()
	if err != nil {
		return "", err
	}
	if o.tty {
		// The container starts with the terminal's size, as the Docker
		// CLI creates it (the resizes that follow keep it so).
		if h, w, ok := c.termSize(); ok {
			o.consoleSize = [2]uint{uint(h), uint(w)}
		}
	}
	req, err := o.request(cmd.Flags(), img, args)
	if err != nil {
		return "", err
	}
	if o.cidfile != "" {
		if _, err := os.Stat(o.cidfile); err == nil {
			return "", fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", o.cidfile)
		}
	}
	named, refErr := reference.ParseNormalizedNamed(img)
	if refErr == nil {
		named = reference.TagNameOnly(named)
	}
	switch o.pull {
	case "always":
		if err := c.pull(ctx, img, o.platform, o.quiet, true, c.Err); err != nil {
			return "", err
		}
	case "missing", "never":
	default:
		return "", fmt.Errorf("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", o.pull)
	}
	resp, err := e.ContainerCreate(ctx, req)
	if err != nil {
		err = c.daemonErr(err)
		if isNotFound(err) && refErr == nil && o.pull == "missing" && strings.Contains(err.Error(), "No such image") {
			if !o.quiet {
				fmt.Fprintf(c.Err, "Unable to find image '%s' locally\n", reference.FamiliarString(named))
			}
			if err := c.pull(ctx, img, o.platform, o.quiet, true, c.Err); err != nil {
				return "", err
			}
			resp, err = e.ContainerCreate(ctx, req)
			if err != nil {
				return "", c.daemonErr(err)
			}
		} else {
			return "", err
		}
	}
	for _, w := range resp.GetWarnings() {
		fmt.Fprintln(c.Err, "WARNING:", w)
	}
	if o.cidfile != "" {
		if err := os.WriteFile(o.cidfile, []byte(resp.GetId()), 0o644); err != nil {
			return "", fmt.Errorf("failed to write the container ID to the file: %w", err)
		}
	}
	return resp.GetId(), nil
}

func (c *CLI) createCmd() *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.createContainer(cmd.Context(), o, cmd, args[0], args[1:])
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, id)
			return nil
		},
	}
	interspersed(cmd)
	o.flags(cmd.Flags())
	cmd.Flags().Lookup("pull").Usage = `Pull image before creating ("always", "|missing", "never")` // sic, the Docker CLI's text
	cmd.ValidArgsFunction = c.completeImages
	return cmd
}

func (c *CLI) runCmd() *cobra.Command {
	o := &createOptions{}
	var detach, sigProxy bool
	var keys string
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if detach && len(o.attach) > 0 {
				return errors.New("conflicting options: cannot specify both --attach and --detach")
			}
			if !detach && len(o.attach) == 0 {
				o.attach = []string{"stdout", "stderr"}
				if o.stdin {
					o.attach = append(o.attach, "stdin")
				}
			}
			if _, err := detachKeys(keys); err != nil {
				return StatusError{Status: withHelp(err, "run"), Code: 125}
			}
			if o.tty && o.stdin && !detach && !c.stdinIsTerminal() {
				return errNotTTY
			}
			rm := o.autoRemove
			if o.autoRemove && o.restart != "" && o.restart != "no" {
				return StatusError{Status: withHelp(errors.New("conflicting options: cannot specify both --restart and --rm"), "run"), Code: 125}
			}
			id, err := c.createContainer(ctx, o, cmd, args[0], args[1:])
			if isFlagError(err) {
				return err
			}
			if err != nil {
				return StatusError{Status: withHelp(err, "run"), Code: 125}
			}
			if detach {
				if err := c.startContainer(ctx, id); err != nil {
					return runStatus(err, "run")
				}
				fmt.Fprintln(c.Out, id)
				return nil
			}
			has := func(s string) bool {
				for _, a := range o.attach {
					if strings.EqualFold(a, s) {
						return true
					}
				}
				return false
			}
			return c.runAttached(ctx, id, attachSpec{tty: o.tty, stdin: has("stdin"), stdout: has("stdout"), stderr: has("stderr"), keys: keys, autoRemove: rm, sigProxy: sigProxy})
		},
	}
	interspersed(cmd)
	o.flags(cmd.Flags())
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "Run container in background and print container ID")
	f.BoolVar(&sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	f.StringVar(&keys, "detach-keys", "", "Override the key sequence for detaching a container")
	f.Lookup("pull").Usage = `Pull image before running ("always", "missing", "never")`
	cmd.ValidArgsFunction = c.completeImages
	return cmd
}

func (c *CLI) startContainer(ctx context.Context, id string) error {
	e, err := c.engine()
	if err != nil {
		return err
	}
	_, err = e.ContainerStart(ctx, &enginev1.ContainerStartRequest{Id: id})
	return c.daemonErr(err)
}

type attachSpec struct {
	tty, stdin, stdout, stderr bool
	keys                       string
	autoRemove                 bool
	noStart                    bool // attach only (docker attach)
	sigProxy                   bool // forward the CLI's signals (not with a terminal)
	startOnly                  bool // start -a: errors are not run's
}

// attachStream attaches to the container and copies its streams: the
// output until the stream ends (done), stdin until EOF or the detach keys
// (detached).
func (c *CLI) attachStream(ctx context.Context, id string, a attachSpec) (done, detached <-chan error, err error) {
	e, err := c.engine()
	if err != nil {
		return nil, nil, err
	}
	st, err := e.ContainerAttach(ctx)
	if err != nil {
		return nil, nil, c.daemonErr(err)
	}
	if err := st.Send(&enginev1.ContainerAttachRequest{Options: &enginev1.ContainerAttachOptions{Id: id, Stdin: a.stdin, Stdout: a.stdout,
		Stderr: a.stderr, Stream: true, DetachKeys: a.keys}}); err != nil {
		return nil, nil, c.daemonErr(err)
	}
	if _, err := st.Recv(); err != nil {
		return nil, nil, c.daemonErr(err)
	}
	det := make(chan error, 1)
	if a.stdin {
		var keys []byte
		if a.tty {
			keys, _ = detachKeys(a.keys)
		}
		// Owned by the CLI's process: a read of stdin cannot be
		// interrupted, and the CLI exits when the stream ends.
		go c.pumpStdin(keys, func(b []byte) error { return st.Send(&enginev1.ContainerAttachRequest{Stdin: b}) },
			func() {
				st.Send(&enginev1.ContainerAttachRequest{CloseStdin: true})
				st.CloseSend()
			}, det)
	} else {
		st.CloseSend()
	}
	out := make(chan error, 1)
	var stdout, stderr io.Writer
	if a.stdout {
		stdout = c.Out
	}
	if a.stderr {
		stderr = c.Err
		if a.tty {
			stderr = c.Out
		}
	}
	go func() { out <- c.copyOutput(st.Recv, stdout, stderr) }()
	return out, det, nil
}

// runAttached is the foreground part of docker run and start -a: attach,
// wait, start, stream, and the container's exit code.
func (c *CLI) runAttached(ctx context.Context, id string, a attachSpec) error {
	e, err := c.engine()
	if err != nil {
		return err
	}
	name := "run"
	if a.startOnly {
		name = "start"
	}
	fail := func(err error) error {
		if a.startOnly {
			return err
		}
		return runStatus(err, name)
	}
	attachCtx, cancelAttach := context.WithCancel(ctx)
	defer cancelAttach()
	if a.tty && a.stdin {
		restore := c.rawTerminal()
		defer restore()
	}
	done, detached, err := c.attachStream(attachCtx, id, a)
	if err != nil {
		return fail(err)
	}
	cond := "next-exit"
	if a.autoRemove {
		cond = "removed"
	}
	waitCtx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	ws, err := e.ContainerWait(waitCtx, &enginev1.ContainerWaitRequest{Id: id, Condition: cond})
	if err == nil {
		_, err = ws.Header() // the wait is in place before the start
	}
	if err != nil {
		return fail(c.daemonErr(err))
	}
	status := make(chan int, 1)
	go func() {
		resp, err := ws.Recv()
		if err != nil {
			status <- 125
			return
		}
		status <- int(resp.GetStatusCode())
	}()
	// Signals are forwarded from before the start: the container may
	// act (and be signalled) before the start's reply comes back.
	if a.sigProxy && !a.tty {
		c.proxySignals(attachCtx, e, id)
	}
	if !a.noStart {
		if err := c.startContainer(ctx, id); err != nil {
			cancelAttach()
			<-done
			if a.autoRemove {
				<-status
			}
			return fail(err)
		}
	}
	if a.tty {
		c.monitorSize(attachCtx, func(h, w uint32) error {
			_, err := e.ContainerResize(attachCtx, &enginev1.ContainerResizeRequest{Id: id, H: h, W: w})
			return err
		})
	}
	exit := func(code int) error {
		if code != 0 {
			return StatusError{Code: code}
		}
		return nil
	}
	// docker attach reports a detach as the Docker CLI does (its escape
	// error, exit 1); run and start -a end quietly.
	detachedErr := func() error {
		if a.noStart {
			return StatusError{Status: "read escape sequence", Code: 1}
		}
		return nil
	}
	select {
	case <-detached:
		cancelAttach()
		return detachedErr()
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		select {
		case <-detached:
			return detachedErr()
		default:
		}
		return exit(<-status)
	case code := <-status:
		if !a.stdout && !a.stderr {
			cancelAttach()
		}
		<-done
		return exit(code)
	}
}

func (c *CLI) startCmd() *cobra.Command {
	var attach, interactive bool
	var keys string
	cmd := &cobra.Command{
		Use: "start [OPTIONS] CONTAINER [CONTAINER...]", Short: "Start one or more stopped containers", Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := unsupported(cmd, "checkpoint", "checkpoint-dir"); err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return errors.New("you cannot start and attach multiple containers at once")
				}
				ci, err := c.inspectContainer(ctx, args[0])
				if err != nil {
					return err
				}
				return c.runAttached(ctx, ci.ID, attachSpec{tty: ci.Config.Tty, stdin: interactive && ci.Config.OpenStdin, stdout: true, stderr: true,
					keys: keys, autoRemove: ci.HostConfig.AutoRemove, startOnly: true, sigProxy: true})
			}
			var failed []string
			for _, id := range args {
				if err := c.startContainer(ctx, id); err != nil {
					fmt.Fprintln(c.Err, err)
					failed = append(failed, id)
					continue
				}
				fmt.Fprintln(c.Out, id)
			}
			if len(failed) > 0 {
				return StatusError{Code: 1, Status: "Error: failed to start containers: " + strings.Join(failed, ", ")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().String("checkpoint", "", "Restore from this checkpoint")
	cmd.Flags().String("checkpoint-dir", "", "Use a custom checkpoint storage directory")
	// Experimental: the Docker CLI hides them for an engine that is not.
	cmd.Flags().MarkHidden("checkpoint")
	cmd.Flags().MarkHidden("checkpoint-dir")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	cmd.Flags().StringVar(&keys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func (c *CLI) attachCmd() *cobra.Command {
	var noStdin, sigProxy bool
	var keys string
	cmd := &cobra.Command{
		Use: "attach [OPTIONS] CONTAINER", Short: "Attach local standard input, output, and error streams to a running container", Args: exactArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ci, err := c.inspectContainer(ctx, args[0])
			if err != nil {
				return err
			}
			if !ci.State.Running {
				return errors.New("cannot attach to a stopped container, start it first")
			}
			if ci.State.Paused {
				return errors.New("cannot attach to a paused container, unpause it first")
			}
			return c.runAttached(ctx, ci.ID, attachSpec{tty: ci.Config.Tty, stdin: !noStdin && ci.Config.OpenStdin, stdout: true, stderr: true,
				keys: keys, noStart: true, startOnly: true, sigProxy: sigProxy})
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.Flags().StringVar(&keys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// proxySignals forwards the signals the CLI gets to the container until
// ctx ends, as the Docker CLI's --sig-proxy does.
func (c *CLI) proxySignals(ctx context.Context, e enginev1.EngineClient, id string) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				sig, ok := s.(syscall.Signal)
				if !ok || sig == syscall.SIGCHLD || sig == syscall.SIGPIPE || sig == syscall.SIGURG || sig == syscall.SIGWINCH {
					continue
				}
				if _, err := e.ContainerKill(ctx, &enginev1.ContainerKillRequest{Id: id, Signal: strconv.Itoa(int(sig))}); err != nil {
					fmt.Fprintf(c.Err, "Error sending signal: %s\n", c.daemonErr(err))
				}
			}
		}
	}()
}
