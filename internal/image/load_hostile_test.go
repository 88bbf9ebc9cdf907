package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fuzz seeds that are real archives load: docker save's layout and an
// OCI layout.
func TestLoadDockerSaveAndOCILayout(t *testing.T) {
	fx := newLoadFixture(t)
	img := smallImage(t)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"docker save", dockerSaveTar(t, img, "docker.io/library/small:latest"), "Loaded image: small:latest"},
		{"oci layout", ociLayoutTar(t, img, "docker.io/library/small:oci"), "Loaded image: small:oci"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fx.svc.Load(context.Background(), bytes.NewReader(tc.data))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !slices.Contains(got, tc.want) {
				t.Fatalf("Load = %q, want %q", got, tc.want)
			}
			fx.checkNoHostContent(t)
		})
	}
}

// An archive's members are read from the archive only: a config, layer,
// manifest or blob that is a symlink (or a hard link, or a ../ name) to a
// host file must fail the load, and the host file's content must end up
// neither in an image nor anywhere in the data root. The host file here is
// a valid image config whose one layer is the archive's, so following the
// link would load it.
func TestLoadSymlinkedConfigStaysInArchive(t *testing.T) {
	probe := newLoadFixture(t)
	emptyLayer := make([]byte, 1024) // an empty tar: the canary's one diff ID
	archives := func(fx *loadFixture) map[string][]byte {
		// The archive's own config differs from the canary, so finding
		// the canary's bytes anywhere means the host file was read.
		own := bytes.Replace(fx.canary, []byte("host-file"), []byte("in-archive"), 1)
		return hostileArchives(t, filepath.Join(fx.host, "canary.json"), own, emptyLayer)
	}
	names := slices.Sorted(maps.Keys(archives(probe)))
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			fx := newLoadFixture(t)
			data := archives(fx)[name]
			loaded, err := fx.svc.Load(context.Background(), bytes.NewReader(data))
			if err == nil && strings.Contains(name, "layer") {
				t.Fatalf("Load = %q, nil; want an error", loaded)
			}
			if err == nil && len(loaded) > 0 && !strings.Contains(name, "dotdot") {
				t.Errorf("Load = %q, nil; want an error: the archive's member points outside it", loaded)
			}
			fx.checkNoHostContent(t)
			// Nor may the host file be kept as a blob.
			filepath.WalkDir(fx.root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); bytes.Equal(b, fx.canary) {
						t.Errorf("the host file's content was copied into the data root at %s", p)
					}
				}
				return nil
			})
		})
	}
}

// A layer whose snapshot already exists is not unpacked again, but its
// blob must still be the layer the config names: found by FuzzLoad, an
// archive with a known image's config and a layer that was a symlink to
// /etc/passwd loaded, with /etc/passwd recorded as the image's layer blob
// (so docker save would hand it out).
func TestLoadLayerBlobCheckedWhenSnapshotExists(t *testing.T) {
	fx := newLoadFixture(t)
	img := smallImage(t)
	if _, err := fx.svc.Load(context.Background(), bytes.NewReader(dockerSaveTar(t, img, "docker.io/library/small:latest"))); err != nil {
		t.Fatal(err)
	}
	layerTar, _ := rawLayer(t, img)
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Repeat([]byte("not the layer\n"), 100)
	for name, data := range map[string][]byte{
		"symlink to a host file": hostileArchives(t, "/etc/passwd", rawCfg, layerTar)["docker layer symlink"],
		"other bytes": buildTar(t,
			tarEntry{Name: "manifest.json", Body: manifestJSON(t, "config.json", "layer.tar")},
			tarEntry{Name: "config.json", Body: rawCfg}, tarEntry{Name: "layer.tar", Body: bad}),
	} {
		t.Run(name, func(t *testing.T) {
			loaded, err := fx.svc.Load(context.Background(), bytes.NewReader(data))
			if err == nil {
				t.Fatalf("Load = %q, nil; want an error: the layer is not the config's", loaded)
			}
			fx.checkNoHostContent(t)
		})
	}
}

// Found by FuzzLoad: an archive whose manifest.json (or index.json, or a
// config) is a FIFO made Load block for ever in open(2), holding the image
// GC lock (so no image could be deleted or pruned) and its scratch
// directory. Members Load reads must be regular files of the archive.
func TestLoadFIFOMemberDoesNotHang(t *testing.T) {
	for _, member := range []string{"manifest.json", "index.json"} {
		t.Run(member, func(t *testing.T) {
			fx := newLoadFixture(t)
			data := buildTar(t, tarEntry{Name: member, Type: tar.TypeFifo})
			done := make(chan error, 1)
			go func() {
				_, err := fx.svc.Load(context.Background(), bytes.NewReader(data))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Load of an archive whose manifest is a FIFO succeeded")
				}
			case <-time.After(10 * time.Second):
				// Unblock the stuck open so the goroutine and its
				// directory go away, then fail.
				fifos, _ := filepath.Glob(filepath.Join(fx.svc.tmpDir(), "load-*", member))
				for _, p := range fifos {
					if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
						f.Close()
					}
				}
				<-done
				t.Fatalf("Load blocked for 10s on an archive whose %s is a FIFO", member)
			}
			fx.checkNoHostContent(t)
		})
	}
}

func TestValidRegistryHost(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1:5000": true, "registry.example.com": true, "localhost": true, "[::1]:5000": true, "my-host:443": true,
		"": false, "a..b": false, "-a.b": false, "host:0": false, "host:99999": false, "host:x": false, "ünï": false,
		strings.Repeat("a", 64) + ".com": false, strings.Repeat("a.", 130) + "com": false, "../../etc": false,
	} {
		if got := validRegistryHost(h); got != want {
			t.Errorf("validRegistryHost(%q) = %v, want %v", h, got, want)
		}
	}
}
