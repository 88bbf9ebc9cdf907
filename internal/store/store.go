// Package store is engined's metadata: one bbolt file under the data root,
// opened by engined alone. Other packages keep their records in the buckets
// named here and write them through short transactions.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout of the buckets this build reads and writes.
// Bump it with a migration when a record's encoding changes.
const SchemaVersion = 1

// FileName is the store's file under the data root.
const FileName = "engined.db"

// Bucket names. Each concern owns its bucket.
var (
	BucketMeta       = []byte("meta")
	BucketContainers = []byte("containers")
	BucketImages     = []byte("images")
	BucketVolumes    = []byte("volumes")
	BucketNetworks   = []byte("networks")

	keySchema  = []byte("schema")
	keyEngine  = []byte("engine-id")
	allBuckets = [][]byte{BucketMeta, BucketContainers, BucketImages, BucketVolumes, BucketNetworks}
)

// ErrLocked means another process holds the store open.
var ErrLocked = errors.New("metadata store is locked by another process")

// Store is the opened metadata file.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (creating if needed) the store under dataRoot. It waits at most
// lockTimeout for bbolt's file lock, so a second engine fails fast instead
// of hanging.
func Open(dataRoot string, lockTimeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(dataRoot, 0o711); err != nil {
		return nil, fmt.Errorf("create data root %s: %w", dataRoot, err)
	}
	path := filepath.Join(dataRoot, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (is another engined using data root %s?)", path, ErrLocked, dataRoot)
	case err != nil:
		return nil, fmt.Errorf("open metadata store %s: %w (the file is damaged or not a bbolt database; move it aside to start with empty metadata)", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// init makes the buckets and records the schema version. A store that
// has both is only read: a bbolt write transaction syncs at its commit
// even when it changed nothing, and that sync is most of the store's
// part of every start.
func (s *Store) init() error {
	current := false
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return nil
			}
		}
		v := tx.Bucket(BucketMeta).Get(keySchema)
		current = len(v) == 8 && binary.BigEndian.Uint64(v) == SchemaVersion
		return nil
	})
	if err != nil || current {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(BucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("metadata store %s: malformed schema version", s.path)
			}
			if got := binary.BigEndian.Uint64(v); got > SchemaVersion {
				return fmt.Errorf("metadata store %s has schema version %d, newer than this engined understands (%d)", s.path, got, SchemaVersion)
			}
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], SchemaVersion)
		if err := meta.Put(keySchema, v[:]); err != nil {
			return fmt.Errorf("write schema version: %w", err)
		}
		return nil
	})
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*bolt.Tx) error) error { return s.db.View(fn) }

// Update runs fn in a read-write transaction.
func (s *Store) Update(fn func(*bolt.Tx) error) error { return s.db.Update(fn) }

// UpdateIfChanged runs fn in a read-write transaction that is committed
// only when fn says it changed something, and rolled back otherwise: a
// bbolt write transaction syncs at its commit even when it wrote nothing.
func (s *Store) UpdateIfChanged(fn func(*bolt.Tx) (changed bool, err error)) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		changed, err := fn(tx)
		if err == nil && !changed {
			return errUnchanged
		}
		return err
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

var errUnchanged = errors.New("unchanged")

// Count returns the number of keys in a bucket.
func (s *Store) Count(bucket []byte) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("no bucket %s", bucket)
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}

// EngineID returns the engine's persistent identity, creating it on first
// use with newID. Docker reports it as the daemon ID in /info.
func (s *Store) EngineID(newID func() string) (string, error) {
	var id string
	s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(BucketMeta).Get(keyEngine))
		return nil
	})
	if id != "" {
		return id, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(BucketMeta)
		if v := meta.Get(keyEngine); v != nil {
			id = string(v)
			return nil
		}
		id = newID()
		return meta.Put(keyEngine, []byte(id))
	})
	return id, err
}

// Close releases the file and its lock.
func (s *Store) Close() error { return s.db.Close() }
