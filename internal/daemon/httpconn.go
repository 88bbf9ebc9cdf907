package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/grpclog"
)

// stallTimeout bounds the wait for each next piece of a request body, so
// a client that sends a body slowly, or stops, does not hold its
// connection (and a file descriptor) for ever; an upload that keeps
// moving, however long, is not cut. The deadline goes when the body has
// been read, so it never touches the response or a hijacked stream.
func stallTimeout(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &stallBody{ReadCloser: r.Body, rc: http.NewResponseController(w), d: d}
		}
		next.ServeHTTP(w, r)
	})
}

type stallBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	done bool
}

func (b *stallBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	b.rc.SetReadDeadline(time.Now().Add(b.d))
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done = true
		if errors.Is(err, io.EOF) {
			b.rc.SetReadDeadline(time.Time{})
		}
		// Else the deadline stays: the rest of a body that stalled is
		// not waited for, and the connection is closed.
	}
	return n, err
}

// maxLogValue is how much of a client-supplied value goes into a log line.
const maxLogValue = 256

// clientValue makes a value a client chose safe to log: cut to
// maxLogValue bytes and quoted, so control characters, newlines and
// escape sequences cannot forge or garble log lines.
func clientValue(s string) string {
	if len(s) > maxLogValue {
		return strconv.Quote(s[:maxLogValue]) + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// grpcLogger routes grpc-go's and grpc-gateway's logging (grpclog) into
// engined's structured log. Their messages can carry what a client sent
// (header names, error texts): each is one sanitized attribute, never raw
// text on stderr.
type grpcLogger struct{ log *slog.Logger }

var _ grpclog.LoggerV2 = grpcLogger{}

func (g grpcLogger) emit(level slog.Level, msg string) {
	g.log.Log(context.Background(), level, "grpc", "detail", clientValue(msg))
}

func (g grpcLogger) Info(args ...any)   { g.emit(slog.LevelDebug, fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any) { g.emit(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g grpcLogger) Infof(format string, args ...any) {
	g.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Warning(args ...any)   { g.emit(slog.LevelWarn, fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any) { g.emit(slog.LevelWarn, fmt.Sprintln(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) {
	g.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Error(args ...any)   { g.emit(slog.LevelError, fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any) { g.emit(slog.LevelError, fmt.Sprintln(args...)) }
func (g grpcLogger) Errorf(format string, args ...any) {
	g.emit(slog.LevelError, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Fatal(args ...any) {
	g.emit(slog.LevelError, fmt.Sprint(args...))
	panic("grpc: fatal")
}
func (g grpcLogger) Fatalln(args ...any) {
	g.emit(slog.LevelError, fmt.Sprintln(args...))
	panic("grpc: fatal")
}
func (g grpcLogger) Fatalf(format string, args ...any) {
	g.emit(slog.LevelError, fmt.Sprintf(format, args...))
	panic("grpc: fatal")
}

// V reports whether verbosity level l is logged: grpc-go's chatty levels
// are not.
func (g grpcLogger) V(l int) bool {
	return l <= 0 && g.log.Enabled(context.Background(), slog.LevelDebug)
}
