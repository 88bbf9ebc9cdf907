package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/logs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// The files and directories the runtime mounts over in every container:
// the mount points it creates for them are not the container's changes.
var runtimeMountDirs = []string{"/dev", "/proc", "/sys"}
var runtimeMountFiles = map[string]bool{"/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true}

// LayerDiff writes the container's own layer (its overlay upper
// directory) to w as an image layer and returns the number of entries,
// as dockerd's commit does: mount points the runtime made are left out.
func (s *Service) LayerDiff(ctx context.Context, ref string, w io.Writer) (int, error) {
	rec, err := s.get(ref)
	if err != nil {
		return 0, err
	}
	upperDir := filepath.Join(s.containerDir(rec.ID), "fs", "upper")
	if _, err := os.Lstat(upperDir); errors.Is(err, os.ErrNotExist) {
		// Never started: no changes, an empty layer.
		return 0, nil
	}
	// What is mounted over (binds, volumes, tmpfs) is not the container's.
	var mounted []string
	for _, m := range s.recMounts(rec) {
		mounted = append(mounted, path.Clean(m.Destination))
	}
	return TarUpper(ctx, upperDir, w, mounted)
}

// TarUpper writes an overlay upper directory as an image layer, leaving
// out the runtime's mount points and the extra ones given.
func TarUpper(ctx context.Context, upperDir string, w io.Writer, extraMounts []string) (int, error) {
	upper, err := archive.OpenRoot(upperDir)
	if err != nil {
		return 0, err
	}
	defer upper.Close()
	// /etc holding nothing but the runtime's mount point files was made
	// (or copied up) for them.
	etcOnlyMounts := false
	if fi, err := upper.Lstat("/etc"); err == nil && fi.IsDir() {
		etcOnlyMounts = true
		err := upper.Walk(ctx, "/etc", func(e *archive.Entry) error {
			if e.Path == "." {
				return nil
			}
			if !runtimeMountFiles["/etc/"+e.Path] || !e.Info.Mode().IsRegular() || e.Info.Size() != 0 {
				etcOnlyMounts = false
				return fs.SkipAll
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.SkipAll) {
			return 0, err
		}
	}
	skip := func(name string, fi fs.FileInfo) bool {
		for _, m := range append(runtimeMountDirs, extraMounts...) {
			if name == m || len(name) > len(m) && name[:len(m)+1] == m+"/" {
				return true
			}
		}
		if name == "/etc" && etcOnlyMounts {
			return true
		}
		return runtimeMountFiles[name] && fi.Mode().IsRegular() && fi.Size() == 0
	}
	return upper.TarLayer(ctx, w, skip)
}

// RunAttached starts a created container, sends its output (stdout 1,
// stderr 2) to out until it exits, and returns its exit code. When ctx
// ends first the container is killed and ctx's error returned.
func (s *Service) RunAttached(ctx context.Context, id string, out func(stream int32, data []byte) error) (int, error) {
	if err := s.Start(ctx, id); err != nil {
		return 0, err
	}
	rec, err := s.get(id)
	if err != nil {
		return 0, err
	}
	hc, _ := rec.hostConfig()
	maxSize, maxFiles, err := logRotation(hc.GetLogConfig())
	if err != nil {
		return 0, err
	}
	readErr := logs.Read(ctx, logs.Config{Path: s.logPath(id), MaxSize: maxSize, MaxFiles: maxFiles},
		logs.ReadOptions{Stdout: true, Stderr: true, Tail: -1, Follow: true}, s.exitedSignal(id), func(e logs.Entry) error {
			n := int32(1)
			if e.Stream == "stderr" {
				n = 2
			}
			return out(n, e.Line)
		})
	if readErr != nil {
		if kerr := s.Kill(context.WithoutCancel(ctx), id, "KILL"); kerr != nil && !isNotRunning(kerr) {
			s.cfg.Logger.Warn("kill build container", "id", id, "err", kerr)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("container output: %w", readErr)
	}
	if err := s.waitExited(ctx, id, s.changes(id), 0); err != nil {
		return 0, err
	}
	rec, err = s.get(id)
	if err != nil {
		return 0, err
	}
	return rec.ExitCode, nil
}

// CommitSource is what docker commit needs of a container.
type CommitSource struct {
	ID, Name string
	ImageID  string
	Config   *enginev1.ContainerConfig
	Running  bool
	Paused   bool
}

// ForCommit describes the container ref for a commit.
func (s *Service) ForCommit(ref string) (*CommitSource, error) {
	rec, err := s.get(ref)
	if err != nil {
		return nil, err
	}
	cfg, err := rec.config()
	if err != nil {
		return nil, err
	}
	return &CommitSource{ID: rec.ID, Name: rec.Name, ImageID: rec.ImageID, Config: cfg,
		Running: rec.Status == "running" || rec.Status == "paused", Paused: rec.Status == "paused"}, nil
}
