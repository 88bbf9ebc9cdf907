package volume

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/store"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func newService(t *testing.T) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{Root: filepath.Join(dir, "volumes"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"ab", "a.b", "a_b-c", "0x", "proj_data"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "..", "../x", "a/b", "/abs", ".x", "-x", "_x", "a b", "a\x00b", "é1"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, ok := range []map[string]string{nil, {"type": "tmpfs"}, {"type": "tmpfs", "o": "size=1m"}, {"type": "none", "o": "bind", "device": "/x"},
		{"type": "nfs", "o": "addr=1.2.3.4,rw", "device": ":/export"}} {
		if err := validateOpts(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []map[string]string{{"bogus": "1"}, {"size": "1g"}, {"o": "bind"}, {"device": "/x"}, {"type": "ext4"}} {
		if err := validateOpts(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	flags, data, _ := mountFlags("ro,nosuid,size=1m,mode=700")
	if data != "size=1m,mode=700" || flags == 0 {
		t.Errorf("mountFlags: %x %q", flags, data)
	}
}

// A volume in use is neither removed nor pruned, whoever asks; users
// restored after a start count as users.
func TestInUse(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	r, created, err := s.Acquire(CreateOptions{Name: "data"}, "c1")
	if err != nil || !created || r.Name != "data" {
		t.Fatalf("Acquire: %v %v %v", r, created, err)
	}
	if _, err := s.VolumeRemove(ctx, &enginev1.VolumeRemoveRequest{Name: "data", Force: true}); errdefs.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "volume is in use - [c1]") {
		t.Errorf("remove in use: %v", err)
	}
	resp, err := s.VolumePrune(ctx, &enginev1.VolumePruneRequest{Filters: `{"all":["true"]}`})
	if err != nil || len(resp.GetVolumesDeleted()) != 0 {
		t.Errorf("prune in use: %v %v", resp, err)
	}
	s.Release("data", "c1")
	s.Restore(map[string][]string{"data": {"c2"}}, nil)
	if _, err := s.VolumeRemove(ctx, &enginev1.VolumeRemoveRequest{Name: "data"}); err == nil {
		t.Errorf("remove of a volume a restored user has")
	}
	s.Release("data", "c2")
	if _, err := s.VolumeRemove(ctx, &enginev1.VolumeRemoveRequest{Name: "data"}); err != nil {
		t.Errorf("remove: %v", err)
	}
	if _, err := os.Stat(s.dir("data")); !os.IsNotExist(err) {
		t.Errorf("directory left: %v", err)
	}
}

// Anonymous volumes are pruned by default, named ones with all; a
// directory without a record (an engined killed before it stored one)
// is adopted at start.
func TestPruneAndAdopt(t *testing.T) {
	s, dir := newService(t)
	ctx := context.Background()
	anon, _, err := s.Acquire(CreateOptions{}, "c1")
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous() {
		t.Fatalf("anonymous: %v %v", anon, err)
	}
	s.Release(anon.Name, "c1")
	if _, err := s.VolumeCreate(ctx, &enginev1.VolumeCreateRequest{Name: "named"}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Mountpoint(anon.Name), "f"), []byte("12345"), 0o644)
	resp, err := s.VolumePrune(ctx, &enginev1.VolumePruneRequest{})
	if err != nil || len(resp.GetVolumesDeleted()) != 1 || resp.GetVolumesDeleted()[0] != anon.Name || resp.GetSpaceReclaimed() != 5 {
		t.Errorf("prune: %v %v", resp, err)
	}
	os.MkdirAll(filepath.Join(s.cfg.Root, "orphan", "_data"), 0o755)
	s2, err := New(Config{Root: filepath.Join(dir, "volumes"), Store: s.cfg.Store})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s2.VolumeList(ctx, &enginev1.VolumeListRequest{})
	var names []string
	for _, v := range list.GetVolumes() {
		names = append(names, v.GetName())
	}
	if strings.Join(names, ",") != "named,orphan" {
		t.Errorf("volumes after a restart: %v", names)
	}
}

// A directory an engined was killed while making or removing (no
// _data yet, or no more) and without a record is adopted at start, so
// that list shows it and prune removes it, not left unseen for ever.
func TestHalfMadeDirectoryAdopted(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "volumes")
	for _, d := range []string{"halfmade", "whole/_data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Not a volume: a _data that is not a directory is left alone.
	if err := os.MkdirAll(filepath.Join(root, "odd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "odd", "_data")); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Config{Root: root, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	list, err := s.VolumeList(ctx, &enginev1.VolumeListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list.GetVolumes() {
		names = append(names, v.GetName())
	}
	if strings.Join(names, ",") != "halfmade,whole" {
		t.Fatalf("volumes after start: %v", names)
	}
	if _, err := s.VolumePrune(ctx, &enginev1.VolumePruneRequest{Filters: `{"all":["true"]}`}); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(root)
	if len(left) != 1 || left[0].Name() != "odd" {
		t.Errorf("left after prune --all: %v", left)
	}
}
