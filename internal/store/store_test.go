package store

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesBucketsAndID(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range allBuckets {
		if n, err := s.Count(b); err != nil || n != 0 && string(b) != "meta" {
			t.Errorf("bucket %s: %d %v", b, n, err)
		}
	}
	n := 0
	newID := func() string { n++; return "id-1" }
	id1, _ := s.EngineID(newID)
	id2, _ := s.EngineID(newID)
	if id1 != "id-1" || id2 != "id-1" || n != 1 {
		t.Errorf("EngineID not stable: %q %q (%d calls)", id1, id2, n)
	}
	s.Close()
	s, err = Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := s.EngineID(newID); id != "id-1" {
		t.Errorf("EngineID lost on reopen: %q", id)
	}
	s.Close()
}

// bbolt's lock is per open file description (flock), so another process
// is needed to hold it: this test re-runs itself as the holder.
func TestLockedStore(t *testing.T) {
	if dir := os.Getenv("STORE_TEST_HOLD"); dir != "" {
		s, err := Open(dir, time.Second)
		if err != nil {
			os.Exit(3)
		}
		defer s.Close()
		os.WriteFile(filepath.Join(dir, "held"), nil, 0o644)
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^TestLockedStore$")
	holder.Env = append(os.Environ(), "STORE_TEST_HOLD="+dir)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, "held")); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("holder never opened the store")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	_, err := Open(dir, 200*time.Millisecond)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open on a held store: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("Open on a held store hung")
	}
}

func TestCorruptAndNewerStore(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte(strings.Repeat("garbage!", 1024)), 0o600)
	if _, err := Open(dir, time.Second); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("corrupt store: %v", err)
	}

	dir = t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(func(tx *bolt.Tx) error {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], SchemaVersion+1)
		return tx.Bucket(BucketMeta).Put(keySchema, v[:])
	})
	s.Close()
	if _, err := Open(dir, time.Second); err == nil || !strings.Contains(err.Error(), "newer than this engined") {
		t.Errorf("newer schema: %v", err)
	}
}

// Opening a current store and reading its ID write nothing: a bbolt
// write transaction syncs even when it changes nothing, and that is not
// to be paid at every engined start.
func TestReopenWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.EngineID(func() string { return "first" })
	if err != nil || id != "first" {
		t.Fatalf("id %q, %v", id, err)
	}
	s.Close()
	before, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.EngineID(func() string { return "second" }); err != nil || id != "first" {
		t.Fatalf("id after reopen %q, %v", id, err)
	}
	s.Close()
	after, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("reopening the store rewrote it")
	}
}

// UpdateIfChanged commits what fn changed and leaves the file as it was
// when fn changed nothing (even if it wrote).
func TestUpdateIfChanged(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	read := func() string {
		b, err := os.ReadFile(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := read()
	if err := s.UpdateIfChanged(func(tx *bolt.Tx) (bool, error) {
		return false, tx.Bucket(BucketMeta).Put([]byte("k"), []byte("dropped"))
	}); err != nil {
		t.Fatal(err)
	}
	if read() != before {
		t.Error("an unchanged update rewrote the store")
	}
	if err := s.UpdateIfChanged(func(tx *bolt.Tx) (bool, error) {
		return true, tx.Bucket(BucketMeta).Put([]byte("k"), []byte("kept"))
	}); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(BucketMeta).Get([]byte("k"))); v != "kept" {
			t.Errorf("k = %q after a changed update", v)
		}
		return nil
	})
	wantErr := errors.New("boom")
	if err := s.UpdateIfChanged(func(*bolt.Tx) (bool, error) { return true, wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("fn's error: got %v", err)
	}
}
