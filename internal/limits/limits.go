// Package limits holds the sizes the REST and gRPC sides of engined agree
// on, so that whatever the REST API accepts, the Engine service can carry
// and answer.
package limits

import "math"

// MaxJSONBody is the largest JSON request body the REST API reads (create,
// exec, update, auth ...): larger ones are refused with 413. dockerd reads
// JSON bodies without a limit; 64 MiB is far above anything a client sends
// (a container with megabytes of labels or environment still fits) and
// keeps one request from holding unbounded memory. Tar uploads (docker cp,
// load, import, build) are streams and have no such limit.
const MaxJSONBody = 64 << 20

// MaxRequestMessage is the largest message the Engine service receives: a
// request built from a JSON body of MaxJSONBody, with room for framing.
// Streamed uploads arrive in chunks far below it.
const MaxRequestMessage = MaxJSONBody + 1<<20

// MaxReplyMessage is the largest reply clients of the Engine service
// accept. Replies grow with what is stored (a list of thousands of
// containers, each with labels up to MaxJSONBody), so no size below
// gRPC's own ceiling (2 GiB - 1) is safe: it is that ceiling.
const MaxReplyMessage = math.MaxInt32
