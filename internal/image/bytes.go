package image

import (
	"bytes"
	"path/filepath"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// tmpDir holds uploads (load, import) while they are read.
func (s *Service) tmpDir() string { return filepath.Join(s.cfg.Root, "tmp") }
