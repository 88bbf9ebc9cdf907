package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/store"
)

// loadFixture is an image service on a temporary data root, next to a
// directory outside it ("host") that holds files a hostile archive might
// try to reach.
type loadFixture struct {
	svc     *Service
	root    string // data root
	host    string // outside the data root
	canary  []byte // content of host/canary.json, a valid image config
	hostSum map[digest.Digest]string
}

// newLoadFixture builds the service as the daemon does: a store under the
// data root and the image root beside it.
func newLoadFixture(tb testing.TB) *loadFixture {
	tb.Helper()
	base := tb.TempDir()
	fx := &loadFixture{root: filepath.Join(base, "data"), host: filepath.Join(base, "host"), hostSum: map[digest.Digest]string{}}
	st, err := store.Open(fx.root, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	fx.svc, err = New(context.Background(), Config{Root: filepath.Join(fx.root, "image"), Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(fx.host, 0o755); err != nil {
		tb.Fatal(err)
	}
	// A config whose only layer is empty, so loading it would succeed.
	fx.canary = []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"canary":"host-file"}},` +
		`"rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}`)
	if err := os.WriteFile(filepath.Join(fx.host, "canary.json"), fx.canary, 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, p := range []string{"/etc/passwd", "/etc/group", "/etc/hostname", filepath.Join(fx.host, "canary.json")} {
		if b, err := os.ReadFile(p); err == nil {
			fx.hostSum[digest.FromBytes(b)] = p
		}
	}
	return fx
}

// checkNoHostContent fails if an image the store knows has a config or a
// layer that is one of the host files, or if anything under host changed.
func (fx *loadFixture) checkNoHostContent(tb testing.TB) {
	tb.Helper()
	err := fx.svc.cfg.Store.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if p, ok := fx.hostSum[r.ID]; ok {
				tb.Fatalf("image %s has %s as its config", r.ID, p)
			}
			for _, l := range r.Layers {
				if p, ok := fx.hostSum[l.Digest]; ok {
					tb.Fatalf("image %s has %s as a layer", r.ID, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	entries, err := os.ReadDir(fx.host)
	if err != nil {
		tb.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "canary.json" {
		tb.Fatalf("something was written outside the data root: %v", entries)
	}
	if b, err := os.ReadFile(filepath.Join(fx.host, "canary.json")); err != nil || !bytes.Equal(b, fx.canary) {
		tb.Fatalf("host/canary.json changed: %q, %v", b, err)
	}
	// Load's scratch directories live under the image root and go away.
	if left, _ := os.ReadDir(fx.svc.tmpDir()); len(left) != 0 {
		tb.Fatalf("Load left %d entries in %s", len(left), fx.svc.tmpDir())
	}
}

// tarEntry is one member of a hand-built archive.
type tarEntry struct {
	Name, Linkname string
	Type           byte
	Body           []byte
}

func buildTar(tb testing.TB, entries ...tarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Linkname: e.Linkname, Typeflag: e.Type, Mode: 0o644, ModTime: time.Unix(1700000000, 0)}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write(e.Body)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// smallImage is a one-layer image with one small file.
func smallImage(tb testing.TB) v1.Image {
	tb.Helper()
	layerTar := buildTar(tb, tarEntry{Name: "etc/", Type: tar.TypeDir}, tarEntry{Name: "etc/hello", Body: []byte("hello\n")})
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		tb.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		tb.Fatal(err)
	}
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	cfg, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// dockerSaveTar is img as `docker save` writes it (manifest.json, a config
// file and one tar per layer).
func dockerSaveTar(tb testing.TB, img v1.Image, tag string) []byte {
	tb.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(ref, img, &buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// ociLayoutTar is img in an OCI image layout, tarred.
func ociLayoutTar(tb testing.TB, img v1.Image, tag string) []byte {
	tb.Helper()
	dir := tb.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": tag})); err != nil {
		tb.Fatal(err)
	}
	return tarDir(tb, dir)
}

func tarDir(tb testing.TB, dir string) []byte {
	tb.Helper()
	var entries []tarEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			entries = append(entries, tarEntry{Name: rel + "/", Type: tar.TypeDir})
			return nil
		}
		b, err := os.ReadFile(p)
		entries = append(entries, tarEntry{Name: rel, Body: b})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return buildTar(tb, entries...)
}

// rawLayer is img's only layer as its tar bytes, with its diff ID.
func rawLayer(tb testing.TB, img v1.Image) ([]byte, v1.Hash) {
	tb.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		tb.Fatal(err, len(ls))
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	diff, _ := ls[0].DiffID()
	return b, diff
}

// hostileArchives are archives that try to make Load read or write host
// files: symlinks and hard links out of the archive, and ../ names. target
// is the host file they point at; rawCfg and layerTar are a config and its
// one uncompressed layer for the parts that are not hostile.
func hostileArchives(tb testing.TB, target string, rawCfg, layerTar []byte) map[string][]byte {
	tb.Helper()
	hostCfg, err := os.ReadFile(target)
	if err != nil {
		tb.Fatal(err)
	}
	rel := "../../../../../../../../../.." + target
	docker := func(config string, members ...tarEntry) []byte {
		return buildTar(tb, append([]tarEntry{{Name: "manifest.json", Body: manifestJSON(tb, config, "layer.tar")}}, members...)...)
	}
	// An OCI layout whose manifest names the host file's digest as its
	// config and the layer as an uncompressed blob.
	cfgDigest, layerD := digest.FromBytes(hostCfg), digest.FromBytes(layerTar)
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(hostCfg)},
		"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerD, "size": len(layerTar)}}})
	manD := digest.FromBytes(manifest)
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manD, "size": len(manifest),
		"annotations": map[string]string{"io.containerd.image.name": "docker.io/library/hostile:oci"}}}})
	oci := func(cfg tarEntry) []byte {
		return buildTar(tb,
			tarEntry{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			tarEntry{Name: "index.json", Body: index},
			tarEntry{Name: "blobs/", Type: tar.TypeDir}, tarEntry{Name: "blobs/sha256/", Type: tar.TypeDir},
			tarEntry{Name: "blobs/sha256/" + manD.Encoded(), Body: manifest},
			tarEntry{Name: "blobs/sha256/" + layerD.Encoded(), Body: layerTar},
			cfg)
	}
	return map[string][]byte{
		"docker config symlink": docker("config.json",
			tarEntry{Name: "config.json", Type: tar.TypeSymlink, Linkname: target}, tarEntry{Name: "layer.tar", Body: layerTar}),
		"docker config relative symlink": docker("config.json",
			tarEntry{Name: "config.json", Type: tar.TypeSymlink, Linkname: rel}, tarEntry{Name: "layer.tar", Body: layerTar}),
		"docker config in symlinked dir": docker("d/"+filepath.Base(target),
			tarEntry{Name: "d", Type: tar.TypeSymlink, Linkname: filepath.Dir(target)}, tarEntry{Name: "layer.tar", Body: layerTar}),
		"docker config hard link out": docker("config.json",
			tarEntry{Name: "config.json", Type: tar.TypeLink, Linkname: rel}, tarEntry{Name: "layer.tar", Body: layerTar}),
		"docker layer symlink": docker("config.json",
			tarEntry{Name: "config.json", Body: rawCfg}, tarEntry{Name: "layer.tar", Type: tar.TypeSymlink, Linkname: target}),
		"docker dotdot names": buildTar(tb,
			tarEntry{Name: "manifest.json", Body: manifestJSON(tb, rel, "../layer.tar")},
			tarEntry{Name: "../config.json", Body: rawCfg},
			tarEntry{Name: "../../layer.tar", Body: layerTar},
			tarEntry{Name: "/abs/escape", Body: []byte("x")}),
		"docker manifest symlink":       buildTar(tb, tarEntry{Name: "manifest.json", Type: tar.TypeSymlink, Linkname: target}),
		"oci config blob symlink":       oci(tarEntry{Name: "blobs/sha256/" + cfgDigest.Encoded(), Type: tar.TypeSymlink, Linkname: target}),
		"oci config blob hard link out": oci(tarEntry{Name: "blobs/sha256/" + cfgDigest.Encoded(), Type: tar.TypeLink, Linkname: rel}),
		"oci index symlink":             buildTar(tb, tarEntry{Name: "index.json", Type: tar.TypeSymlink, Linkname: target}),
		"oci blobs dir symlink": buildTar(tb,
			tarEntry{Name: "index.json", Body: index},
			tarEntry{Name: "blobs", Type: tar.TypeSymlink, Linkname: filepath.Dir(target)}),
	}
}

func manifestJSON(tb testing.TB, config string, layers ...string) []byte {
	tb.Helper()
	b, err := json.Marshal([]saveManifestEntry{{Config: config, RepoTags: []string{"hostile:latest"}, Layers: layers}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzLoad feeds Load arbitrary archives. Whatever it reads, it must not
// panic, must not make an image out of a host file and must not write
// outside its data root.
func FuzzLoad(f *testing.F) {
	img := smallImage(f)
	f.Add(dockerSaveTar(f, img, "docker.io/library/small:latest"))
	f.Add(ociLayoutTar(f, img, "docker.io/library/small:oci"))
	layerTar, _ := rawLayer(f, img)
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		f.Fatal(err)
	}
	hostile := hostileArchives(f, "/etc/passwd", rawCfg, layerTar)
	for _, name := range slices.Sorted(maps.Keys(hostile)) {
		f.Add(hostile[name])
	}
	f.Add([]byte{})
	f.Add(buildTar(f, tarEntry{Name: "manifest.json", Body: []byte(`[{"Config":"","Layers":[""]}]`)}))
	f.Add(buildTar(f, tarEntry{Name: "index.json", Body: []byte(`{"manifests":[{"digest":"sha256:../../../etc/passwd"}]}`)}))

	small := dockerSaveTar(f, img, "docker.io/library/small:latest")
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fresh store for every input, so a failing input fails again
		// on its own; it already holds one image, so an input can also
		// refer to layers the store has.
		if hasSpecialFile(data) {
			// Known bug, pinned by TestLoadFIFOMemberDoesNotHang: Load
			// reads manifest.json, index.json and configs with
			// os.ReadFile, so a FIFO member blocks it for ever (and a
			// device node would be read). Remove this skip when load.go
			// opens only regular files.
			t.Skip("archive has a FIFO or device member")
		}
		fx := newLoadFixture(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := fx.svc.Load(ctx, bytes.NewReader(small)); err != nil {
			t.Fatal(err)
		}
		fx.svc.Load(ctx, bytes.NewReader(data))
		fx.checkNoHostContent(t)
	})
}

// hasSpecialFile reports whether the tar stream (as far as it parses) has
// a FIFO or device node member.
func hasSpecialFile(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return false
		}
		switch hdr.Typeflag {
		case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
			return true
		}
	}
}
