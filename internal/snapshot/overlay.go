// Package snapshot keeps unpacked image layers as overlayfs lower
// directories, one per layer, keyed by the layer's chain ID so images that
// share a base share its directories. A snapshot appears under its final
// name only once fully unpacked.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Overlay stores snapshots under root/<chain id hex>/diff.
type Overlay struct {
	root string
}

// NewOverlay opens the snapshot directory, removing unpacks that a crash
// interrupted.
func NewOverlay(root string) (*Overlay, error) {
	o := &Overlay{root: root}
	if err := os.RemoveAll(o.tmpDir()); err != nil {
		return nil, fmt.Errorf("clear interrupted unpacks: %w", err)
	}
	if err := os.MkdirAll(o.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot root: %w", err)
	}
	return o, nil
}

func (o *Overlay) tmpDir() string { return filepath.Join(o.root, "tmp") }

func (o *Overlay) dir(chainID digest.Digest) string {
	return filepath.Join(o.root, chainID.Encoded())
}

// DiffPath is the layer's directory, an overlay lowerdir.
func (o *Overlay) DiffPath(chainID digest.Digest) string {
	return filepath.Join(o.dir(chainID), "diff")
}

// Has reports whether the snapshot exists.
func (o *Overlay) Has(chainID digest.Digest) bool {
	if chainID.Validate() != nil {
		return false
	}
	_, err := os.Stat(o.DiffPath(chainID))
	return err == nil
}

// Create unpacks a snapshot with fill, which writes the layer into the
// directory it is given; on success the snapshot becomes visible at once
// and as a whole.
func (o *Overlay) Create(ctx context.Context, chainID digest.Digest, fill func(ctx context.Context, dir string) error) error {
	if err := chainID.Validate(); err != nil {
		return err
	}
	if o.Has(chainID) {
		return nil
	}
	tmp, err := os.MkdirTemp(o.tmpDir(), chainID.Encoded()[:12]+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return err
	}
	if err := fill(ctx, diff); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.dir(chainID)); err != nil {
		if o.Has(chainID) {
			return nil // unpacked concurrently by another pull
		}
		return fmt.Errorf("commit snapshot %s: %w", chainID, err)
	}
	return nil
}

// Remove deletes a snapshot; a missing one is not an error.
func (o *Overlay) Remove(chainID digest.Digest) error {
	if err := chainID.Validate(); err != nil {
		return err
	}
	// Rename first so a crash never leaves a half-deleted snapshot under
	// its real name.
	tmp, err := os.MkdirTemp(o.tmpDir(), "rm-")
	if err != nil {
		return err
	}
	gone := filepath.Join(tmp, "x")
	if err := os.Rename(o.dir(chainID), gone); err != nil {
		os.Remove(tmp)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(tmp)
}

// Walk calls fn with each snapshot's chain ID.
func (o *Overlay) Walk(fn func(digest.Digest) error) error {
	entries, err := os.ReadDir(o.root)
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

// Mount mounts the layers (lowers, top layer first) at target with upper
// and work as the writable layer. Without upper the mount is read-only.
func (o *Overlay) Mount(target string, lowers []digest.Digest, upper, work string) error {
	if len(lowers) == 0 && upper == "" {
		return errors.New("overlay mount needs at least one layer")
	}
	dirs := make([]string, len(lowers))
	for i, l := range lowers {
		if !o.Has(l) {
			return fmt.Errorf("layer %s is not unpacked", l)
		}
		dirs[i] = o.DiffPath(l)
	}
	if len(dirs) == 0 {
		// An image without layers (FROM scratch): an empty lower.
		empty := filepath.Join(o.root, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		dirs = []string{empty}
	}
	opts := "lowerdir=" + strings.Join(dirs, ":")
	flags := uintptr(0)
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	} else if len(dirs) == 1 {
		// overlay needs two lowers without an upper; bind the only one.
		return unix.Mount(dirs[0], target, "", unix.MS_BIND|unix.MS_RDONLY, "")
	} else {
		flags |= unix.MS_RDONLY
	}
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay mount options for %d layers exceed a page", len(lowers))
	}
	if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}
