package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func newWriter(t *testing.T, cfg Config) *Writer {
	t.Helper()
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// writeN writes entries "<i>\n" for i in [from, to), at t0+i seconds, odd
// ones to stderr.
func writeN(t *testing.T, w *Writer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		if err := w.Write(stream, fmt.Appendf(nil, "%d\n", i), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, cfg Config, opts ReadOptions) []Entry {
	t.Helper()
	var got []Entry
	if err := Read(context.Background(), cfg, opts, nil, func(e Entry) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

var all = ReadOptions{Stdout: true, Stderr: true, Tail: -1}

func lines(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Line)
	}
	return out
}

// seq is what writeN(from, to) wrote, as lines.
func seq(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%d\n", i))
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func rawLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")
}

func TestFormatMatchesDocker(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "new", "c-json.log")}
	w := newWriter(t, cfg)
	ts := t0.Add(123456789)
	w.Write("stdout", []byte("hi\n"), ts)
	w.Write("stderr", []byte("tab\t \"q\" \\ <a&b> \r\x01 \xff \u2028 é"), ts.Add(-23456789).In(time.FixedZone("CET", 3600)))
	w.Write("stdout", nil, t0)

	want := []string{
		`{"log":"hi\n","stream":"stdout","time":"2026-11-23T08:00:00.123456789Z"}` + "\n",
		`{"log":"tab\u0009 \"q\" \\ \u003ca\u0026b\u003e \r\u0001 \ufffd \u2028 é","stream":"stderr","time":"2026-11-23T08:00:00.1Z"}` + "\n",
		`{"stream":"stdout","time":"2026-11-23T08:00:00Z"}` + "\n",
		"",
	}
	equal(t, "raw lines", rawLines(t, cfg.Path), want)
	if fi, err := os.Stat(cfg.Path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: %v %v", fi.Mode(), err)
	}

	got := readAll(t, cfg, all)
	equal(t, "read back", lines(got), []string{"hi\n", "tab\t \"q\" \\ <a&b> \r\x01 \ufffd \u2028 é", ""})
	if !got[0].Time.Equal(ts) || got[0].Stream != "stdout" || got[1].Stream != "stderr" {
		t.Errorf("entry: %+v", got[0])
	}
}

func TestCopySplitsLines(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	w := newWriter(t, cfg)
	long := strings.Repeat("a", 40000)
	in := "one\ntwo\n" + long + "\n" + strings.Repeat("b", maxLine) + "\n" + "no newline"
	if err := w.Copy("stdout", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	equal(t, "entries", lines(readAll(t, cfg, all)), []string{
		"one\n", "two\n",
		long[:16384], long[16384:32768], long[32768:] + "\n",
		strings.Repeat("b", maxLine), "\n",
		"no newline",
	})
	if n := len(rawLines(t, cfg.Path)) - 1; n != 8 {
		t.Errorf("%d lines in the file, want 8", n)
	}

	// A line read in pieces is still one entry.
	cfg.Path += "2"
	w = newWriter(t, cfg)
	w.Copy("stderr", iotest.OneByteReader(strings.NewReader("in pieces\nx\n")))
	equal(t, "one byte reads", lines(readAll(t, cfg, all)), []string{"in pieces\n", "x\n"})
}

// A prompt has no newline; attach must see it anyway.
func TestCopyFlushesQuietPartialLine(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	w := newWriter(t, cfg)
	pr, pw := io.Pipe()
	copied := make(chan error)
	go func() { copied <- w.Copy("stdout", pr) }()
	pw.Write([]byte("$ "))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if got := lines(readAll(t, cfg, all)); len(got) == 1 && got[0] == "$ " {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prompt was not written")
		}
	}
	pw.Write([]byte("ls\n"))
	pw.Close()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	equal(t, "entries", lines(readAll(t, cfg, all)), []string{"$ ", "ls\n"})
}

