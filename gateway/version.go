package gateway

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/engined/engined/internal/version"
)

type apiVersionKey struct{}

// APIVersion is the API version the client asked for through the path
// prefix, or the current one when it gave none.
func APIVersion(ctx context.Context) string {
	if v, ok := ctx.Value(apiVersionKey{}).(string); ok {
		return v
	}
	return version.APIVersion
}

// versionPrefix is Docker's "/v{version:[0-9.]+}" route prefix.
var versionPrefix = regexp.MustCompile(`^/v([0-9.]+)(/.*)$`)

// withAPIVersion strips the /v1.NN prefix, rejects versions outside
// [MinAPIVersion, APIVersion] with Docker's wording, and puts the version in
// the request context for converters that shape older replies.
func withAPIVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := versionPrefix.FindStringSubmatch(r.URL.Path)
		if m == nil {
			next.ServeHTTP(w, r)
			return
		}
		v := m[1]
		if !validVersion(v) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid API version %q", v))
			return
		}
		if compareVersions(v, version.MinAPIVersion) < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, version.MinAPIVersion))
			return
		}
		if compareVersions(v, version.APIVersion) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, version.APIVersion))
			return
		}
		r2 := r.Clone(context.WithValue(r.Context(), apiVersionKey{}, v))
		r2.URL.Path = m[2]
		r2.URL.RawPath = ""
		if r.URL.RawPath != "" {
			if rm := versionPrefix.FindStringSubmatch(r.URL.RawPath); rm != nil {
				r2.URL.RawPath = rm[2]
			}
		}
		next.ServeHTTP(w, r2)
	})
}

func validVersion(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return true
}

// compareVersions compares dotted numeric versions: -1, 0 or 1.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// versionBefore reports whether the request's API version is older than v.
func versionBefore(ctx context.Context, v string) bool {
	return compareVersions(APIVersion(ctx), v) < 0
}

// withDockerHeaders sets the headers dockerd puts on every response.
func withDockerHeaders(opts Options, next http.Handler) http.Handler {
	server := fmt.Sprintf("%s/%s (linux)", version.Product, opts.ServerVersion)
	experimental := strconv.FormatBool(opts.Experimental)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Api-Version", version.APIVersion)
		h.Set("Ostype", "linux")
		h.Set("Server", server)
		h.Set("Docker-Experimental", experimental)
		next.ServeHTTP(w, r)
	})
}
