package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/engined/engined/internal/testimage"
)

// dockerCfg runs the real docker CLI with a given config dir, so a login
// is remembered between calls.
func dockerCfg(t *testing.T, cfgDir, host string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(dockerCLI, append([]string{"--config", cfgDir, "-H", host}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := testimage.Htpasswd(htpasswd, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	reg, err := testimage.StartRegistry(context.Background(), dir, htpasswd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(context.Background(), bb, reg.Ref("private/bb:latest"), &authn.Basic{Username: "alice", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	e := startEngined(t)
	cfg := t.TempDir()

	out, err := dockerCfg(t, cfg, e.Host, "pull", reg.Ref("private/bb"))
	if err == nil || !strings.Contains(out, "pull access denied") {
		t.Errorf("pull without credentials: %v\n%s", err, out)
	}
	out, err = dockerCfg(t, cfg, e.Host, "login", "-u", "alice", "-p", "wrong", reg.Addr)
	if err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("login with a wrong password: %v\n%s", err, out)
	}
	out, err = dockerCfg(t, cfg, e.Host, "login", "-u", "alice", "-p", "s3cret", reg.Addr)
	if err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	// The CLI now sends X-Registry-Auth; pull and push use it.
	out, err = dockerCfg(t, cfg, e.Host, "pull", reg.Ref("private/bb"))
	if err != nil {
		t.Fatalf("pull with credentials: %v\n%s", err, out)
	}
	if out, err := dockerCfg(t, cfg, e.Host, "tag", reg.Ref("private/bb"), reg.Ref("private/copy:v1")); err != nil {
		t.Fatalf("tag: %v\n%s", err, out)
	}
	out, err = dockerCfg(t, cfg, e.Host, "push", reg.Ref("private/copy:v1"))
	if err != nil {
		t.Fatalf("push with credentials: %v\n%s", err, out)
	}
	mustContain(t, "push", out, "v1: digest: sha256:")
}