func TestConcurrentWritersWriteWholeLines(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log"), MaxSize: 64 << 10, MaxFiles: 100}
	w := newWriter(t, cfg)
	inputs := map[string]string{}
	for g := range 8 {
		var b strings.Builder
		for i := range 2000 {
			fmt.Fprintf(&b, "g%d line %d %s\n", g, i, strings.Repeat("x", i%97))
		}
		inputs[fmt.Sprint("s", g)] = b.String()
	}
	var wg sync.WaitGroup
	for stream, in := range inputs {
		wg.Go(func() {
			if err := w.Copy(stream, strings.NewReader(in)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	// Oldest file first; every line must be a whole entry, and each
	// stream's entries must add up to its input, in order.
	got := map[string]*strings.Builder{}
	for stream := range inputs {
		got[stream] = new(strings.Builder)
	}
	files := 0
	for i := cfg.MaxFiles - 1; i >= 0; i-- {
		b, err := os.ReadFile(cfg.name(i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		files++
		if int64(len(b)) > cfg.MaxSize {
			t.Errorf("%s has %d bytes", cfg.name(i), len(b))
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			var j jsonLog
			if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
				t.Fatalf("%s: %v in %q", cfg.name(i), err, sc.Text())
			}
			got[j.Stream].WriteString(j.Log)
		}
	}
	if files < 10 {
		t.Errorf("only %d files: no rotation?", files)
	}
	for stream, in := range inputs {
		if got[stream].String() != in {
			t.Errorf("%s: read back %d bytes differing from the %d written", stream, got[stream].Len(), len(in))
		}
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped %d", w.Dropped())
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "log"), MaxSize: 1000, MaxFiles: 3}
	w := newWriter(t, cfg)
	writeN(t, w, 0, 100)
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	equal(t, "files", names, []string{cfg.Path, cfg.Path + ".1", cfg.Path + ".2"})
	for _, n := range names {
		if fi, _ := os.Stat(n); fi.Size() > cfg.MaxSize {
			t.Errorf("%s: %d bytes", n, fi.Size())
		}
	}
	// A file holds 15 entries of about 64 bytes: two full files and a part.
	got := lines(readAll(t, cfg, all))
	if len(got) < 31 || len(got) > 45 {
		t.Fatalf("%d entries kept", len(got))
	}
	equal(t, "entries", got, seq(100-len(got), 100))
	first := readAll(t, Config{Path: cfg.Path + ".2"}, all)
	if string(first[0].Line) != got[0] {
		t.Errorf("%s starts with %q, want %q", cfg.Path+".2", first[0].Line, got[0])
	}

	// One file: rotation starts it afresh.
	cfg = Config{Path: filepath.Join(dir, "one"), MaxSize: 1000, MaxFiles: 1}
	w = newWriter(t, cfg)
	writeN(t, w, 0, 100)
	if _, err := os.Stat(cfg.Path + ".1"); err == nil {
		t.Error("a rotated file with MaxFiles 1")
	}
	got = lines(readAll(t, cfg, all))
	if len(got) < 1 || len(got) > 15 {
		t.Fatalf("%d entries kept", len(got))
	}
	equal(t, "entries", got, seq(100-len(got), 100))
}

func TestTail(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log"), MaxSize: 1000, MaxFiles: 10}
	w := newWriter(t, cfg)
	writeN(t, w, 0, 60) // about four files
	if _, err := os.Stat(cfg.Path + ".3"); err != nil {
		t.Fatal(err)
	}
	tail := func(n int, opts ReadOptions) []string {
		opts.Tail = n
		return lines(readAll(t, cfg, opts))
	}
	equal(t, "tail 5", tail(5, all), seq(55, 60))
	equal(t, "tail 40", tail(40, all), seq(20, 60))
	equal(t, "tail 0", tail(0, all), nil)
	equal(t, "tail 1000", tail(1000, all), seq(0, 60))
	equal(t, "tail 3 stderr", tail(3, ReadOptions{Stderr: true}), []string{"55\n", "57\n", "59\n"})
	equal(t, "tail 3 until", tail(3, ReadOptions{Stdout: true, Stderr: true, Until: t0.Add(30 * time.Second)}), seq(27, 30))
	equal(t, "tail 10 since", tail(10, ReadOptions{Stdout: true, Stderr: true, Since: t0.Add(57 * time.Second)}), seq(57, 60))

	// An entry being written (no newline yet) is not counted, nor sent.
	f, _ := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"log":"60\n","stream":"stdout","ti`)
	f.Close()
	equal(t, "tail 2, half an entry", tail(2, all), seq(58, 60))
}

// Tail reads from the end: a log with a 1 TiB hole (NULs, no newline) at
// its start answers at once, where reading it from the start would not.
func TestTailReadsBackwards(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	if err := os.WriteFile(cfg.Path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cfg.Path, 1<<40); err != nil {
		t.Skip("no sparse files:", err)
	}
	w := newWriter(t, cfg)
	writeN(t, w, 0, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []Entry
	err := Read(ctx, cfg, ReadOptions{Stdout: true, Stderr: true, Tail: 3}, nil, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "tail 3", lines(got), seq(7, 10))
}

func TestSinceUntilAndStreams(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	w := newWriter(t, cfg)
	writeN(t, w, 0, 10)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	read := func(opts ReadOptions) []string { opts.Tail = -1; return lines(readAll(t, cfg, opts)) }
	equal(t, "since 3 until 6", read(ReadOptions{Stdout: true, Stderr: true, Since: at(3), Until: at(6)}), seq(3, 6))
	equal(t, "since 8", read(ReadOptions{Stdout: true, Stderr: true, Since: at(8)}), seq(8, 10))
	equal(t, "until 2", read(ReadOptions{Stdout: true, Stderr: true, Until: at(2)}), seq(0, 2))
	equal(t, "stdout", read(ReadOptions{Stdout: true}), []string{"0\n", "2\n", "4\n", "6\n", "8\n"})
	equal(t, "stderr", read(ReadOptions{Stderr: true}), []string{"1\n", "3\n", "5\n", "7\n", "9\n"})
	equal(t, "neither", read(ReadOptions{}), nil)
	equal(t, "no log yet", lines(readAll(t, Config{Path: cfg.Path + "-none"}, all)), nil)
}

func TestMalformedLinesAreSkipped(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	os.WriteFile(cfg.Path, []byte(`{"log":"a\n","stream":"stdout","time":"2026-11-23T08:00:00Z"}
garbage
{"log":"b\n","stream":"stdout","time":"not a time"}

{"log":"c\n","stream":"stdout","time":"2026-11-23T08:00:01Z"}
{"log":"cut off by a cra`), 0o640)
	equal(t, "entries", lines(readAll(t, cfg, all)), []string{"a\n", "c\n"})
	equal(t, "tail", lines(readAll(t, cfg, ReadOptions{Stdout: true, Tail: 1})), []string{"c\n"})

	// Writing on ends the broken line first, so the new entry is whole.
	w := newWriter(t, cfg)
	writeN(t, w, 0, 1)
	equal(t, "after restart", lines(readAll(t, cfg, all)), []string{"a\n", "c\n", "0\n"})
}

// follow runs a following Read and passes its entries on.
func follow(t *testing.T, ctx context.Context, cfg Config, opts ReadOptions, done <-chan struct{}) (<-chan Entry, <-chan error) {
	entries, errc := make(chan Entry, 10000), make(chan error, 1)
	opts.Follow = true
	go func() {
		errc <- Read(ctx, cfg, opts, done, func(e Entry) error {
			entries <- e
			return nil
		})
	}()
	return entries, errc
}

func receive(t *testing.T, entries <-chan Entry, want []string) {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case e := <-entries:
			got = append(got, string(e.Line))
		case <-timeout:
			t.Fatalf("timed out: got %q, want %q", got, want)
		}
	}
	equal(t, "followed", got, want)
}

func TestFollow(t *testing.T) {
	for _, maxFiles := range []int{1, 3} {
		t.Run(fmt.Sprint("MaxFiles=", maxFiles), func(t *testing.T) {
			cfg := Config{Path: filepath.Join(t.TempDir(), "log"), MaxSize: 500, MaxFiles: maxFiles}
			w := newWriter(t, cfg)
			writeN(t, w, 0, 5)
			ctx, cancel := context.WithCancel(context.Background())
			entries, errc := follow(t, ctx, cfg, ReadOptions{Stdout: true, Stderr: true, Tail: 2}, nil)
			receive(t, entries, seq(3, 5))
			// One at a time, so the reader is never more than
			// MaxFiles behind; about 8 entries fill a file.
			for i := 5; i < 40; i++ {
				writeN(t, w, i, i+1)
				receive(t, entries, seq(i, i+1))
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("Read returned %v", err)
			}
		})
	}
}

// A follower that falls several rotations behind catches up in order.
func TestFollowBurstAcrossRotations(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log"), MaxSize: 500, MaxFiles: 200}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Started before the log exists, as for a container just created.
	entries, _ := follow(t, ctx, cfg, ReadOptions{Stdout: true, Stderr: true, Tail: 0}, nil)
	time.Sleep(200 * time.Millisecond)
	w := newWriter(t, cfg)
	writeN(t, w, 0, 1000)
	receive(t, entries, seq(0, 1000))
	if _, err := os.Stat(cfg.Path + ".50"); err != nil {
		t.Error("expected many rotations:", err)
	}
}

func TestFollowDoneDrains(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log"), MaxSize: 500, MaxFiles: 100}
	w := newWriter(t, cfg)
	writeN(t, w, 0, 1)
	done := make(chan struct{})
	entries, errc := follow(t, context.Background(), cfg, all, done)
	receive(t, entries, seq(0, 1))
	writeN(t, w, 1, 300)
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after done")
	}
	receive(t, entries, seq(1, 300))
	if len(entries) != 0 {
		t.Errorf("%d extra entries", len(entries))
	}
}

func TestFollowEndsAtUntil(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	newWriter(t, cfg)
	_, errc := follow(t, context.Background(), cfg, ReadOptions{Stdout: true, Tail: -1, Until: time.Now().Add(200 * time.Millisecond)}, nil)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after Until")
	}
}

func TestFnErrorStops(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "log")}
	writeN(t, newWriter(t, cfg), 0, 10)
	stop := errors.New("stop")
	n := 0
	err := Read(context.Background(), cfg, all, nil, func(Entry) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("Read returned %v after %d entries", err, n)
	}
}

