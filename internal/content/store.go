// Package content is the blob store: image manifests, configs and layers
// under the data root, addressed and verified by digest. A blob becomes
// visible only once its bytes match its digest, so a crash mid-write
// leaves nothing but a file in ingest/ that the next start removes.
package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// Store keeps blobs under root/blobs/<alg>/<hex>.
type Store struct {
	root string
}

// ErrNotFound means no blob has the digest.
var ErrNotFound = errors.New("blob not found")

// New opens the store at root, clearing interrupted writes.
func New(root string) (*Store, error) {
	s := &Store{root: root}
	if err := os.RemoveAll(s.ingestDir()); err != nil {
		return nil, fmt.Errorf("clear interrupted blob writes: %w", err)
	}
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), s.ingestDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create content store: %w", err)
		}
	}
	return s, nil
}

func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

// Path is where the blob lives (it may not exist).
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// Has reports whether the blob is stored.
func (s *Store) Has(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	_, err := os.Stat(s.Path(d))
	return err == nil
}

// Size is the stored blob's length.
func (s *Store) Size(d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open reads a blob.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	return f, err
}

// ReadAll reads a small blob (manifest, config) whole.
func (s *Store) ReadAll(d digest.Digest) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Write stores the bytes of r as blob want, verifying the digest (and the
// size when size >= 0). progress, if set, is called with the bytes so far.
func (s *Store) Write(ctx context.Context, want digest.Digest, size int64, r io.Reader, progress func(int64)) error {
	return s.write(ctx, want, size, r, progress, true)
}

// WriteVerified is Write for a reader that itself fails, at the latest
// at its end, on content that is not want of size bytes, as
// go-containerregistry's blob readers do: a pull's bytes are hashed once,
// not twice (hashing was half of engined's CPU in a pull).
func (s *Store) WriteVerified(ctx context.Context, want digest.Digest, size int64, r io.Reader, progress func(int64)) error {
	return s.write(ctx, want, size, r, progress, false)
}

func (s *Store) write(ctx context.Context, want digest.Digest, size int64, r io.Reader, progress func(int64), verify bool) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("blob digest: %w", err)
	}
	if s.Has(want) {
		return nil
	}
	tmp, err := os.CreateTemp(s.ingestDir(), want.Encoded()+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	var w io.Writer = tmp
	verifier := want.Algorithm().Digester()
	if verify {
		w = io.MultiWriter(tmp, verifier.Hash())
	}
	n, err := copyWithProgress(ctx, w, r, progress)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s is truncated or too long: got %d bytes, want %d", want, n, size)
	}
	if got := verifier.Digest(); verify && got != want {
		return fmt.Errorf("blob %s is corrupt: its content has digest %s", want, got)
	}
	return os.Rename(tmp.Name(), s.Path(want))
}

// WriteBytes stores b, which must have digest want.
func (s *Store) WriteBytes(ctx context.Context, want digest.Digest, b []byte) error {
	return s.Write(ctx, want, int64(len(b)), bytes.NewReader(b), nil)
}

// Delete removes a blob; a missing one is not an error.
func (s *Store) Delete(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn for every stored blob.
func (s *Store) Walk(fn func(digest.Digest) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func copyWithProgress(ctx context.Context, w io.Writer, r io.Reader, progress func(int64)) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
			if progress != nil {
				progress(n)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Ingest stores the bytes of r under the digest they turn out to have.
func (s *Store) Ingest(ctx context.Context, r io.Reader) (digest.Digest, int64, error) {
	tmp, err := os.CreateTemp(s.ingestDir(), "ingest-")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	digester := digest.SHA256.Digester()
	n, err := copyWithProgress(ctx, io.MultiWriter(tmp, digester.Hash()), r, nil)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", n, fmt.Errorf("store blob: %w", err)
	}
	d := digester.Digest()
	if s.Has(d) {
		return d, n, nil
	}
	return d, n, os.Rename(tmp.Name(), s.Path(d))
}
