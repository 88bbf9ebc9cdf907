package gateway

import (
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// engined is never part of a swarm. dockerd on a node outside one answers
// the swarm routes with 503 and these messages, which clients show and
// scripts match (moby daemon/cluster: errNoSwarm and errNoManager for a
// node that never joined one).
const (
	msgNoSwarm   = "This node is not part of a swarm"
	msgNoManager = `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`
	msgSwarmMode = "swarm mode is not supported by engined"
)

// swarmPrefixes are the route families of swarm mode.
var swarmPrefixes = []string{"/swarm", "/services", "/nodes", "/tasks", "/secrets", "/configs"}

func registerSwarm(mux *runtime.ServeMux) error {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete}
	for _, prefix := range swarmPrefixes {
		for _, m := range methods {
			if err := mux.HandlePath(m, prefix+"/{rest=**}", swarmUnavailable); err != nil {
				return err
			}
		}
	}
	return nil
}

// swarmUnavailable answers as dockerd does on a node outside a swarm:
// leaving is "not part of a swarm", everything else needs a manager.
// Creating or joining one is refused outright: engined has no swarm mode.
func swarmUnavailable(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	switch r.URL.Path {
	case "/swarm/leave":
		writeError(w, http.StatusServiceUnavailable, msgNoSwarm)
	case "/swarm/init", "/swarm/join":
		if r.Method == http.MethodPost {
			writeError(w, http.StatusNotImplemented, msgSwarmMode)
			return
		}
		writeError(w, http.StatusServiceUnavailable, msgNoManager)
	default:
		writeError(w, http.StatusServiceUnavailable, msgNoManager)
	}
}
