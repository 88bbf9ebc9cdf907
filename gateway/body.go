package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/engined/engined/internal/limits"
)

// bodyTooLargeMsg is the 413's message.
var bodyTooLargeMsg = fmt.Sprintf("request body too large: JSON request bodies are limited to %d MiB", limits.MaxJSONBody>>20)

var errBodyTooLarge = errors.New(bodyTooLargeMsg)

// streamBody reports whether a route's body is a stream (a tar, stdin of
// a hijacked connection) rather than a JSON document: those have no size
// limit.
func streamBody(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/archive"):
		return true
	case r.Method != http.MethodPost:
		return false
	case p == "/images/load", p == "/images/create", p == "/build":
		return true
	case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/attach"):
		return true
	}
	return false
}

// limitBodies refuses JSON bodies above limits.MaxJSONBody with 413:
// at once when the client declared the length, else when reading goes
// past it (readBody, and the marshaler's decoder for generated routes).
// Without it a large body was cut short and reported as invalid JSON.
func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && !streamBody(r) {
			if r.ContentLength > limits.MaxJSONBody {
				writeError(w, http.StatusRequestEntityTooLarge, bodyTooLargeMsg)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limits.MaxJSONBody)
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads a JSON request body whole, answering 413 when it is over
// the limit and 400 when it cannot be read; ok is false when it answered.
func readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if isTooLarge(err) {
			writeError(w, http.StatusRequestEntityTooLarge, bodyTooLargeMsg)
		} else {
			writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
