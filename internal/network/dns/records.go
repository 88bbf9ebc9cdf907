package dns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RecordsFile is the records file's name in the resolver's root.
const RecordsFile = "records.json"

// Records is the resolver's whole state, written by engined's network
// manager after every change of endpoints and read by the resolver at
// its start and at each reload. It is a function of the stored networks
// and endpoints only, so whoever changes endpoints just writes it anew.
type Records struct {
	Networks  []Network  `json:"networks"`
	Endpoints []Endpoint `json:"endpoints"`
	Sandboxes []Sandbox  `json:"sandboxes"`
}

// Network is a user-defined network: the only kind with names.
type Network struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Endpoint is a container's address on a network and the names it has
// there (dockerd's DNSNames: name, aliases, short id, hostname; the
// first is the one reverse lookups give).
type Endpoint struct {
	ContainerID string   `json:"container_id"`
	NetworkID   string   `json:"network_id"`
	Names       []string `json:"names"`
	IPv4        string   `json:"ipv4"`
}

// Sandbox is a container's network namespace that the resolver serves:
// one per container with an endpoint on a user-defined network.
type Sandbox struct {
	ContainerID string `json:"container_id"`
	// NetNS is the namespace's path (/proc/PID/ns/net of the
	// container's init); NetNSInode is the inode it had, so a path whose
	// pid died and came back as another process is never entered.
	NetNS      string     `json:"netns"`
	NetNSInode uint64     `json:"netns_inode"`
	Upstreams  []Upstream `json:"upstreams,omitempty"`
}

// Upstream is a server queries for other names go to. HostNS: query it
// from the host's namespace (the host's resolv.conf servers), else from
// the container's (--dns), as dockerd does.
type Upstream struct {
	Addr   string `json:"addr"` // host:port
	HostNS bool   `json:"host_ns,omitempty"`
}

// WriteRecords writes the file atomically (temporary file, rename), so
// the resolver never reads half of it. No fsync: the file is runtime
// state under the exec root (tmpfs at /run), worthless after a crash
// that would lose it, and an fsync on a disk-backed root costs
// milliseconds on every container start.
func WriteRecords(root string, r *Records) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("dns records: %w", err)
	}
	path := filepath.Join(root, RecordsFile)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil // engined's start, most often: nothing changed meanwhile
	}
	f, err := os.CreateTemp(root, RecordsFile+".tmp*")
	if err != nil {
		return fmt.Errorf("dns records: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("dns records: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("dns records: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("dns records: %w", err)
	}
	return nil
}

// ReadRecords reads the file; a missing one is empty records.
func ReadRecords(root string) (*Records, error) {
	data, err := os.ReadFile(filepath.Join(root, RecordsFile))
	if os.IsNotExist(err) {
		return &Records{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns records: %w", err)
	}
	var r Records
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("dns records %s: %w", filepath.Join(root, RecordsFile), err)
	}
	return &r, nil
}
