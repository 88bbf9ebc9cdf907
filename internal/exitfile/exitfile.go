// Package exitfile is the shim's record of a container's exit on disk,
// written before the exit is reported so that none is lost while engined
// is down. The shim writes it and engined reads it; it is its own package
// so that engined need not link the shim (and libcontainer) to read it.
package exitfile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// Name is the file's name in the container's state directory.
const Name = "exit.json"

// Write records the exit status atomically.
func Write(dir string, exit *shimv1.ExitStatus) error {
	b, err := json.Marshal(exit)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, Name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, Name))
}

// Read reads a recorded exit status; nil if none was written.
func Read(dir string) (*shimv1.ExitStatus, error) {
	b, err := os.ReadFile(filepath.Join(dir, Name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e shimv1.ExitStatus
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
