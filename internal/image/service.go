// Package image is the image store: pull and push through registries
// (go-containerregistry), blobs in the content store, layers unpacked once
// into overlay snapshots keyed by chain ID, metadata in bbolt. It also
// serves the Engine service's image methods.
package image

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/content"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/events"
	"github.com/engined/engined/internal/snapshot"
	"github.com/engined/engined/internal/store"
)

// Config sets up the image service.
type Config struct {
	// Root holds the content store and snapshots (data-root/image).
	Root  string
	Store *store.Store
	// Mirrors are tried, in order, before docker.io for docker.io images.
	Mirrors []string
	// Insecure lists registries (host[:port] or CIDR) reached over plain
	// HTTP or with unverified TLS; loopback always is.
	Insecure []string
	// InUse reports a container that uses the image, if any; the
	// containers work plugs in here.
	InUse  func(ctx context.Context, id digest.Digest) (container string, ok bool)
	Logger *slog.Logger
	// Events, if set, receives image events.
	Events *events.Bus
}

// Service manages images.
type Service struct {
	cfg     Config
	content *content.Store
	snaps   *snapshot.Overlay
	// gc is held shared by pulls, loads and imports while they create blobs
	// and snapshots that no record references yet, and exclusively by
	// deletes, which remove what no record references.
	gc       sync.RWMutex
	insecure []netip.Prefix
	hosts    map[string]bool
	now      func() time.Time
	configs  sync.Map // digest.Digest → *parsedConfig
}

// New opens the image store and removes blobs and snapshots that no image
// references (left by a pull that was killed).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cs, err := content.New(filepath.Join(cfg.Root, "content"))
	if err != nil {
		return nil, err
	}
	snaps, err := snapshot.NewOverlay(filepath.Join(cfg.Root, "overlay"))
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, content: cs, snaps: snaps, hosts: map[string]bool{}, now: time.Now}
	for _, r := range cfg.Insecure {
		if p, err := netip.ParsePrefix(r); err == nil {
			s.insecure = append(s.insecure, p)
			continue
		}
		s.hosts[strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(r, "http://"), "https://"), "/")] = true
	}
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("clear interrupted uploads: %w", err)
	}
	if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
		return nil, err
	}
	s.cleanRWLayers()
	if _, err := s.collectGarbage(ctx); err != nil {
		return nil, fmt.Errorf("clean unreferenced image data: %w", err)
	}
	return s, nil
}

// Snapshots gives the containers work the overlay store to mount from.
func (s *Service) Snapshots() *snapshot.Overlay { return s.snaps }

// Count is the number of images, for /info.
func (s *Service) Count(ctx context.Context) (int, error) {
	var n int
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		n = len(recs)
		return err
	})
	return n, err
}

// Resolve finds an image by ID, short ID, name[:tag] or name@digest.
func (s *Service) Resolve(ctx context.Context, name string) (*Record, error) {
	var rec *Record
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = resolve(tx, name)
		return err
	})
	return rec, err
}

func resolve(tx *bolt.Tx, name string) (*Record, error) {
	if name == "" {
		return nil, errdefs.InvalidArgument(errors.New("image name must not be empty"))
	}
	if d, err := digest.Parse(name); err == nil {
		if r, err := getRecord(tx, d); r != nil || err != nil {
			return r, err
		}
		return nil, noSuchImage(name)
	}
	if isHex(name) && len(name) == 64 {
		if r, err := getRecord(tx, digest.NewDigestFromEncoded(digest.SHA256, name)); r != nil || err != nil {
			return r, err
		}
	}
	if named, err := reference.ParseNormalizedNamed(name); err == nil {
		if canonical, ok := named.(reference.Canonical); ok {
			recs, err := allRecords(tx)
			if err != nil {
				return nil, err
			}
			want := reference.TrimNamed(canonical).String() + "@" + canonical.Digest().String()
			for _, r := range recs {
				if contains(r.RepoDigests, want) {
					return r, nil
				}
			}
		} else {
			id, err := getRef(tx, reference.TagNameOnly(named).String())
			if err != nil {
				return nil, err
			}
			if id != "" {
				return getRecord(tx, id)
			}
		}
	}
	prefix := strings.TrimPrefix(name, "sha256:")
	if isHex(prefix) && len(prefix) < 64 {
		recs, err := allRecords(tx)
		if err != nil {
			return nil, err
		}
		var found *Record
		for _, r := range recs {
			if strings.HasPrefix(r.ID.Encoded(), prefix) {
				if found != nil {
					return nil, errdefs.InvalidArgument(fmt.Errorf("image ID prefix %q is ambiguous", name))
				}
				found = r
			}
		}
		if found != nil {
			return found, nil
		}
	}
	// What is neither an ID nor a reference is a bad request, as dockerd
	// answers it (400 "invalid reference format"), not a missing image.
	if _, err := reference.ParseAnyReference(name); err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	return nil, noSuchImage(name)
}

func noSuchImage(name string) error {
	return errdefs.NotFound(fmt.Errorf("No such image: %s", name))
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil && strings.ToLower(s) == s
}

// isInsecure reports whether host (host[:port]) may be used over plain
// HTTP: loopback always, as with dockerd, plus --insecure-registry.
func (s *Service) isInsecure(host string) bool {
	if s.hosts[host] {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	if addr.IsLoopback() {
		return true
	}
	for _, p := range s.insecure {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// defaultPlatform is the engine's own.
func defaultPlatform() string { return "linux/" + runtime.GOARCH }
