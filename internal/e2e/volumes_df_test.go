package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// docker system df and df -v print the columns they print against
// dockerd (the docker CLI's headers), with the volumes' sizes and link
// counts; a volume of 100,000 files is measured while the engine goes on
// answering.
func TestVolumeSystemDF(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	mustDocker(t, h, "volume", "create", "big")
	data := filepath.Join(e.DataRoot, "volumes", "big", "_data")
	const files = 100000
	for i := 0; i < files; i++ {
		dir := filepath.Join(data, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustDocker(t, h, "run", "-d", "--name", "user", "-v", "big:/big", "-v", "small:/small", "busybox", "sleep", "3600")
	mustDocker(t, h, "volume", "create", "idle")

	out := mustDocker(t, h, "system", "df")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Join(strings.Fields(lines[0]), " ") != "TYPE TOTAL ACTIVE SIZE RECLAIMABLE" {
		t.Fatalf("docker system df:\n%s", out)
	}
	for i, want := range []string{"Images 1 1", "Containers 1 1", "Local Volumes 3 2 100kB 0B (0%)", "Build Cache 0 0 0B 0B"} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.HasPrefix(got, want) {
			t.Errorf("df line %d: %q, want %q...", i+1, got, want)
		}
	}

	// df -v while other requests come: they are answered meanwhile.
	done := make(chan string)
	start := time.Now()
	go func() {
		out, err := docker(t, h, "system", "df", "-v")
		if err != nil {
			out = "error: " + err.Error() + "\n" + out
		}
		done <- out
	}()
	var answered atomic.Int32
	var verbose string
loop:
	for {
		select {
		case verbose = <-done:
			break loop
		default:
		}
		mustDocker(t, h, "volume", "inspect", "-f", "{{.Name}}", "idle")
		answered.Add(1)
	}
	t.Logf("docker system df -v with a 100,000-file volume: %v; %d volume inspects answered meanwhile", time.Since(start), answered.Load())
	for _, want := range []string{
		"Images space usage:", "REPOSITORY TAG IMAGE ID CREATED SIZE SHARED SIZE UNIQUE SIZE CONTAINERS",
		"Containers space usage:", "CONTAINER ID IMAGE COMMAND LOCAL VOLUMES SIZE CREATED STATUS NAMES",
		"Local Volumes space usage:", "VOLUME NAME LINKS SIZE", "big 1 100kB", "idle 0 0B", "small 1 0B",
		"Build cache usage: 0B", "CACHE ID CACHE TYPE SIZE CREATED LAST USED USAGE SHARED",
	} {
		found := false
		for _, l := range strings.Split(verbose, "\n") {
			if strings.Join(strings.Fields(l), " ") == want || strings.HasPrefix(strings.Join(strings.Fields(l), " "), want+" ") {
				found = true
			}
		}
		if !found {
			t.Errorf("docker system df -v: no line %q in\n%s", want, verbose)
		}
	}
	// The container's line counts its two local volumes.
	if !strings.Contains(verbose, "   2   ") && !strings.Contains(strings.Join(strings.Fields(verbose), " "), "\"sleep 3600\" 2 ") {
		t.Errorf("df -v: the container's LOCAL VOLUMES: %s", verbose)
	}
	// The REST shape: UsageData on each volume.
	code, _, body := e.get("/system/df?type=volume")
	var du struct {
		Volumes []struct {
			Name      string
			UsageData struct{ Size, RefCount int64 }
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &du) != nil || len(du.Volumes) != 3 {
		t.Fatalf("GET /system/df?type=volume: %d %s", code, body)
	}
	for _, v := range du.Volumes {
		if v.Name == "big" && (v.UsageData.Size != files || v.UsageData.RefCount != 1) {
			t.Errorf("big's UsageData: %+v", v.UsageData)
		}
	}
	if code, _, body := e.get("/system/df?type=bogus"); code != 400 {
		t.Errorf("GET /system/df?type=bogus: %d %s", code, body)
	}
}
