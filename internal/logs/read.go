package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Entry is one decoded log entry.
type Entry struct {
	Stream string
	Line   []byte
	Time   time.Time
}

// ReadOptions select entries, as `docker logs` does.
type ReadOptions struct {
	Stdout, Stderr bool      // which streams
	Since, Until   time.Time // zero = unbounded; Since inclusive, Until exclusive
	Tail           int       // -1 = all; N = only the last N matching entries before following
	Follow         bool      // keep reading new entries, across rotations, until ctx or done ends it
}

// pollInterval is how often a follower looks for new entries when inotify
// can't tell it.
const pollInterval = 100 * time.Millisecond

// Read sends matching entries to fn, oldest first: the rotated files, then
// the current one. With Follow it then waits for new entries, across
// rotations, until ctx is done (returning its error), the clock passes
// Until, or done is closed (the container exited), after which it reads
// what is left and returns nil. Malformed lines are skipped. An error
// from fn stops reading and is returned.
func Read(ctx context.Context, cfg Config, opts ReadOptions, done <-chan struct{}, fn func(Entry) error) error {
	r := &reader{ctx: ctx, opts: opts, fn: fn, buf: make([]byte, 64<<10)}
	files := openChain(cfg, nil)
	// files always holds what is open; when following, its last is the
	// file being followed.
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()

	first, off := 0, int64(0)
	if opts.Tail >= 0 {
		first, off = r.tailStart(files, opts.Tail)
	}
	for i := first; i < len(files); i++ {
		r.off, off = off, 0
		limit := int64(-1)
		if i == len(files)-1 && !opts.Follow {
			// Stop where the file ended when we looked, so Tail N is N.
			limit = files[i].fi.Size()
		}
		if err := r.drain(files[i].File, limit); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	files = keepLast(files)

	wake, stop := watch(filepath.Dir(cfg.Path))
	defer stop()
	interval := pollInterval
	if wake != nil {
		interval = time.Second // only a safety net
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var untilPassed <-chan time.Time
	if !opts.Until.IsZero() {
		// Nothing written from then on can be before Until.
		untilPassed = time.After(time.Until(opts.Until))
	}
	exiting := false
	for {
		var cur *logFile
		if len(files) > 0 {
			cur = &files[0]
			if fi, err := cur.Stat(); err == nil && fi.Size() < r.off {
				r.off = 0 // truncated in place: start over
			}
			if err := r.drain(cur.File, -1); err != nil {
				return err
			}
		}
		if st, err := os.Stat(cfg.Path); err == nil && (cur == nil || !os.SameFile(st, cur.fi)) {
			// Rotated. cur gets no more writes: finish it, then read
			// every file that came after it.
			var after os.FileInfo
			if cur != nil {
				if err := r.drain(cur.File, -1); err != nil {
					return err
				}
				after = cur.fi
			}
			if newer := openChain(cfg, after); len(newer) > 0 {
				files = append(files, newer...)
				for _, f := range newer[:len(newer)-1] {
					r.off = 0
					if err := r.drain(f.File, -1); err != nil {
						return err
					}
				}
				files, r.off = keepLast(files), 0
				continue
			}
		}
		if exiting {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			exiting = true
		case <-untilPassed:
			exiting = true
		case <-wake:
		case <-tick.C:
		}
	}
}

// keepLast closes all files but the last.
func keepLast(files []logFile) []logFile {
	if len(files) < 2 {
		return files
	}
	for _, f := range files[:len(files)-1] {
		f.Close()
	}
	return files[len(files)-1:]
}

type logFile struct {
	*os.File
	fi os.FileInfo // as opened: its identity, and its size then
}

// openChain opens the log's files and returns them oldest first, leaving
// out after and everything older. It opens newest first and starts over
// if Path was rotated meanwhile, so a concurrent rotation can neither
// reorder nor skip files.
func openChain(cfg Config, after os.FileInfo) []logFile {
	for try := 0; ; try++ {
		var files []logFile
		var head os.FileInfo // Path as we opened it, nil if it was missing
		for i := range cfg.maxFiles() {
			f, err := os.Open(cfg.name(i))
			if err != nil {
				continue // a gap while the writer renames
			}
			fi, err := f.Stat()
			if err == nil && i == 0 {
				head = fi
			}
			if err == nil && after != nil && os.SameFile(fi, after) {
				f.Close()
				break
			}
			// The same file twice: it was renamed on ahead of us.
			if err != nil || len(files) > 0 && os.SameFile(fi, files[len(files)-1].fi) {
				f.Close()
				continue
			}
			files = append(files, logFile{f, fi})
		}
		st, err := os.Stat(cfg.Path)
		if (head == nil) == (err != nil) && (head == nil || os.SameFile(head, st)) || try == 10 {
			slices.Reverse(files)
			return files
		}
		for _, f := range files {
			f.Close()
		}
	}
}

type reader struct {
	ctx  context.Context
	opts ReadOptions
	fn   func(Entry) error
	buf  []byte
	off  int64 // where the next line starts in the file being read
}

// drain passes on each whole line from r.off up to EOF, or limit if it is
// not negative, leaving r.off at the start of an incomplete last line, to
// be read again once it is complete.
func (r *reader) drain(f *os.File, limit int64) error {
	n := 0 // r.buf[:n] is read but holds no whole line
	for {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if n == len(r.buf) {
			if n >= maxLineBytes {
				// Not an entry (a crash can leave megabytes of NULs): skip
				// it instead of holding it. What follows up to the next
				// newline fails to decode and is skipped too.
				r.off, n = r.off+int64(n), 0
			} else {
				r.buf = append(r.buf, make([]byte, len(r.buf))...)
			}
		}
		b := r.buf[n:]
		if limit >= 0 {
			b = b[:max(0, min(int64(len(b)), limit-r.off-int64(n)))]
		}
		k, err := f.ReadAt(b, r.off+int64(n))
		data := r.buf[:n+k]
		for i := bytes.IndexByte(data, '\n'); i >= 0; i = bytes.IndexByte(data, '\n') {
			if e, ok := r.decode(data[:i]); ok {
				if err := r.fn(e); err != nil {
					return err
				}
			}
			data, r.off = data[i+1:], r.off+int64(i+1)
		}
		n = copy(r.buf, data)
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF || k == 0 {
			return nil
		}
	}
}

// tailStart returns the file and offset at which the last n matching
// entries start. It reads the files backwards in blocks, so the cost is
// that of the tail, not of the whole log.
func (r *reader) tailStart(files []logFile, n int) (int, int64) {
	count := 0
	for i := len(files) - 1; i >= 0; i-- {
		pos := files[i].fi.Size()
		var data []byte // the file from pos on, up to the lines classified
		// The bytes after the last newline are not an entry (yet): drain
		// does not pass them on either.
		trailing := true
		for {
			j := bytes.LastIndexByte(data, '\n')
			if j < 0 && pos > 0 {
				k := min(tailBlock, pos)
				pos -= k
				b := make([]byte, k, k+int64(len(data)))
				if _, err := files[i].ReadAt(b, pos); err != nil {
					break
				}
				if len(data) > maxLineBytes {
					data = data[:0] // not an entry; see drain
				}
				data = append(b, data...)
				continue
			}
			line, start := data[j+1:], pos+int64(j+1)
			switch {
			case trailing && n == 0:
				return i, start
			case trailing:
				trailing = false
			default:
				if _, ok := r.decode(line); ok {
					if count++; count == n {
						return i, start
					}
				}
			}
			if j < 0 {
				break
			}
			data = data[:j]
		}
	}
	return 0, 0
}

const (
	tailBlock = 64 << 10
	// maxLineBytes bounds a line: entries from Copy are at most about
	// 100 KiB, a 16 KiB line escaped.
	maxLineBytes = 4 << 20
)

type jsonLog struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// decode parses a line and reports whether it is an entry opts select.
func (r *reader) decode(line []byte) (Entry, bool) {
	var j jsonLog
	if json.Unmarshal(line, &j) != nil {
		return Entry{}, false
	}
	o := r.opts
	if !(j.Stream == "stdout" && o.Stdout || j.Stream == "stderr" && o.Stderr) ||
		!o.Since.IsZero() && j.Time.Before(o.Since) ||
		!o.Until.IsZero() && !j.Time.Before(o.Until) {
		return Entry{}, false
	}
	return Entry{Stream: j.Stream, Line: []byte(j.Log), Time: j.Time}, true
}
