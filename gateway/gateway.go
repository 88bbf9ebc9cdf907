// Package gateway serves the Docker Engine REST API from the Engine gRPC
// service. It knows HTTP and Docker's wire formats; everything it answers
// comes from an Engine client, so the engine itself knows nothing of HTTP.
//
// A request goes: version prefix and headers (version.go) → grpc-gateway
// route generated from proto/engine → Engine method → converter to Docker's
// JSON type (convert.go) → marshaler (marshal.go). Routes whose shape a
// google.api.http rule cannot express are hand-written handlers mounted on
// the same mux.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Options describe the engine the gateway fronts.
type Options struct {
	// ServerVersion goes into the Server header: "engined/<version> (linux)".
	ServerVersion string
	// Experimental is reported in the Docker-Experimental header.
	Experimental bool
	Logger       *slog.Logger
}

// New returns the REST handler. conn is a connection to the Engine service,
// normally in-process.
func New(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (http.Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, dockerMarshaler{}),
		runtime.WithForwardResponseRewriter(toDocker),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithForwardResponseOption(setSuccessStatus),
		// gRPC metadata is the engine's business, not the client's: no
		// client header is forwarded (grpc-gateway logged the raw names
		// of those it could not forward).
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
	)
	client := enginev1.NewEngineClient(conn)
	if err := enginev1.RegisterEngineHandlerClient(ctx, mux, client); err != nil {
		return nil, fmt.Errorf("register engine routes: %w", err)
	}
	h := &handlers{engine: client, log: opts.Logger}
	if err := h.register(mux); err != nil {
		return nil, err
	}
	return withDockerHeaders(opts, withAPIVersion(limitBodies(mux))), nil
}

// handlers are the hand-written routes.
type handlers struct {
	engine enginev1.EngineClient
	log    *slog.Logger
}

func (h *handlers) register(mux *runtime.ServeMux) error {
	routes := []struct {
		method, path string
		fn           runtime.HandlerFunc
	}{
		{http.MethodGet, "/_ping", h.ping},
		{http.MethodHead, "/_ping", h.ping},
		{http.MethodGet, "/plugins", h.pluginList},
		{http.MethodGet, "/plugins/{name=**}/json", h.pluginInspect},
		{http.MethodPost, "/images/create", h.imageCreate},
		{http.MethodPost, "/images/{name=**}/push", h.imagePush},
		{http.MethodGet, "/images/{name=**}/get", h.imageSave},
		{http.MethodGet, "/images/get", h.imageSave},
		{http.MethodPost, "/images/load", h.imageLoad},
		{http.MethodPost, "/build", h.build},
		{http.MethodPost, "/build/prune", h.buildPrune},
		{http.MethodPost, "/commit", h.commit},
		{http.MethodPost, "/containers/create", h.containerCreate},
		{http.MethodPost, "/containers/{id}/wait", h.containerWait},
		{http.MethodGet, "/containers/{id}/logs", h.containerLogs},
		{http.MethodGet, "/containers/{id}/stats", h.containerStats},
		{http.MethodPost, "/containers/{id}/attach", h.containerAttach},
		{http.MethodPost, "/containers/{id}/exec", h.containerExecCreate},
		{http.MethodPost, "/exec/{id}/start", h.execStart},
		{http.MethodHead, "/containers/{id}/archive", h.containerArchiveHead},
		{http.MethodGet, "/containers/{id}/archive", h.containerArchiveGet},
		{http.MethodPut, "/containers/{id}/archive", h.containerArchivePut},
		{http.MethodGet, "/containers/{id}/export", h.containerExport},
		{http.MethodGet, "/events", h.systemEvents},
		{http.MethodPost, "/networks/create", h.networkCreate},
		{http.MethodPost, "/networks/{id}/connect", h.networkConnect},
		{http.MethodPost, "/networks/{id}/disconnect", h.networkDisconnect},
		{http.MethodPost, "/volumes/create", h.volumeCreate},
		{http.MethodPost, "/volumes/prune", h.volumePrune},
		{http.MethodPut, "/volumes/{name}", h.volumeUpdate},
	}
	for _, r := range routes {
		if err := mux.HandlePath(r.method, r.path, r.fn); err != nil {
			return fmt.Errorf("register %s %s: %w", r.method, r.path, err)
		}
	}
	return registerSwarm(mux)
}
