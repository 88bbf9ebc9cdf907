package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
