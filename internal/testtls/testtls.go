// Package testtls makes the certificates engined's TLS tests use: a CA, a
// server certificate for 127.0.0.1 and localhost, and a client
// certificate, written out as dockerd's and the docker CLI's --tls* flags
// expect.
package testtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a generated set of files.
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// Pool trusts the CA; Client is the client certificate, loaded.
	Pool   *x509.CertPool
	Client tls.Certificate
}

// Generate writes ca.pem, server-cert.pem, server-key.pem, cert.pem and
// key.pem into dir.
func Generate(dir string) (*PKI, error) {
	now := time.Now()
	ca, caKey, err := issue(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "engined test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, error) {
		return issue(&x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}, ca, caKey)
	}
	server, serverKey, err := leaf(2, "engined", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	client, clientKey, err := leaf(3, "client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	p := &PKI{
		CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server-cert.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "cert.pem"), ClientKey: filepath.Join(dir, "key.pem"),
		Pool: x509.NewCertPool(), Client: tls.Certificate{Certificate: [][]byte{client.Raw}, PrivateKey: clientKey},
	}
	p.Pool.AddCert(ca)
	for path, block := range map[string]*pem.Block{
		p.CA: {Type: "CERTIFICATE", Bytes: ca.Raw}, p.ServerCert: {Type: "CERTIFICATE", Bytes: server.Raw}, p.ClientCert: {Type: "CERTIFICATE", Bytes: client.Raw},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	for path, key := range map[string]*ecdsa.PrivateKey{p.ServerKey: serverKey, p.ClientKey: clientKey} {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// issue signs tmpl with parent's key, or self-signs it if parent is nil.
func issue(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}
