package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/store"
)

func emptyRecords(t *testing.T, st *store.Store) *records {
	t.Helper()
	x, err := loadRecords(st)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// fill sets every field reachable from v to a non-zero value, so a copy
// that shares any memory with it shows when the copy is changed.
func fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(int64(1000+depth), 0).UTC()))
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fill(f, depth+1)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // json.RawMessage
			v.SetBytes([]byte(`{"a":1}`))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32:
		if v.CanInt() {
			v.SetInt(int64(depth + 1))
		} else {
			v.SetUint(uint64(depth + 1))
		}
	}
}

// mutate changes every value reachable from v in place (not by
// replacing the slices, maps and pointers that hold them).
func mutate(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			mutate(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(7, 0)))
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				mutate(f)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			mutate(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			if e.Kind() != reflect.Pointer {
				mutate(e)
				v.SetMapIndex(k, e)
			} else {
				mutate(e)
			}
		}
	case reflect.String:
		v.SetString(v.String() + "!")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Uint8:
		v.SetUint(v.Uint() + 1)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(v.Int() + 100)
	case reflect.Uint16, reflect.Uint32:
		v.SetUint(v.Uint() + 100)
	}
}

// A record's copy shares nothing with the original: the index's
// versions are shared by readers, and a caller changing its copy must
// not change them. Every field counts, those added later too.
func TestRecordCloneSharesNothing(t *testing.T) {
	var r Record
	fill(reflect.ValueOf(&r).Elem(), 0)
	before, _ := json.Marshal(&r)
	c := r.clone()
	if got, _ := json.Marshal(c); string(got) != string(before) {
		t.Fatalf("copy differs:\n%s\n%s", got, before)
	}
	mutate(reflect.ValueOf(c).Elem())
	if after, _ := json.Marshal(&r); string(after) != string(before) {
		t.Fatalf("changing the copy changed the original:\n%s\n%s", after, before)
	}
}

// The index and the store agree: what was written is what a fresh
// engined (a new index over the same file) reads, names stay unique
// under concurrent creates, and lookups resolve as dockerd's do.
func TestRecordsIndex(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	x := emptyRecords(t, st)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Twenty ask for one name, twenty for a generated one.
			name, generated := "/same", i%2 == 0
			if generated {
				name = "/" + generateName(0)
			}
			errs <- x.insert(&Record{ID: fmt.Sprintf("%02x", i) + newID()[2:], Name: name, Created: time.Now()}, generated)
		}()
	}
	wg.Wait()
	close(errs)
	ok, conflicts := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errdefs.Code(err) == codes.AlreadyExists:
			conflicts++
		default:
			t.Fatal(err)
		}
	}
	if ok != 21 || conflicts != 19 {
		t.Fatalf("%d created, %d conflicts; want 21 and 19", ok, conflicts)
	}
	names := map[string]bool{}
	for _, r := range x.all() {
		if names[r.Name] {
			t.Fatalf("name %s twice", r.Name)
		}
		names[r.Name] = true
	}

	id := x.all()[0].ID
	if _, err := x.update(id, func(r *Record) error { r.Status = "running"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := x.update(id, func(r *Record) error { return errors.New("no") }); err == nil {
		t.Fatal("a failed update reported success")
	}
	if r, _ := x.get(id); r.Status != "running" {
		t.Fatalf("status %q after a failed update", r.Status)
	}
	if _, err := x.update(id, func(r *Record) error { r.Name = "/other"; return nil }); err == nil {
		t.Fatal("update changed a name")
	}
	renamed, _, err := x.rename(id[:12], "/renamed")
	if err != nil || renamed != id {
		t.Fatalf("rename by prefix: %s %v", renamed, err)
	}
	if _, _, err := x.rename("renamed", x.all()[1].Name); errdefs.Code(err) != codes.AlreadyExists {
		t.Fatalf("rename to a taken name: %v", err)
	}
	if _, err := x.get("0"); err == nil || errdefs.Code(err) != codes.InvalidArgument {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := x.get("nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown: %v", err)
	}
	if err := x.remove(x.all()[1].ID); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{}
	for _, r := range x.all() {
		want[r.ID] = r.Name + " " + r.Status
	}
	st.Close()
	st, err = store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := map[string]string{}
	for _, r := range emptyRecords(t, st).all() {
		got[r.ID] = r.Name + " " + r.Status
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening:\n%v\nwant\n%v", got, want)
	}
	if got[id] != "/renamed running" {
		t.Fatalf("renamed running container: %q", got[id])
	}
}
