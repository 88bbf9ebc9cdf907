package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Login checks credentials against a registry as docker login does: the
// registry's /v2/ endpoint must accept them.
func (s *Service) Login(ctx context.Context, req *enginev1.SystemAuthRequest) (*enginev1.SystemAuthResponse, error) {
	host := req.GetServerAddress()
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://"), "/")
	host = strings.TrimSuffix(host, "/v1")
	host = strings.TrimSuffix(host, "/v2")
	if host == "" || host == "index.docker.io" || host == "registry-1.docker.io" {
		host = "index.docker.io"
	}
	if !validRegistryHost(host) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid registry address %q: want host[:port]", clipString(req.GetServerAddress(), 300)))
	}
	var opts []name.Option
	if s.isInsecure(host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid registry address %q: %w", req.GetServerAddress(), err))
	}
	auth := authenticator(&enginev1.RegistryAuth{Username: req.GetUsername(), Password: req.GetPassword(),
		IdentityToken: req.GetIdentityToken(), RegistryToken: req.GetRegistryToken()})
	rt, err := transport.NewWithContext(ctx, reg, auth, http.DefaultTransport, nil)
	if err != nil {
		return nil, loginError(err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(hreq)
	if err != nil {
		return nil, loginError(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return &enginev1.SystemAuthResponse{Status: "Login Succeeded"}, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, errdefs.Unauthorized(errors.New("login attempt to " + host + " failed with status: " + resp.Status))
	}
	return nil, fmt.Errorf("login to %s: unexpected status %s", host, resp.Status)
}

// validRegistryHost: an IP or a DNS name (labels of 1 to 63 letters,
// digits and dashes, 253 bytes in all), with an optional port.
func validRegistryHost(hostport string) bool {
	host := hostport
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return true
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, l := range strings.Split(host, ".") {
		if len(l) == 0 || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func loginError(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return errdefs.Unauthorized(fmt.Errorf("unauthorized: incorrect username or password"))
	}
	return fmt.Errorf("login: %w", err)
}

func (s *Service) SystemAuth(ctx context.Context, req *enginev1.SystemAuthRequest) (*enginev1.SystemAuthResponse, error) {
	return s.Login(ctx, req)
}
