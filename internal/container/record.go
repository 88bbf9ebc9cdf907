package container

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Record is a container's metadata as engined keeps it. The shim holds the
// truth about running processes; Record holds what engined last learned.
type Record struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"` // with the leading "/"
	Created    time.Time       `json:"created"`
	Image      string          `json:"image"` // as the user gave it
	ImageID    string          `json:"imageID"`
	Path       string          `json:"path"`
	Args       []string        `json:"args"`
	Config     json.RawMessage `json:"config"`     // protojson ContainerConfig
	HostConfig json.RawMessage `json:"hostConfig"` // protojson HostConfig

	Status       string    `json:"status"` // created, running, paused, exited, dead
	Pid          int       `json:"pid,omitempty"`
	ExitCode     int       `json:"exitCode"`
	OOMKilled    bool      `json:"oomKilled,omitempty"`
	Error        string    `json:"error,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	RestartCount int       `json:"restartCount,omitempty"`
	// StopRequested marks an exit engined asked for (docker stop), which
	// restart policies do not restart.
	StopRequested bool `json:"stopRequested,omitempty"`
	// Networks are the container's endpoints by network name: with their
	// addresses while it runs, without once it stopped. SandboxKey is its
	// network namespace while it runs.
	// Not omitempty: a container disconnected from all its networks
	// ({}) is not one made before containers kept them (null).
	Networks   map[string]*NetworkEndpoint `json:"networks"`
	SandboxKey string                      `json:"sandboxKey,omitempty"`
	// PrimaryNetwork is the network mode's network, joined first.
	PrimaryNetwork string `json:"primaryNetwork,omitempty"`
	// RequestedIP and RequestedMAC are --ip and --mac-address of
	// records made before Networks kept them per network.
	RequestedIP  string `json:"requestedIP,omitempty"`
	RequestedMAC string `json:"requestedMAC,omitempty"`
	// Mounts are the container's volumes, binds and tmpfs mounts,
	// resolved at create; null in records from before engined kept them.
	Mounts []MountPoint `json:"mounts"`
	// Health is the health check's state (dockerd's State.Health): set
	// when a container with a health check starts, kept after it stops.
	Health *Health `json:"health,omitempty"`
}

// Health is a container's health check state.
type Health struct {
	Status        string         `json:"status"` // starting, healthy, unhealthy
	FailingStreak int            `json:"failingStreak"`
	Log           []HealthResult `json:"log"` // the last results, oldest first
}

// HealthResult is one probe's result.
type HealthResult struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exitCode"`
	Output   string    `json:"output"`
}

func (r *Record) config() (*enginev1.ContainerConfig, error) {
	c := &enginev1.ContainerConfig{}
	if len(r.Config) == 0 {
		return c, nil
	}
	return c, protojson.Unmarshal(r.Config, c)
}

func (r *Record) hostConfig() (*enginev1.HostConfig, error) {
	c := &enginev1.HostConfig{}
	if len(r.HostConfig) == 0 {
		return c, nil
	}
	return c, protojson.Unmarshal(r.HostConfig, c)
}
