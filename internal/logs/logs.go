// Package logs writes and reads Docker's json-file container logs.
package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config locates a log and its rotation.
type Config struct {
	Path     string
	MaxSize  int64
	MaxFiles int
}

// Writer appends entries; safe for concurrent use.
type Writer struct {
	cfg     Config
	mu      sync.Mutex
	f       *os.File
	size    int64
	dropped atomic.Int64
}

type jsonLine struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

// NewWriter opens the log for appending.
func NewWriter(cfg Config) (*Writer, error) {
	if cfg.MaxFiles < 1 {
		cfg.MaxFiles = 1
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{cfg: cfg, f: f, size: fi.Size()}, nil
}

// Write appends one entry; a failed write is counted, not returned as fatal.
func (w *Writer) Write(stream string, line []byte, t time.Time) error {
	b, err := json.Marshal(jsonLine{Log: string(line), Stream: stream, Time: t.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg.MaxSize > 0 && w.size+int64(len(b)) > w.cfg.MaxSize && w.size > 0 {
		if err := w.rotate(); err != nil {
			w.dropped.Add(1)
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		w.dropped.Add(1)
	}
	return err
}

func (w *Writer) rotate() error {
	w.f.Close()
	if w.cfg.MaxFiles > 1 {
		for i := w.cfg.MaxFiles - 1; i >= 1; i-- {
			src := w.cfg.Path
			if i > 1 {
				src = w.cfg.Path + "." + strconv.Itoa(i-1)
			}
			os.Rename(src, w.cfg.Path+"."+strconv.Itoa(i))
		}
	}
	f, err := os.OpenFile(w.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return nil
}

// Dropped is how many entries could not be written.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

const maxLine = 16 << 10

// Copy writes an entry per line of r until EOF. Output without a newline
// yet is written as soon as it is read, as a partial entry: attach and
// logs -f follow this file, and a shell prompt must show up at once.
// Readers concatenate entries, so partial ones read back unchanged.
func (w *Writer) Copy(stream string, r io.Reader) error {
	buf := make([]byte, maxLine)
	for {
		n, err := r.Read(buf)
		data := buf[:n]
		now := time.Now()
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				w.Write(stream, data, now)
				break
			}
			w.Write(stream, data[:i+1], now)
			data = data[i+1:]
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			// EIO: the terminal's other side closed.
			return nil
		}
	}
}

// Entry is one decoded log entry.
type Entry struct {
	Stream string
	Line   []byte
	Time   time.Time
}

// ReadOptions select entries.
type ReadOptions struct {
	Stdout, Stderr bool
	Since, Until   time.Time
	Tail           int
	Follow         bool
}

// Read sends matching entries to fn, oldest first.
func Read(ctx context.Context, cfg Config, opts ReadOptions, done <-chan struct{}, fn func(Entry) error) error {
	var files []string
	for i := cfg.MaxFiles - 1; i >= 1; i-- {
		files = append(files, cfg.Path+"."+strconv.Itoa(i))
	}
	var all []Entry
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		all = append(all, decodeAll(data, opts)...)
	}
	f, err := os.Open(cfg.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	// Only whole lines: a partial last line is read again when followed.
	offset := int64(bytes.LastIndexByte(data, '\n') + 1)
	all = append(all, decodeAll(data[:offset], opts)...)
	if opts.Tail >= 0 && len(all) > opts.Tail {
		all = all[len(all)-opts.Tail:]
	}
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	fi, _ := f.Stat()
	ino := inode(fi)
	finishing := false
	for {
		buf := make([]byte, 64<<10)
		n, _ := f.ReadAt(buf, offset)
		chunk := buf[:n]
		if end := bytes.LastIndexByte(chunk, '\n'); end >= 0 {
			for _, e := range decodeAll(chunk[:end+1], opts) {
				if err := fn(e); err != nil {
					return err
				}
			}
			offset += int64(end + 1)
			continue
		}
		if finishing {
			return nil
		}
		// Rotated underneath us: move to the new file.
		if cur, err := os.Stat(cfg.Path); err == nil && inode(cur) != ino {
			nf, err := os.Open(cfg.Path)
			if err == nil {
				f.Close()
				f, offset, ino = nf, 0, inode(cur)
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			finishing = true
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func decodeAll(data []byte, opts ReadOptions) []Entry {
	var out []Entry
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		var j jsonLine
		if json.Unmarshal(line, &j) != nil {
			continue
		}
		if (j.Stream == "stdout" && !opts.Stdout) || (j.Stream == "stderr" && !opts.Stderr) {
			continue
		}
		t, _ := time.Parse(time.RFC3339Nano, j.Time)
		if (!opts.Since.IsZero() && t.Before(opts.Since)) || (!opts.Until.IsZero() && !t.Before(opts.Until)) {
			continue
		}
		out = append(out, Entry{Stream: j.Stream, Line: []byte(j.Log), Time: t})
	}
	return out
}

var _ = fmt.Sprint
