// Package compression opens the compressed streams clients send where
// dockerd takes them (docker load, import, PUT /containers/{id}/archive,
// layers): gzip, bzip2, xz and zstd, told apart by their magic bytes, and
// anything else as it is.
package compression

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Algorithm names a compression a stream was detected to have.
type Algorithm string

const (
	None  Algorithm = ""
	Gzip  Algorithm = "gzip"
	Bzip2 Algorithm = "bzip2"
	Xz    Algorithm = "xz"
	Zstd  Algorithm = "zstd"
)

var magics = []struct {
	alg   Algorithm
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Bzip2, []byte{'B', 'Z', 'h'}},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// Detect names the compression of a stream from its first bytes.
func Detect(head []byte) Algorithm {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.alg
		}
	}
	return None
}

// Decompress returns the uncompressed content of r, whichever of the
// supported compressions it has; an uncompressed stream is returned as
// it is. Closing the result releases the decompressor, not r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 16 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch Detect(head) {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), nil
	case Xz:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(xr), nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}
