package image

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fill gives every slice, map and pointer in v a non-empty value.
func fill(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 4))
		fill(t, v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k)
		fill(t, e)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("x")
	}
}

// shared names the slices, maps and pointers a and b have in common.
func shared(a, b reflect.Value, path string) []string {
	var out []string
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				out = append(out, shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
			}
		}
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if !a.IsNil() && a.UnsafePointer() == b.UnsafePointer() {
			out = append(out, path)
		}
		if a.Kind() == reflect.Pointer && !a.IsNil() {
			out = append(out, shared(a.Elem(), b.Elem(), path)...)
		}
	}
	return out
}

// RunConfig's callers change what they get (a container's env is the
// image's plus its own); the parsed config is shared by every create
// from the image, so the copy must share nothing, including fields that
// go-containerregistry adds later.
func TestCloneConfigSharesNothing(t *testing.T) {
	var c v1.Config
	fill(t, reflect.ValueOf(&c).Elem())
	cp := cloneConfig(c)
	if s := shared(reflect.ValueOf(c), reflect.ValueOf(cp), "Config"); len(s) > 0 {
		t.Errorf("shared with the cached config: %v", s)
	}
	if !reflect.DeepEqual(c, cp) {
		t.Errorf("copy differs:\n%+v\n%+v", c, cp)
	}
}
