package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// A newcomer's first image: `make image` (which `make run` runs once
// engined answers) imports busybox from Debian's busybox-static, so
// `docker run --rm busybox echo hi` works with no registry; run again, it
// keeps the image it finds.
func TestMakeImageGivesBusybox(t *testing.T) {
	e := startEngined(t)
	for i, want := range []string{"imported busybox:latest", "busybox image present"} {
		out, err := exec.Command("make", "-s", "-C", "../..", "image", "DOCKER_HOST_ADDR="+e.Host).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("make image (%d): %v\n%s", i, err, out)
		}
	}
	if out := mustDocker(t, e.Host, "run", "--rm", "busybox", "echo", "hi"); out != "hi\n" {
		t.Errorf("docker run --rm busybox echo hi: %q", out)
	}
	if out := mustDocker(t, e.Host, "run", "--rm", "busybox", "sh", "-c", "id -un; ls /usr/bin/env; test -d /tmp && echo tmp"); out != "root\n/usr/bin/env\ntmp\n" {
		t.Errorf("busybox image contents: %q", out)
	}
}
