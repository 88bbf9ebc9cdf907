package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

func TestTagRmiPrune(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t)
	ref := reg.Ref("busybox")
	if out, err := docker(t, e.Host, "pull", ref); err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	if out, err := docker(t, e.Host, "tag", ref, "mybox:v1"); err != nil {
		t.Fatalf("docker tag: %v\n%s", err, out)
	}
	out, _ := docker(t, e.Host, "images", "--format", "{{.Repository}}:{{.Tag}}")
	mustContain(t, "images after tag", out, "mybox:v1", ref+":latest")

	// Removing by ID with two tags needs force; by name it untags.
	out, err := docker(t, e.Host, "rmi", "mybox:v1")
	if err != nil || strings.TrimSpace(out) != "Untagged: mybox:v1" {
		t.Errorf("docker rmi mybox:v1 = %q, %v", out, err)
	}
	docker(t, e.Host, "tag", ref, "mybox:v1")
	// One row per tag: the same ID twice, as with dockerd.
	ids, _ := docker(t, e.Host, "images", "-q")
	id := strings.Fields(ids)[0]
	out, err = docker(t, e.Host, "rmi", id)
	if err == nil || !strings.Contains(out, "must be forced") || !strings.Contains(out, "referenced in multiple repositories") {
		t.Errorf("docker rmi ID with two tags: %v\n%s", err, out)
	}
	out, err = docker(t, e.Host, "rmi", "-f", id)
	if err != nil {
		t.Fatalf("docker rmi -f: %v\n%s", err, out)
	}
	mustContain(t, "docker rmi -f", out, "Untagged: mybox:v1", "Untagged: "+ref+":latest", "Untagged: "+ref+"@sha256:", "Deleted: sha256:")
	out, _ = docker(t, e.Host, "images", "-q")
	if strings.TrimSpace(out) != "" {
		t.Errorf("images left after rmi -f: %q", out)
	}
	// Layers and blobs are freed.
	assertNoImageData(t, e)
	out, err = docker(t, e.Host, "rmi", "nosuch")
	if err == nil || !strings.Contains(out, "No such image: nosuch") {
		t.Errorf("rmi of a missing image: %v\n%s", err, out)
	}

	// Prune: a dangling image goes, a tagged one stays.
	for _, n := range []string{"busybox", "multi"} {
		if out, err := docker(t, e.Host, "pull", reg.Ref(n)); err != nil {
			t.Fatalf("pull %s: %v\n%s", n, err, out)
		}
	}
	if out, err := docker(t, e.Host, "rmi", reg.Ref("multi")); err != nil {
		t.Fatalf("rmi multi: %v\n%s", err, out)
	}
	// Re-tag busybox away and back so the old one... instead make a
	// dangling image by importing without a name.
	if out, err := importTar(t, e, "", minimalRootfs(t)); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, _ = docker(t, e.Host, "images", "--filter", "dangling=true", "-q")
	if len(strings.Fields(out)) != 1 {
		t.Fatalf("dangling images = %q", out)
	}
	out, err = docker(t, e.Host, "image", "prune", "-f")
	if err != nil {
		t.Fatalf("docker image prune: %v\n%s", err, out)
	}
	mustContain(t, "docker image prune", out, "Deleted Images:", "deleted: sha256:", "Total reclaimed space:")
	out, _ = docker(t, e.Host, "images", "--format", "{{.Repository}}")
	if strings.TrimSpace(out) != ref {
		t.Errorf("images after prune = %q", out)
	}
	out, err = docker(t, e.Host, "image", "prune", "-a", "-f")
	if err != nil {
		t.Fatalf("docker image prune -a: %v\n%s", err, out)
	}
	assertNoImageData(t, e)
}

// assertNoImageData checks no blob or unpacked layer is left.
func assertNoImageData(t *testing.T, e *engined) {
	t.Helper()
	for _, dir := range []string{"image/content/blobs/sha256", "image/overlay"} {
		entries, _ := os.ReadDir(filepath.Join(e.DataRoot, dir))
		for _, en := range entries {
			if en.Name() != "tmp" {
				t.Errorf("left in %s: %s", dir, en.Name())
			}
		}
	}
}

