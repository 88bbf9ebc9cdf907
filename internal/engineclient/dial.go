// Package engineclient connects to the Engine gRPC service on any address
// engined listens on, the way the docker CLI finds dockerd: -H, then
// DOCKER_HOST, then the default socket.
package engineclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/engined/engined/internal/limits"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// DefaultHost is engined's default socket.
const DefaultHost = "unix:///run/engined/docker.sock"

// TLS is the client side of --tls/--tlsverify.
type TLS struct {
	Enabled bool
	Verify  bool
	CAFile  string
	Cert    string
	Key     string
}

// Host picks the address: the flag, else DOCKER_HOST, else the default.
func Host(flag string) string {
	if flag != "" {
		return flag
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return DefaultHost
}

// TLSFromEnv fills unset TLS options from DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH as the docker CLI does.
func TLSFromEnv(t TLS) TLS {
	if os.Getenv("DOCKER_TLS_VERIFY") != "" {
		t.Enabled, t.Verify = true, true
	}
	dir := os.Getenv("DOCKER_CERT_PATH")
	if dir == "" && t.Enabled {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	if dir != "" {
		if t.CAFile == "" {
			t.CAFile = filepath.Join(dir, "ca.pem")
		}
		if t.Cert == "" {
			t.Cert = filepath.Join(dir, "cert.pem")
		}
		if t.Key == "" {
			t.Key = filepath.Join(dir, "key.pem")
		}
	}
	return t
}

// Conn is a connection to the Engine service.
type Conn struct {
	*grpc.ClientConn
	Engine enginev1.EngineClient
}

// Dial connects to host (unix://, tcp://). gRPC connects lazily, so errors
// about an unreachable engine surface on the first call.
func Dial(host string, t TLS) (*Conn, error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("invalid host %q: want unix:///path or tcp://host:port", host)
	}
	var target string
	creds := insecure.NewCredentials()
	switch u.Scheme {
	case "unix":
		target = "unix://" + u.Path
	case "tcp":
		target = "passthrough:///" + u.Host
		if !strings.Contains(u.Host, ":") {
			return nil, fmt.Errorf("invalid host %q: tcp address needs a port", host)
		}
		if t.Enabled || t.Verify {
			cfg, err := clientTLS(t, u.Hostname())
			if err != nil {
				return nil, err
			}
			creds = credentials.NewTLS(cfg)
		}
	default:
		return nil, fmt.Errorf("invalid host %q: unsupported scheme %q", host, u.Scheme)
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		// As the gateway does: replies grow with the engine's state.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limits.MaxReplyMessage), grpc.MaxCallSendMsgSize(limits.MaxRequestMessage)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", host, err)
	}
	return &Conn{ClientConn: cc, Engine: enginev1.NewEngineClient(cc)}, nil
}

func clientTLS(t TLS, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if !t.Verify {
		// --tls without --tlsverify encrypts but trusts any server, as the docker CLI does.
		cfg.InsecureSkipVerify = true
	}
	if t.Cert != "" && t.Key != "" {
		if _, err := os.Stat(t.Cert); err == nil {
			pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	return cfg, nil
}
