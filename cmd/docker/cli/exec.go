package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// parseTime reads --since/--until as the Docker CLI: a duration before
// now ("10m"), a Unix timestamp, or an RFC 3339 date or time.
func parseTime(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil && v != "0" {
		// Whole seconds, as the Docker CLI sends a duration.
		return timestamppb.New(time.Unix(now.Add(-d).Unix(), 0)), nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "eE") {
		sec := int64(f)
		return timestamppb.New(time.Unix(sec, int64((f-float64(sec))*1e9))), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02Z07:00", "2006-01-02"} {
		loc := time.Local
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, fmt.Errorf("invalid value for %q: failed to parse value as time or duration: %q", flag, v)
}

func (c *CLI) logsCmd() *cobra.Command {
	var follow, timestamps, details bool
	var since, until, tail string
	cmd := &cobra.Command{
		Use: "logs [OPTIONS] CONTAINER", Short: "Fetch the logs of a container", Args: exactArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			if details {
				return errors.New("logs --details is not supported by engined yet")
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			now := time.Now()
			req := &enginev1.ContainerLogsRequest{Id: args[0], Follow: follow, Stdout: true, Stderr: true, Timestamps: timestamps, Tail: -1}
			if req.Since, err = parseTime("since", since, now); err != nil {
				return err
			}
			if req.Until, err = parseTime("until", until, now); err != nil {
				return err
			}
			if tail != "all" {
				n, err := strconv.Atoi(tail)
				if err == nil && n >= 0 {
					req.Tail = int32(n)
				}
			}
			ci, err := c.inspectContainer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			st, err := e.ContainerLogs(cmd.Context(), req)
			if err != nil {
				return c.daemonErr(err)
			}
			tty := ci.Config != nil && ci.Config.Tty
			for {
				ent, err := st.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return c.daemonErr(err)
				}
				data := ent.GetData()
				if timestamps {
					data = append([]byte(ent.GetTime().AsTime().UTC().Format(time.RFC3339Nano)+" "), data...)
				}
				w := c.Out
				if ent.GetStream() == 2 && !tty {
					w = c.Err
				}
				w.Write(data)
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&details, "details", false, "Show extra details provided to logs")
	f.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	f.StringVar(&since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	f.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVar(&until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	return cmd
}

func (c *CLI) execCmd() *cobra.Command {
	var interactive, tty, detach, privileged bool
	var user, workdir, keys string
	var env, envFile []string
	cmd := &cobra.Command{
		Use: "exec [OPTIONS] CONTAINER COMMAND [ARG...]", Short: "Execute a command in a running container", Args: minArgs(2),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if tty && interactive && !detach && !c.stdinIsTerminal() {
				return errNotTTY
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			cfg := &enginev1.ExecConfig{Cmd: args[1:], User: user, WorkingDir: workdir, Tty: tty, Privileged: privileged,
				AttachStdin: interactive && !detach, AttachStdout: !detach, AttachStderr: !detach, DetachKeys: keys}
			for _, f := range envFile {
				kvs, err := readKVFile(f, true)
				if err != nil {
					return err
				}
				cfg.Env = append(cfg.Env, kvs...)
			}
			for _, kv := range env {
				if v, ok := envValue(kv); ok {
					cfg.Env = append(cfg.Env, v)
				}
			}
			if tty {
				if h, w, ok := c.termSize(); ok {
					cfg.ConsoleSize = []uint32{h, w}
				}
			}
			created, err := e.ContainerExecCreate(ctx, &enginev1.ContainerExecCreateRequest{Id: args[0], Config: cfg})
			if err != nil {
				return c.daemonErr(err)
			}
			execID := created.GetId()
			st, err := e.ExecStart(ctx)
			if err != nil {
				return c.daemonErr(err)
			}
			if err := st.Send(&enginev1.ExecStartRequest{Options: &enginev1.ExecStartOptions{Id: execID, Detach: detach, Tty: tty, ConsoleSize: cfg.ConsoleSize}}); err != nil {
				return c.daemonErr(err)
			}
			if _, err := st.Recv(); err != nil && !errors.Is(err, io.EOF) {
				return c.execStatus(err)
			}
			if detach {
				return nil
			}
			if tty && interactive {
				restore := c.rawTerminal()
				defer restore()
			}
			det := make(chan error, 1)
			if interactive {
				var k []byte
				if tty {
					k, _ = detachKeys(keys)
				}
				// Owned by the process, as in attachStream.
				go c.pumpStdin(k, func(b []byte) error { return st.Send(&enginev1.ExecStartRequest{Stdin: b}) },
					func() {
						st.Send(&enginev1.ExecStartRequest{CloseStdin: true})
						st.CloseSend()
					}, det)
			} else {
				st.CloseSend()
			}
			if tty {
				c.monitorSize(ctx, func(h, w uint32) error {
					_, err := e.ExecResize(ctx, &enginev1.ExecResizeRequest{Id: execID, H: h, W: w})
					return err
				})
			}
			stderr := c.Err
			if tty {
				stderr = c.Out
			}
			done := make(chan error, 1)
			go func() { done <- c.copyOutput(st.Recv, c.Out, stderr) }()
			select {
			case <-det:
				// The Docker CLI's escape error, exit 1.
				return StatusError{Status: "read escape sequence", Code: 1}
			case err := <-done:
				if err != nil {
					return err
				}
			}
			ins, err := e.ExecInspect(ctx, &enginev1.ExecInspectRequest{Id: execID})
			if err != nil {
				return c.daemonErr(err)
			}
			if code := ins.GetExitCode(); code != 0 {
				return StatusError{Code: int(code)}
			}
			return nil
		},
	}
	interspersed(cmd)
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	f.StringVar(&keys, "detach-keys", "", "Override the key sequence for detaching a container")
	f.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&envFile, "env-file", nil, "Read in a file of environment variables")
	f.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	f.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.StringVarP(&user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	f.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	return cmd
}

// execStatus is an exec that could not start: 126 or 127 as dockerd's
// exit codes, with its message.
func (c *CLI) execStatus(err error) error {
	err = c.daemonErr(err)
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return StatusError{Status: msg, Code: 127}
	case strings.Contains(msg, "permission denied"):
		return StatusError{Status: msg, Code: 126}
	}
	return err
}
