package daemon

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/sirupsen/logrus"
)

// routeLibraryLog sends what libraries log through logrus's standard
// logger (ttrpc's client, through containerd/log) to engined's log,
// not to stderr in logrus's format. ttrpc's lines are about replies to
// calls engined gave up on (a late answer to a Connect that timed out,
// or to a call engined stopping cancelled): debug lines.
func routeLibraryLog(log *slog.Logger) {
	l := logrus.StandardLogger()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)
	l.AddHook(slogHook{log})
}

type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	if !strings.HasPrefix(e.Message, "ttrpc:") {
		switch {
		case e.Level <= logrus.ErrorLevel:
			level = slog.LevelError
		case e.Level == logrus.WarnLevel:
			level = slog.LevelWarn
		case e.Level == logrus.InfoLevel:
			level = slog.LevelInfo
		}
	}
	attrs := make([]any, 0, 2*len(e.Data))
	for k, v := range e.Data {
		attrs = append(attrs, k, v)
	}
	h.log.Log(context.Background(), level, e.Message, attrs...)
	return nil
}