func minimalRootfs(t *testing.T) []byte {
	t.Helper()
	bin, err := os.ReadFile(testimage.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	tw.Close()
	return buf.Bytes()
}

func importTar(t *testing.T, e *engined, name string, data []byte) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	os.WriteFile(path, data, 0o644)
	args := []string{"import", path}
	if name != "" {
		args = append(args, name)
	}
	return docker(t, e.Host, args...)
}

func TestSaveLoadImport(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t)
	ref := reg.Ref("multi")
	if out, err := docker(t, e.Host, "pull", ref); err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	before, err := c.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "x.tar")
	if out, err := docker(t, e.Host, "save", "-o", archive, ref); err != nil {
		t.Fatalf("docker save: %v\n%s", err, out)
	}
	if out, err := docker(t, e.Host, "rmi", ref); err != nil {
		t.Fatalf("docker rmi: %v\n%s", err, out)
	}
	assertNoImageData(t, e)
	out, err := docker(t, e.Host, "load", "-i", archive)
	if err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	mustContain(t, "docker load", out, "Loaded image: "+ref+":latest")
	after, err := c.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID || strings.Join(after.RootFS.Layers, ",") != strings.Join(before.RootFS.Layers, ",") || after.Config.Labels["org.example.test"] != "multi" {
		t.Errorf("after load: %+v\nbefore: %+v", after, before)
	}
	// The loaded image can be pushed back and pulled again.
	if out, err := docker(t, e.Host, "tag", ref, reg.Ref("reloaded:v2")); err != nil {
		t.Fatalf("tag: %v\n%s", err, out)
	}
	out, err = docker(t, e.Host, "push", reg.Ref("reloaded:v2"))
	if err != nil {
		t.Fatalf("docker push: %v\n%s", err, out)
	}
	mustContain(t, "docker push", out, "The push refers to repository ["+reg.Ref("reloaded")+"]", "Pushed", "v2: digest: sha256:")
	e2 := startEngined(t)
	if out, err := docker(t, e2.Host, "pull", reg.Ref("reloaded:v2")); err != nil {
		t.Fatalf("pull of the pushed image: %v\n%s", err, out)
	}
	pulled, err := mobyClient(t, e2.Host).ImageInspect(ctx, reg.Ref("reloaded:v2"))
	if err != nil || pulled.ID != before.ID {
		t.Errorf("pushed then pulled: %v %v", pulled.ID, err)
	}

	// docker save writes an archive the real `tar` lists, with both
	// manifest.json and an OCI index.
	list, err := exec.Command("tar", "-tf", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tf: %v\n%s", err, list)
	}
	mustContain(t, "saved archive", string(list), "manifest.json", "index.json", "oci-layout", "blobs/sha256/")

	// docker import of a rootfs tar.
	out, err = importTar(t, e, "imported:v1", minimalRootfs(t))
	if err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
		t.Errorf("docker import printed %q", out)
	}
	imp, err := c.ImageInspect(ctx, "imported:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.RootFS.Layers) != 1 || imp.Os != "linux" || imp.Comment != "Imported from -" {
		t.Errorf("imported image: %+v", imp)
	}
	hist, err := c.ImageHistory(ctx, "imported:v1")
	if err != nil || len(hist.Items) != 1 || hist.Items[0].Size == 0 {
		t.Errorf("history: %+v %v", hist, err)
	}

	// A file that is not an image archive is a clear 400.
	junk := filepath.Join(t.TempDir(), "junk.tar")
	os.WriteFile(junk, minimalRootfs(t), 0o644)
	out, err = docker(t, e.Host, "load", "-i", junk)
	if err == nil || !strings.Contains(out, "not an image archive") {
		t.Errorf("load of a non-image tar: %v\n%s", err, out)
	}
	// As from dockerd: a 200 whose stream carries the error.
	res, err := c.ImageLoad(ctx, bytes.NewReader([]byte("garbage")))
	if err != nil {
		t.Fatalf("load of garbage: %v", err)
	}
	body, _ := io.ReadAll(res)
	res.Close()
	if !bytes.Contains(body, []byte(`"errorDetail"`)) || !bytes.Contains(body, []byte("unexpected EOF")) {
		t.Errorf("load of garbage: %s", body)
	}
	_ = client.ImageListOptions{}
}