// lineReader returns one line per Read, so Copy writes one entry per line.
type lineReader struct{ *bufio.Reader }

func (r lineReader) Read(p []byte) (int, error) {
	line, err := r.ReadSlice('\n')
	return copy(p, line), err
}

func copyWithin(t *testing.T, w *Writer, r io.Reader) {
	t.Helper()
	copied := make(chan error)
	go func() { copied <- w.Copy("stdout", r) }()
	select {
	case err := <-copied:
		if err != nil {
			t.Errorf("Copy: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Copy blocked")
	}
}

func TestDiskFull(t *testing.T) {
	t.Run("dev-full", func(t *testing.T) {
		w := newWriter(t, Config{Path: "/dev/full"})
		copyWithin(t, w, strings.NewReader(strings.Join(seq(0, 100), "")))
		if w.Dropped() != 100 {
			t.Errorf("dropped %d, want 100", w.Dropped())
		}
		if err := w.Write("stdout", []byte("x\n"), t0); err == nil {
			t.Error("Write to a full disk succeeded")
		}
	})

	t.Run("tmpfs", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("mount tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		filler := filepath.Join(dir, "filler")
		os.WriteFile(filler, make([]byte, 16<<10), 0o600)
		cfg := Config{Path: filepath.Join(dir, "log")}
		w := newWriter(t, cfg)
		const n = 5000 // about 300 KB of entries
		copyWithin(t, w, lineReader{bufio.NewReader(strings.NewReader(strings.Join(seq(0, n), "")))})
		got := lines(readAll(t, cfg, all))
		if w.Dropped() == 0 || len(got)+int(w.Dropped()) != n {
			t.Fatalf("%d entries written, %d dropped, of %d", len(got), w.Dropped(), n)
		}
		equal(t, "written", got, seq(0, len(got)))

		// With room again, writing goes on, whole.
		os.Remove(filler)
		writeN(t, w, n, n+1)
		got = lines(readAll(t, cfg, all))
		equal(t, "after freeing space", got[len(got)-1:], seq(n, n+1))
	})
}
