package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/console"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func isTerminal(f *os.File) bool {
	_, err := console.ConsoleFromFile(f)
	return err == nil
}

// errNotTTY is the Docker CLI's refusal of -it without a terminal.
var errNotTTY = StatusError{Status: "the input device is not a TTY", Code: 1}

// stdinIsTerminal says whether the CLI's stdin is a terminal.
func (c *CLI) stdinIsTerminal() bool {
	f, ok := c.In.(*os.File)
	return ok && isTerminal(f)
}

// rawTerminal puts the CLI's stdin terminal in raw mode (for -it) and
// returns what restores it.
func (c *CLI) rawTerminal() func() {
	f, ok := c.In.(*os.File)
	if !ok {
		return func() {}
	}
	con, err := console.ConsoleFromFile(f)
	if err != nil {
		return func() {}
	}
	if err := con.SetRaw(); err != nil {
		return func() {}
	}
	return func() { con.Reset() }
}

// termSize is the size of the CLI's output terminal (height, width).
func (c *CLI) termSize() (uint32, uint32, bool) {
	for _, s := range []any{c.Out, c.In} {
		f, ok := s.(*os.File)
		if !ok {
			continue
		}
		con, err := console.ConsoleFromFile(f)
		if err != nil {
			continue
		}
		sz, err := con.Size()
		if err != nil || sz.Height == 0 {
			continue
		}
		return uint32(sz.Height), uint32(sz.Width), true
	}
	return 0, 0, false
}

// monitorSize resizes the container's (or exec's) terminal now and on
// each SIGWINCH until ctx ends.
func (c *CLI) monitorSize(ctx context.Context, resize func(h, w uint32) error) {
	if h, w, ok := c.termSize(); ok {
		resize(h, w)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if h, w, ok := c.termSize(); ok {
					resize(h, w)
				}
			}
		}
	}()
}

// errDetached says the user typed the detach keys.
var errDetached = errors.New("detached")

// detachKeys parses a --detach-keys value ("ctrl-p,ctrl-q") as the Docker CLI.
func detachKeys(s string) ([]byte, error) {
	if s == "" {
		return []byte{16, 17}, nil
	}
	var out []byte
	for _, k := range bytes.Split([]byte(s), []byte(",")) {
		ks := string(k)
		switch {
		case len(ks) == 1:
			out = append(out, ks[0])
		case len(ks) == 6 && ks[:5] == "ctrl-":
			ch := ks[5]
			switch {
			case ch >= 'a' && ch <= 'z':
				out = append(out, ch-'a'+1)
			case ch == '@':
				out = append(out, 0)
			case ch >= '[' && ch <= '_':
				out = append(out, ch-'['+27)
			default:
				return nil, errors.New("Invalid detach keys (" + s + ") provided")
			}
		default:
			return nil, errors.New("Invalid detach keys (" + s + ") provided")
		}
	}
	return out, nil
}

// pumpStdin sends the CLI's stdin with send until EOF (then closeStdin)
// or the detach keys (then errDetached goes to detached; only with a
// terminal). It runs until stdin ends; its reads cannot be interrupted,
// and the CLI exits after the stream in any case.
func (c *CLI) pumpStdin(keys []byte, send func([]byte) error, closeStdin func(), detached chan<- error) {
	buf := make([]byte, 32<<10)
	var held []byte
	for {
		n, err := c.In.Read(buf)
		if n > 0 {
			data := append(held, buf[:n]...)
			held = nil
			if keys != nil {
				out := data[:0:0]
				for i := 0; i < len(data); i++ {
					// A prefix of the sequence at the end is held back until
					// the next read says whether it completes.
					m := 0
					for m < len(keys) && i+m < len(data) && data[i+m] == keys[m] {
						m++
					}
					if m == len(keys) {
						if len(out) > 0 {
							send(out)
						}
						detached <- errDetached
						return
					}
					if m > 0 && i+m == len(data) {
						held = append(held, data[i:]...)
						break
					}
					out = append(out, data[i])
				}
				data = out
			}
			if len(data) > 0 && send(data) != nil {
				return
			}
		}
		if err != nil {
			closeStdin()
			return
		}
	}
}

// copyOutput writes log entries to stdout and stderr (stream 2) until the
// stream ends; with a terminal everything goes to stdout.
func (c *CLI) copyOutput(recv func() (*enginev1.LogEntry, error), stdout, stderr io.Writer) error {
	for {
		e, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.daemonErr(err)
		}
		w := stdout
		if e.GetStream() == 2 && stderr != nil {
			w = stderr
		}
		if w != nil && len(e.GetData()) > 0 {
			w.Write(e.GetData())
		}
	}
}
