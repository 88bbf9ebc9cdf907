package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

// failingAtEnd is a reader that, like go-containerregistry's verifying
// blob reader, finds out only at its end that the content is wrong.
type failingAtEnd struct{ r io.Reader }

func (f failingAtEnd) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("error verifying sha256 checksum")
	}
	return n, err
}

func TestWriteVerifiedCommitsOnlyWhatItsReaderAccepts(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("layer"), 100000)
	d := digest.FromBytes(data)
	if err := s.WriteVerified(ctx, d, int64(len(data)), failingAtEnd{bytes.NewReader(data)}, nil); err == nil {
		t.Fatal("a reader's error at its end did not fail the write")
	}
	if s.Has(d) {
		t.Fatal("blob committed although its reader failed")
	}
	if err := s.WriteVerified(ctx, d, int64(len(data))+1, bytes.NewReader(data), nil); err == nil || s.Has(d) {
		t.Fatalf("a short blob was committed (err %v)", err)
	}
	if err := s.WriteVerified(ctx, d, int64(len(data)), bytes.NewReader(data), nil); err != nil || !s.Has(d) {
		t.Fatalf("write: %v, stored %v", err, s.Has(d))
	}
	// Write itself still hashes what it is given.
	other := digest.FromString("something else")
	if err := s.Write(ctx, other, int64(len(data)), bytes.NewReader(data), nil); err == nil || s.Has(other) {
		t.Fatalf("Write stored content under a digest it does not have (err %v)", err)
	}
}
