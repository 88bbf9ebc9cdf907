package network

import (
	"fmt"
	"strconv"

	"github.com/engined/engined/internal/errdefs"
)

// The bridge driver's options (docker network create -o), as dockerd's.
const (
	bridgeNameOption = "com.docker.network.bridge.name"
	iccOption        = "com.docker.network.bridge.enable_icc"
	masqOption       = "com.docker.network.bridge.enable_ip_masquerade"
	mtuOption        = "com.docker.network.driver.mtu"
)

// checkOptions refuses the options engined does not apply and values
// that are not what the option takes.
func checkOptions(opts map[string]string) error {
	for k, v := range opts {
		switch k {
		case bridgeNameOption:
		case iccOption, masqOption:
			if _, err := strconv.ParseBool(v); err != nil {
				return errdefs.InvalidArgument(fmt.Errorf("invalid value %q for network option %s: want true or false", v, k))
			}
		case mtuOption:
			if n, err := strconv.Atoi(v); err != nil || n < 68 || n > 65535 {
				return errdefs.InvalidArgument(fmt.Errorf("invalid value %q for network option %s: want an MTU between 68 and 65535", v, k))
			}
		default:
			return errdefs.InvalidArgument(fmt.Errorf("network option %q is not supported yet (only %s, %s, %s and %s)", k,
				bridgeNameOption, iccOption, masqOption, mtuOption))
		}
	}
	return nil
}

// boolOption is a bool option's value, def when not set.
func (n *Network) boolOption(key string, def bool) bool {
	if v, err := strconv.ParseBool(n.Options[key]); err == nil {
		return v
	}
	return def
}

// icc: containers on the network may talk to each other directly.
func (n *Network) icc() bool { return n.boolOption(iccOption, true) }

// masquerade: traffic leaving the network is masqueraded (with the
// engine's --ip-masq on).
func (n *Network) masquerade() bool { return n.boolOption(masqOption, true) }

// mtu of the network's bridge and veths; def: the engine's --mtu.
func (n *Network) mtu(def int) int {
	if v, err := strconv.Atoi(n.Options[mtuOption]); err == nil {
		return v
	}
	return def
}
