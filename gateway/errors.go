package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/engined/engined/internal/errdefs"
)

// httpStatus maps the Engine's gRPC codes to Docker's status codes.
func httpStatus(st *status.Status) int {
	switch st.Code() {
	case codes.OK:
		return http.StatusOK
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists:
		return http.StatusConflict
	case codes.FailedPrecondition:
		if errdefs.IsNotModified(st) {
			return http.StatusNotModified
		}
		return http.StatusConflict
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		// The client went away; nobody reads this.
		return 499
	}
	return http.StatusInternalServerError
}

// writeError writes Docker's error body: {"message": "..."}.
func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	if code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{msg})
}

// grpcMessage is an Engine error's message without the gRPC decoration.
func grpcMessage(err error) string { return status.Convert(err).Message() }

// writeGRPCError answers with the status an Engine error maps to.
func writeGRPCError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	writeError(w, httpStatus(st), st.Message())
}

func errorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	// The generated routes report a body the decoder refused as
	// InvalidArgument carrying the decoder's message.
	if st := status.Convert(err); st.Code() == codes.InvalidArgument && st.Message() == bodyTooLargeMsg {
		writeError(w, http.StatusRequestEntityTooLarge, bodyTooLargeMsg)
		return
	}
	writeGRPCError(w, err)
}

// routingErrorHandler answers unknown routes as dockerd does.
func routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, code int) {
	switch code {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		writeError(w, http.StatusNotFound, "page not found")
	default:
		writeError(w, code, http.StatusText(code))
	}
}
