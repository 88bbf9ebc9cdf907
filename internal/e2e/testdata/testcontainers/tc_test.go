// Package testcontainers runs testcontainers-go against the engine that
// DOCKER_HOST names; internal/e2e's TestTestcontainers runs it against a
// test engined. A module of its own so engined's go.mod does not carry
// testcontainers' dependencies.
package testcontainers

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// A container with an exposed port answers on its mapped host port.
func TestExposedPortAnswers(t *testing.T) {
	if os.Getenv("DOCKER_HOST") == "" {
		t.Skip("DOCKER_HOST is not set: run through internal/e2e's TestTestcontainers")
	}
	ctx := context.Background()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "busybox:latest",
			Cmd:          []string{"sh", "-c", "echo tc-ok > /tmp/index.html && exec httpd -f -p 80 -h /tmp"},
			ExposedPorts: []string{"80/tcp"},
			WaitingFor:   wait.ForHTTP("/").WithPort("80/tcp").WithStartupTimeout(60 * time.Second),
		},
		Started: true,
	})
	if err != nil {
		t.Fatalf("start container: %v", err)
	}
	defer func() {
		if err := c.Terminate(ctx); err != nil {
			t.Errorf("terminate: %v", err)
		}
	}()
	host, err := c.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := c.MappedPort(ctx, "80/tcp")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + host + ":" + port.Port() + "/")
	if err != nil {
		t.Fatalf("GET mapped port %s:%s: %v", host, port.Port(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.TrimSpace(string(body)) != "tc-ok" {
		t.Errorf("mapped port answered %q", body)
	}
	t.Logf("container answered on %s:%s", host, port.Port())
}
