package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engined/engined/internal/testtls"

	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/engineclient"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func makeCerts(t *testing.T) *testtls.PKI {
	t.Helper()
	p, err := testtls.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestTLSVerify(t *testing.T) {
	certs := makeCerts(t)
	port := strconv.Itoa(freePort(t))
	tcpHost := "tcp://127.0.0.1:" + port
	e := startEngined(t, "-H", tcpHost, "--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.ServerCert, "--tlskey", certs.ServerKey)

	// The real docker CLI with a client certificate.
	out, err := docker(t, tcpHost, "--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.ClientCert, "--tlskey", certs.ClientKey, "version")
	if err != nil {
		t.Fatalf("docker --tlsverify version: %v\n%s", err, out)
	}
	mustContain(t, "docker --tlsverify version", out, "Server: engined", "1.51 (minimum version 1.24)")

	// Without a client certificate the handshake is refused.
	out, err = docker(t, tcpHost, "--tls", "--tlscacert", certs.CA, "version")
	if err == nil || strings.Contains(out, "Server: engined") {
		t.Errorf("docker without client certificate was served:\n%s", out)
	}
	curlOut, err := exec.Command("curl", "-sS", "--cacert", certs.CA, "https://127.0.0.1:"+port+"/_ping").CombinedOutput()
	if err == nil {
		t.Errorf("curl without client certificate succeeded: %s", curlOut)
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{RootCAs: certs.Pool})
	if err == nil {
		// TLS 1.3 reports the client-certificate failure on first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Write([]byte("GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"))
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
	}
	if err == nil {
		t.Error("TLS connection without client certificate was served")
	}

	// The official Go client with TLS.
	c := mobyClient(t, tcpHost, client.WithTLSClientConfig(certs.CA, certs.ClientCert, certs.ClientKey))
	if _, err := c.Ping(context.Background(), client.PingOptions{}); err != nil {
		t.Errorf("moby client over TLS: %v", err)
	}

	// gRPC over the same TLS listener (ALPN h2).
	gc, err := engineclient.Dial(tcpHost, engineclient.TLS{Enabled: true, Verify: true, CAFile: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if v, err := gc.Engine.SystemVersion(context.Background(), &enginev1.SystemVersionRequest{}); err != nil || v.GetApiVersion() != "1.51" {
		t.Errorf("gRPC over TLS: %v, %v", v, err)
	}
	// The unix socket keeps working beside it.
	if code, _, _ := e.get("/_ping"); code != 200 {
		t.Errorf("unix /_ping = %d", code)
	}
}

func TestTCPWithoutTLS(t *testing.T) {
	dataRoot, execRoot := newRoots(t)
	// Off loopback, plain tcp is refused unless --tls=false is explicit.
	code, out := runEnginedExpectFailure(t, "--data-root", dataRoot, "--exec-root", execRoot, "-H", "tcp://0.0.0.0:"+strconv.Itoa(freePort(t)))
	if code == 0 || !strings.Contains(out, "without TLS") || !strings.Contains(out, "--tls=false") {
		t.Errorf("non-loopback tcp without TLS: exit %d:\n%s", code, out)
	}

	// On loopback it starts, warns loudly, and docker info repeats the warning.
	port := strconv.Itoa(freePort(t))
	e := startEngined(t, "-H", "tcp://127.0.0.1:"+port)
	mustContain(t, "engined log", e.out.String(), "level=WARN", "without TLS")
	out, err := docker(t, "tcp://127.0.0.1:"+port, "info")
	if err != nil {
		t.Fatalf("docker info over tcp: %v\n%s", err, out)
	}
	mustContain(t, "docker info", out, "WARNING: binding to tcp://127.0.0.1:"+port+" without TLS")

	// With --tls=false given explicitly, any address is allowed.
	port = strconv.Itoa(freePort(t))
	e2 := startEngined(t, "-H", "tcp://0.0.0.0:"+port, "--tls=false")
	if out, err := docker(t, "tcp://127.0.0.1:"+port, "version"); err != nil {
		t.Errorf("docker version with --tls=false: %v\n%s", err, out)
	}
	e2.stop()
}
