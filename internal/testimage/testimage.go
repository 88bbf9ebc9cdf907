// Package testimage builds the images engined's tests and benchmarks use
// and serves them from the real distribution registry (Debian's
// docker-registry) on loopback. There is no Docker Hub here: every image is
// made from Debian's static busybox.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// Applets get a symlink in /bin of the busybox image.
var Applets = []string{"sh", "echo", "cat", "ls", "true", "false", "sleep", "env", "id", "hostname", "ps", "top", "yes", "head", "tail", "wc", "mkdir", "rm", "touch", "date", "seq", "printf", "test", "uname", "mount", "kill", "grep", "dd", "stat", "stty", "usleep", "cut", "sort"}

// File is one entry of a layer built by Layer.
type File struct {
	Name     string
	Body     []byte
	Mode     int64
	Typeflag byte
	Linkname string
	Uid, Gid int
}

// Layer builds a gzip layer from files.
func Layer(files ...File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.Name, Mode: f.Mode, Typeflag: f.Typeflag, Linkname: f.Linkname, ModTime: time.Unix(1700000000, 0),
			Uid: f.Uid, Gid: f.Gid}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// BusyboxLayer is a root filesystem with busybox and its applets.
func BusyboxLayer() (v1.Layer, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read %s (apt-get install busybox-static): %w", BusyboxPath, err)
	}
	files := []File{{Name: "bin/", Typeflag: tar.TypeDir}, {Name: "bin/busybox", Body: bin, Mode: 0o755},
		{Name: "etc/", Typeflag: tar.TypeDir}, {Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Name: "etc/group", Body: []byte("root:x:0:\nnogroup:x:65534:\n")}}
	for _, a := range Applets {
		files = append(files, File{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	}
	return Layer(files...)
}

// Image stacks layers on a config that runs cmd.
func Image(cmd []string, labels map[string]string, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	cfg.Config.Cmd = cmd
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Labels = labels
	cfg.History = nil
	for range layers {
		cfg.History = append(cfg.History, v1.History{Created: cfg.Created, CreatedBy: "testimage layer"})
	}
	return mutate.ConfigFile(img, cfg)
}

// Busybox is the one-layer busybox image, running sh.
func Busybox() (v1.Image, error) {
	l, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	return Image([]string{"sh"}, nil, l)
}

// MultiLayer is busybox plus a layer that adds files and one that deletes
// one (a whiteout) and empties a directory (an opaque whiteout).
func MultiLayer() (v1.Image, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	add, err := Layer(File{Name: "data/", Typeflag: tar.TypeDir}, File{Name: "data/keep", Body: []byte("keep\n")},
		File{Name: "data/gone", Body: []byte("gone\n")}, File{Name: "opq/", Typeflag: tar.TypeDir}, File{Name: "opq/old", Body: []byte("old\n")})
	if err != nil {
		return nil, err
	}
	del, err := Layer(File{Name: "data/.wh.gone"}, File{Name: "opq/", Typeflag: tar.TypeDir}, File{Name: "opq/.wh..wh..opq"},
		File{Name: "opq/new", Body: []byte("new\n")})
	if err != nil {
		return nil, err
	}
	return Image([]string{"sh"}, map[string]string{"org.example.test": "multi"}, base, add, del)
}

// RandomLayer is a layer of n bytes of random data in one file (it does
// not compress, so the blob is about n bytes).
func RandomLayer(n int, name string) (v1.Layer, error) {
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		return nil, err
	}
	return Layer(File{Name: name, Body: data})
}

// Push writes img to ref (a loopback registry reference).
func Push(ctx context.Context, img v1.Image, ref string, auth ...authn.Authenticator) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if len(auth) > 0 {
		opts = append(opts, remote.WithAuth(auth[0]))
	}
	return remote.Write(r, img, opts...)
}

// Htpasswd writes a registry password file with one bcrypt user.
func Htpasswd(path, user, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o644)
}

// PushIndex writes a manifest list holding img for linux/amd64 and a decoy
// for linux/arm64 to ref.
func PushIndex(ctx context.Context, img v1.Image, ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	decoyLayer := static.NewLayer([]byte("not amd64"), types.DockerLayer)
	decoy, err := mutate.AppendLayers(empty.Image, decoyLayer)
	if err != nil {
		return err
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList),
		mutate.IndexAddendum{Add: decoy, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	return remote.WriteIndex(r, idx, remote.WithContext(ctx))
}

// Registry is a running docker-registry.
type Registry struct {
	Addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	done chan struct{}
	Log  *bytes.Buffer
}

// StartRegistry runs Debian's docker-registry on a free loopback port with
// its storage in dir. htpasswd, if set, turns on basic auth with that file.
func StartRegistry(ctx context.Context, dir, htpasswd string) (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not installed (apt-get install docker-registry): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") +
		"\n  delete:\n    enabled: true\nhttp:\n  addr: " + addr + "\n"
	if htpasswd != "" {
		cfg += "auth:\n  htpasswd:\n    realm: test\n    path: " + htpasswd + "\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	r := &Registry{Addr: addr, Log: &bytes.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = r.Log, r.Log
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return nil, fmt.Errorf("docker-registry exited: %s", r.Log.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return r, nil
		}
		select {
		case <-ctx.Done():
			r.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.Stop()
	return nil, fmt.Errorf("docker-registry did not start on %s: %s", addr, r.Log.String())
}

// Stop ends the registry.
func (r *Registry) Stop() {
	r.cmd.Process.Kill()
	<-r.done
}

// Ref is a reference to repo:tag in this registry.
func (r *Registry) Ref(repoTag string) string { return r.Addr + "/" + repoTag }

// Port is the registry's port.
func (r *Registry) Port() int {
	_, p, _ := net.SplitHostPort(r.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
