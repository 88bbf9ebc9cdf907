// Package errdefs gives engine errors a kind that survives the trip through
// gRPC, so the gateway can answer with Docker's status codes and our CLI can
// tell "not found" from "conflict".
package errdefs

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain tags the ErrorInfo details engined attaches.
const Domain = "engined"

// ReasonNotModified marks an operation that had nothing to do (Docker's 304:
// starting a running container, stopping a stopped one).
const ReasonNotModified = "NOT_MODIFIED"

type kindError struct {
	code   codes.Code
	reason string
	err    error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func wrap(code codes.Code, reason string, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{code: code, reason: reason, err: err}
}

// NotFound marks err as a missing object (404).
func NotFound(err error) error { return wrap(codes.NotFound, "", err) }

// Conflict marks err as conflicting with the current state (409).
func Conflict(err error) error { return wrap(codes.FailedPrecondition, "", err) }

// AlreadyExists marks err as a name or object already taken (409).
func AlreadyExists(err error) error { return wrap(codes.AlreadyExists, "", err) }

// InvalidArgument marks err as bad input from the caller (400).
func InvalidArgument(err error) error { return wrap(codes.InvalidArgument, "", err) }

// NotModified marks a request that had nothing to do (304).
func NotModified(err error) error { return wrap(codes.FailedPrecondition, ReasonNotModified, err) }

// Unauthorized marks missing or bad credentials (401).
func Unauthorized(err error) error { return wrap(codes.Unauthenticated, "", err) }

// Forbidden marks an operation that is not allowed (403).
func Forbidden(err error) error { return wrap(codes.PermissionDenied, "", err) }

// NotImplemented marks a feature engined does not have (501).
func NotImplemented(err error) error { return wrap(codes.Unimplemented, "", err) }

// Unavailable marks a temporary inability to serve (503).
func Unavailable(err error) error { return wrap(codes.Unavailable, "", err) }

// Errorf is fmt.Errorf with a kind: errdefs.Errorf(errdefs.NotFound, "no such container: %s", id).
func Errorf(kind func(error) error, format string, args ...any) error {
	return kind(fmt.Errorf(format, args...))
}

// Code reports the gRPC code for err, looking through wrapping.
func Code(err error) codes.Code {
	var k *kindError
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &k):
		return k.code
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// ToGRPC turns an engine error into a gRPC status error, keeping its message.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		var k *kindError
		if !errors.As(err, &k) {
			return err
		}
	}
	st := status.New(Code(err), err.Error())
	var k *kindError
	if errors.As(err, &k) && k.reason != "" {
		if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: k.reason, Domain: Domain}); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

// IsNotModified reports whether a gRPC status carries the NOT_MODIFIED reason.
func IsNotModified(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == Domain && info.Reason == ReasonNotModified {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err is (or wraps) a not-found error.
func IsNotFound(err error) bool { return err != nil && Code(err) == codes.NotFound }

// IsNotModifiedError reports whether err marks a request with nothing to do.
func IsNotModifiedError(err error) bool {
	var k *kindError
	return errors.As(err, &k) && k.reason == ReasonNotModified
}
