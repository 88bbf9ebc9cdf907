// Package chunkio writes a byte stream as the messages of a gRPC stream:
// tar archives (image save, container archive and export) go out in
// chunks of up to 1 MiB, small writes batched together.
package chunkio

// MaxChunk is the largest chunk sent.
const MaxChunk = 1 << 20

// Writer batches writes and sends them in chunks; Flush sends the rest.
type Writer struct {
	send func([]byte) error
	buf  []byte
}

// NewWriter sends through send, which may keep the slice it is given.
func NewWriter(send func([]byte) error) *Writer { return &Writer{send: send} }

func (w *Writer) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if len(w.buf) >= MaxChunk {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends what is buffered.
func (w *Writer) Flush() error {
	for off := 0; off < len(w.buf); off += MaxChunk {
		end := min(off+MaxChunk, len(w.buf))
		if err := w.send(append([]byte(nil), w.buf[off:end]...)); err != nil {
			return err
		}
	}
	w.buf = w.buf[:0]
	return nil
}

// Reader reads the data of a stream of chunk messages.
type Reader struct {
	recv func() ([]byte, error)
	buf  []byte
	err  error
}

// NewReader reads first, then what recv returns until it fails (io.EOF
// at the stream's end).
func NewReader(first []byte, recv func() ([]byte, error)) *Reader {
	return &Reader{recv: recv, buf: first}
}

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.buf, r.err = r.recv()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
