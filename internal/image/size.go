package image

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The unpacked size of a snapshot is kept beside its diff directory so
// listing images does not walk their files.
func writeSize(diffDir string, n int64) error {
	return os.WriteFile(filepath.Join(filepath.Dir(diffDir), "size"), []byte(strconv.FormatInt(n, 10)), 0o600)
}

func (s *Service) unpackedSize(chainID digest.Digest) int64 {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(s.snaps.DiffPath(chainID)), "size"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
