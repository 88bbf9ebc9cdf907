package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testcontainers-go (v0.45.0, Ryuk off, as its users in CI run it)
// against engined: a container with an exposed port answers on its
// mapped host port. The test lives in a module of its own
// (testdata/testcontainers) and runs with go test there.
func TestTestcontainers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds testcontainers-go")
	}
	e := runEngine(t)
	dir, err := filepath.Abs("testdata/testcontainers")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-count=1", "-v", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host, "TESTCONTAINERS_RYUK_DISABLED=true", "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestExposedPortAnswers") {
		t.Fatalf("testcontainers-go against engined: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
