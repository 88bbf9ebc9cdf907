package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

// bigImage pushes busybox plus layers of random data (they do not
// compress), big enough that a pull takes a while even on loopback.
func bigImage(t *testing.T, reg *testimage.Registry, repo string, layers, size int) v1.Image {
	t.Helper()
	base, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	ls := []v1.Layer{base}
	for i := 0; i < layers; i++ {
		l, err := testimage.RandomLayer(size, "data/blob"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := testimage.Image([]string{"sh"}, nil, ls...)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(context.Background(), img, reg.Ref(repo)); err != nil {
		t.Fatal(err)
	}
	return img
}

// SIGKILL engined in the middle of a pull: after a restart no half image
// is visible, nothing unreferenced is left, and the pull succeeds.
func TestPullInterruptedBySIGKILL(t *testing.T) {
	reg := startRegistry(t)
	bigImage(t, reg, "big:latest", 4, 48<<20)
	e := startEngined(t)
	c := mobyClient(t, e.Host)
	ctx := context.Background()

	resp, err := c.ImagePull(ctx, reg.Ref("big:latest"), client.ImagePullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp)
	killed := false
	for sc.Scan() {
		var m struct{ Status string }
		json.Unmarshal(sc.Bytes(), &m)
		if m.Status == "Downloading" || m.Status == "Extracting" {
			e.cmd.Process.Kill()
			<-e.done
			killed = true
			break
		}
	}
	resp.Close()
	if !killed {
		t.Fatal("pull finished before engined could be killed; the test image is too small")
	}

	e2 := startEnginedAt(t, e.DataRoot, e.ExecRoot)
	c2 := mobyClient(t, e2.Host)
	list, err := c2.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("images after the interrupted pull: %+v %v", list.Items, err)
	}
	assertNoImageData(t, e2)
	for _, dir := range []string{"image/content/ingest", "image/overlay/tmp", "image/tmp"} {
		entries, _ := os.ReadDir(filepath.Join(e2.DataRoot, dir))
		if len(entries) != 0 {
			t.Errorf("%s not cleaned: %d entries", dir, len(entries))
		}
	}
	out, err := docker(t, e2.Host, "pull", reg.Ref("big:latest"))
	if err != nil {
		t.Fatalf("pull after restart: %v\n%s", err, out)
	}
	mustContain(t, "pull after restart", out, "Downloaded newer image")
	insp, err := c2.ImageInspect(ctx, reg.Ref("big:latest"))
	if err != nil || len(insp.RootFS.Layers) != 5 || insp.Size < 4*48<<20 {
		t.Errorf("image after restart: %v layers, size %d, %v", len(insp.RootFS.Layers), insp.Size, err)
	}
}

// A registry blob whose bytes do not match its digest fails the pull with
// a clear error and leaves no image behind.
func TestPullCorruptBlob(t *testing.T) {
	dir := t.TempDir()
	reg, err := testimage.StartRegistry(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	img := bigImage(t, reg, "corrupt:latest", 1, 1<<20)
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	blob := filepath.Join(dir, "data", "docker", "registry", "v2", "blobs", "sha256", d.Hex[:2], d.Hex, "data")
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("find the blob in the registry's storage: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e := startEngined(t)
	out, err := docker(t, e.Host, "pull", reg.Ref("corrupt:latest"))
	if err == nil {
		t.Fatalf("pull of a corrupt blob succeeded:\n%s", out)
	}
	if !strings.Contains(out, d.Hex) || !(strings.Contains(out, "checksum") || strings.Contains(out, "corrupt")) {
		t.Errorf("pull error does not name the problem:\n%s", out)
	}
	list, _ := mobyClient(t, e.Host).ImageList(context.Background(), client.ImageListOptions{All: true})
	if len(list.Items) != 0 {
		t.Errorf("image visible after a failed pull: %+v", list.Items)
	}
}

// A pulled layer with "../", absolute and symlink-escaping entries writes
// nothing outside its snapshot.
func TestPullHostileLayer(t *testing.T) {
	reg := startRegistry(t)
	outside := t.TempDir()
	evil, err := testimage.Layer(
		testimage.File{Name: "../../../../../../../../" + outside + "/dotdot", Body: []byte("x")},
		testimage.File{Name: outside + "/absolute", Body: []byte("x")},
		testimage.File{Name: "escape", Typeflag: '2', Linkname: outside},
		testimage.File{Name: "escape/through-symlink", Body: []byte("x")},
		testimage.File{Name: "rel", Typeflag: '2', Linkname: "../../../../../../../../" + outside},
		testimage.File{Name: "rel/through-relative-symlink", Body: []byte("x")},
		testimage.File{Name: "hard", Typeflag: '1', Linkname: "../../../../../../../../etc/passwd"},
	)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image([]string{"sh"}, nil, evil)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(context.Background(), img, reg.Ref("evil:latest")); err != nil {
		t.Fatal(err)
	}
	e := startEngined(t)
	out, _ := docker(t, e.Host, "pull", reg.Ref("evil"))
	entries, _ := os.ReadDir(outside)
	for _, en := range entries {
		t.Errorf("pull wrote outside its root: %s/%s", outside, en.Name())
	}
	// The hard link to a file that is not in the image fails the pull.
	if !strings.Contains(out, "hard link target") {
		t.Errorf("pull of a layer hard-linking out: %s", out)
	}
}
