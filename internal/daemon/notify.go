package daemon

import (
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells systemd (Type=notify units) that the API is up.
func notifyReady(log *slog.Logger) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify failed", "err", err)
	} else if ok {
		log.Debug("notified systemd")
	}
}
