package container

import (
	"errors"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// userNetwork: the network mode is a user-defined network, whose
// containers use the embedded DNS (127.0.0.11) and have names on it.
func userNetwork(hc *enginev1.HostConfig) bool {
	m := hc.GetNetworkMode()
	return bridged(hc) && m != "bridge" && m != "default" && m != ""
}

// aliasRequest records --network-alias; dockerd refuses aliases on the
// default bridge (and on host, none and container: modes).
func aliasRequest(rec *Record, hc *enginev1.HostConfig, aliases []string) error {
	if len(aliases) == 0 {
		return nil
	}
	if !userNetwork(hc) {
		return errdefs.InvalidArgument(errors.New("network-scoped alias is supported only for containers in user defined networks"))
	}
	for _, a := range aliases {
		if a == "" {
			return errdefs.InvalidArgument(errors.New("invalid network alias: empty"))
		}
	}
	rec.Aliases = append([]string(nil), aliases...)
	return nil
}
