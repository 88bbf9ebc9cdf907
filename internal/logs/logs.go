// Package logs writes and reads container logs in Docker's json-file
// format, so files, tools and `docker logs` behave as with dockerd.
package logs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// Config locates a log and says how it rotates.
type Config struct {
	Path     string // the log file, e.g. <state>/<id>-json.log
	MaxSize  int64  // bytes; 0 = no rotation (Docker default for json-file is unlimited)
	MaxFiles int    // kept files including the current one (>=1); rotated files are Path.1, Path.2 ... (Path.1 newest)
}

// name is the file of generation i: 0 is the current file.
func (c Config) name(i int) string {
	if i == 0 {
		return c.Path
	}
	return c.Path + "." + strconv.Itoa(i)
}

func (c Config) maxFiles() int { return max(c.MaxFiles, 1) }

// Writer appends log entries. It is safe for concurrent use. A failed
// write (disk full) drops that entry, counted in Dropped, rather than
// stopping or blocking the container's output.
type Writer struct {
	cfg     Config
	dropped atomic.Int64

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
	// midLine is set when the file ends inside an entry (a short write, or
	// a crash before NewWriter): the next write ends that line first, so
	// only the broken entry is unreadable and not the one after it.
	midLine bool
}

// NewWriter opens or creates cfg.Path for appending, and its directory.
func NewWriter(cfg Config) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, err
	}
	// Read access is for checking how the file ends.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &Writer{cfg: cfg, f: f, size: fi.Size()}
	if w.size > 0 {
		var last [1]byte
		_, err := f.ReadAt(last[:], w.size-1)
		w.midLine = err != nil || last[0] != '\n'
	}
	return w, nil
}

// Write appends one entry. line keeps the program's "\n", if it wrote one.
// A failed write is counted in Dropped as well as returned.
func (w *Writer) Write(stream string, line []byte, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = appendEntry(w.buf[:0], stream, line, t)
	if w.cfg.MaxSize > 0 && w.size > 0 && w.size+int64(len(w.buf)) > w.cfg.MaxSize {
		// On failure keep writing to the old file: better than losing output.
		w.rotate()
	}
	if w.midLine {
		if _, err := w.f.Write([]byte{'\n'}); err != nil {
			w.dropped.Add(1)
			return err
		}
		w.size++
		w.midLine = false
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	if err != nil {
		w.midLine = n > 0
		w.dropped.Add(1)
	}
	return err
}

// rotate shifts Path.i to Path.i+1 and starts a new Path. The new file
// always has a new inode, which is how followers notice the rotation.
func (w *Writer) rotate() error {
	// Make the new file first: if that fails, nothing has moved and
	// writing goes on in the old one.
	next := w.cfg.Path + ".new"
	f, err := os.OpenFile(next, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	// Errors are ignored: the older generations need not exist yet.
	for i := w.cfg.maxFiles() - 1; i > 0; i-- {
		os.Rename(w.cfg.name(i-1), w.cfg.name(i))
	}
	if err := os.Rename(next, w.cfg.Path); err != nil {
		f.Close()
		return err
	}
	w.f.Close()
	w.f, w.size, w.midLine = f, 0, false
	return nil
}

// Dropped is how many entries could not be written.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Close closes the file; later writes are dropped.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// maxLine is where dockerd splits a line without a newline into several
// entries.
const maxLine = 16 << 10

// flushDelay is how long Copy holds a line whose newline has not come yet.
// It is long enough to join the pieces of a line a program writes in
// several writes (stdio flushing a full buffer), and short enough that a
// shell prompt or an echoed keystroke shows at once in attach, which
// follows this file.
const flushDelay = 20 * time.Millisecond

// Copy reads r until EOF and writes an entry per line. A line longer than
// 16 KiB becomes several entries, and one without a newline is written
// once r has been quiet for flushDelay, or at EOF. Failed writes are
// counted in Dropped, not returned.
func (w *Writer) Copy(stream string, r io.Reader) error {
	var (
		mu  sync.Mutex // guards n against the delayed flush
		buf = make([]byte, maxLine)
		n   int // buf[:n] is the start of a line with no newline yet
	)
	flush := func() {
		if n > 0 {
			w.Write(stream, buf[:n], time.Now())
			n = 0
		}
	}
	timer := time.AfterFunc(time.Hour, func() {
		mu.Lock()
		defer mu.Unlock()
		flush()
	})
	timer.Stop()
	defer timer.Stop()
	for {
		mu.Lock()
		start := n
		mu.Unlock()
		// The timer may flush buf[:start] meanwhile; Read only touches
		// what comes after it.
		k, err := r.Read(buf[start:])
		mu.Lock()
		if n < start {
			copy(buf, buf[start:start+k])
		}
		data, now := buf[:n+k], time.Now()
		for i := bytes.IndexByte(data, '\n'); i >= 0; i = bytes.IndexByte(data, '\n') {
			w.Write(stream, data[:i+1], now)
			data = data[i+1:]
		}
		n = copy(buf, data)
		if n == len(buf) || err != nil {
			flush()
		}
		if n > 0 {
			timer.Reset(flushDelay)
		}
		mu.Unlock()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed), errors.Is(err, syscall.EIO):
			// EIO is how a terminal reports that its other side closed.
			return nil
		default:
			return err
		}
	}
}

// appendEntry encodes an entry byte for byte as dockerd's json-file driver
// does (jsonlog.JSONLogs.MarshalJSONBuf), whose escaping differs from
// encoding/json's: tools that read these files see the same bytes.
func appendEntry(b []byte, stream string, line []byte, t time.Time) []byte {
	b = append(b, '{')
	if len(line) > 0 {
		b = append(b, `"log":`...)
		b = appendString(b, line)
		b = append(b, ',')
	}
	if stream != "" {
		b = append(b, `"stream":`...)
		b = appendString(b, []byte(stream))
		b = append(b, ',')
	}
	b = append(b, `"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}

// appendString is dockerd's ffjsonWriteJSONBytesAsString.
func appendString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '\\' && c != '"' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRune(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[c&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
