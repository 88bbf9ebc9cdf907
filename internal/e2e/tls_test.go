package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/engineclient"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// testCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, named as the docker CLI expects in a cert directory.
type testCerts struct {
	Dir, CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func makeCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	c := testCerts{Dir: dir,
		CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server-cert.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "cert.pem"), ClientKey: filepath.Join(dir, "key.pem")}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "engined test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	writePEM(t, c.CA, "CERTIFICATE", caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certPath, "CERTIFICATE", der)
		kb, _ := x509.MarshalECPrivateKey(key)
		writePEM(t, keyPath, "EC PRIVATE KEY", kb)
	}
	issue(2, "engined", x509.ExtKeyUsageServerAuth, c.ServerCert, c.ServerKey)
	issue(3, "client", x509.ExtKeyUsageClientAuth, c.ClientCert, c.ClientKey)
	return c
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
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
	mustContain(t, "docker --tlsverify version", out, "Server: engined", "1.51 (minimum version 1.40)")

	// Without a client certificate the handshake is refused.
	out, err = docker(t, tcpHost, "--tls", "--tlscacert", certs.CA, "version")
	if err == nil || strings.Contains(out, "Server: engined") {
		t.Errorf("docker without client certificate was served:\n%s", out)
	}
	curlOut, err := exec.Command("curl", "-sS", "--cacert", certs.CA, "https://127.0.0.1:"+port+"/_ping").CombinedOutput()
	if err == nil {
		t.Errorf("curl without client certificate succeeded: %s", curlOut)
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(certs.CA)
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{RootCAs: roots})
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
