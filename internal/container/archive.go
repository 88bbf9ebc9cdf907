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
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/chunkio"
	"github.com/engined/engined/internal/compression"
	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// withFiles runs fn with the container's root filesystem mounted, and the
// container paused if it runs: no process of the container can then swap
// a directory for a symlink while a path is resolved and used (the
// docker cp race of CVE-2018-15664). It holds the container's lock, so
// the container cannot start or stop meanwhile.
func (s *Service) withFiles(ctx context.Context, ref string, fn func(rec *Record, rootfs string) error) error {
	rec, unlock, err := s.lockRecord(ref)
	if err != nil {
		return err
	}
	defer unlock()
	rootfs := filepath.Join(s.containerDir(rec.ID), "rootfs")
	if !isMounted(rootfs) {
		img, err := s.cfg.Images.Resolve(ctx, rec.ImageID)
		if err != nil {
			return fmt.Errorf("image of container: %w", err)
		}
		if _, err := s.mountRootfs(rec.ID, img.ChainIDs()); err != nil {
			return err
		}
		defer s.unmountRootfs(rec.ID)
	}
	if client := s.shim(rec.ID); client != nil && rec.Status == "running" {
		if _, err := client.Pause(ctx, &shimv1.PauseRequest{}); err == nil {
			defer client.Resume(context.WithoutCancel(ctx), &shimv1.ResumeRequest{})
		}
	}
	return fn(rec, rootfs)
}

// hostPath says which host tree the container's path p is in, and where
// in it: a bind mount's source when p is under its destination, the files
// engined mounts over the image's, or else the rootfs. The result is only
// a choice of tree; the caller opens it as an archive.Root and resolves
// rel there again on descriptors, so a symlink swapped meanwhile cannot
// lead outside it. The third result says whether the tree is the rootfs,
// the fourth whether it is a bind mount the container has read-only.
func (s *Service) hostPath(rec *Record, rootfs, p string) (root, rel string, inRootfs, readOnly bool, err error) {
	// The path as the container sees it once its symlinks are resolved,
	// to match the mounts against.
	inRoot, err := archive.Resolve(rootfs, p)
	if err != nil {
		return "", "", false, false, badPath(err, p, rec.ID)
	}
	r, err := filepath.Rel(rootfs, inRoot)
	if err != nil || strings.HasPrefix(r, "..") {
		return "", "", false, false, fmt.Errorf("resolve %s: outside the container", p)
	}
	clean := path.Clean("/" + filepath.ToSlash(r))
	for _, f := range []string{"hostname", "hosts", "resolv.conf"} {
		if clean == "/etc/"+f {
			return s.containerDir(rec.ID), f, false, false, nil
		}
	}
	// The deepest bind holding the path is the one the container sees
	// there: the runtime mounts them shallowest first.
	var best *MountPoint
	for _, m := range s.recMounts(rec) {
		if m.Type == "tmpfs" {
			continue // not seen from the host
		}
		dst := path.Clean(m.Destination)
		if rest, ok := strings.CutPrefix(clean, dst); ok && (rest == "" || rest[0] == '/') {
			if best == nil || len(dst) > len(path.Clean(best.Destination)) {
				best, rel = &m, rest
			}
		}
	}
	if best != nil && best.Type == "volume" {
		// The volume's tree; a subpath is resolved in it with the rest
		// of the path, so nothing in the volume leads outside it.
		return s.cfg.Volumes.Mountpoint(best.Name), path.Join("/", best.Subpath, rel), false, !best.RW, nil
	}
	if best != nil {
		ro := !best.RW
		// A bind of a file: its directory is the tree, the file in it
		// the path (anything below a file is not found there). The
		// source is the daemon's caller's host path, resolved as the
		// mount resolved it.
		if fi, err := os.Stat(best.Source); err == nil && !fi.IsDir() {
			src, err := filepath.EvalSymlinks(best.Source)
			if err != nil {
				return "", "", false, false, err
			}
			return filepath.Dir(src), filepath.Base(src) + rel, false, ro, nil
		}
		return best.Source, rel, false, ro, nil
	}
	return rootfs, p, true, false, nil
}

// inContainer runs fn with the tree that holds the container's path p
// open as a Root, and p's path in it.
func (s *Service) inContainer(rec *Record, rootfs, p string, fn func(root *archive.Root, rel string, inRootfs, readOnly bool) error) error {
	dir, rel, inRootfs, readOnly, err := s.hostPath(rec, rootfs, p)
	if err != nil {
		return err
	}
	root, err := archive.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fn(root, rel, inRootfs, readOnly)
}

// badPath turns an error looking up a path from the request into the
// client's error it is: a path that does not exist (or goes through a
// file) is 404, one too long or looping is 400; others stay the engine's.
func badPath(err error, p, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrInvalid), errors.Is(err, unix.ENOTDIR):
		return notInContainer(p, id)
	case errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.ELOOP):
		return errdefs.InvalidArgument(fmt.Errorf("invalid path %q: %w", clip(p, 200), err))
	}
	return err
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func notInContainer(p, id string) error {
	return errdefs.NotFound(fmt.Errorf("Could not find the file %s in container %s", p, id))
}

func (s *Service) ContainerArchiveStat(ctx context.Context, req *enginev1.ContainerArchiveRequest) (*enginev1.ContainerPathStat, error) {
	var st *enginev1.ContainerPathStat
	err := s.withFiles(ctx, req.GetId(), func(rec *Record, rootfs string) error {
		return s.inContainer(rec, rootfs, req.GetPath(), func(root *archive.Root, rel string, _, _ bool) error {
			var err error
			st, err = pathStat(req.GetPath(), root, rel, req.GetId())
			return err
		})
	})
	return st, err
}

func pathStat(p string, root *archive.Root, rel, id string) (*enginev1.ContainerPathStat, error) {
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, badPath(err, p, id)
	}
	st := &enginev1.ContainerPathStat{Name: path.Base(path.Clean("/" + p)), Size: fi.Size(), Mode: uint32(fi.Mode()),
		Mtime: timestamppb.New(fi.ModTime())}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := root.Readlink(rel)
		if err != nil {
			return nil, err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(path.Clean("/"+p)), target)
		}
		st.LinkTarget = target
	}
	return st, nil
}

func (s *Service) ContainerArchiveGet(req *enginev1.ContainerArchiveRequest, stream enginev1.Engine_ContainerArchiveGetServer) error {
	ctx := stream.Context()
	return s.withFiles(ctx, req.GetId(), func(rec *Record, rootfs string) error {
		return s.inContainer(rec, rootfs, req.GetPath(), func(root *archive.Root, rel string, _, _ bool) error {
			st, err := pathStat(req.GetPath(), root, rel, req.GetId())
			if err != nil {
				return err
			}
			w := chunkio.NewWriter(func(b []byte) error { return stream.Send(&enginev1.Chunk{Data: b}) })
			if err := root.Tar(ctx, w, rel, st.GetName()); err != nil {
				return fmt.Errorf("archive %s: %w", req.GetPath(), err)
			}
			return w.Flush()
		})
	})
}

func (s *Service) ContainerArchivePut(stream enginev1.Engine_ContainerArchivePutServer) error {
	ctx := stream.Context()
	first, opts, err := firstMessage(stream.Recv, (*enginev1.ContainerArchivePutRequest).GetOptions, "archive put")
	if err != nil {
		return err
	}
	body := chunkio.NewReader(first.GetData(), func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetData(), err
	})
	// The tar may come compressed (gzip, bzip2, xz, zstd), as dockerd
	// takes it: testcontainers and `docker cp - ctr:dir` of a .tgz send
	// one. Paths are still resolved by the archive package alone.
	tarStream, err := compression.Decompress(body)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("extract into %s: %w", opts.GetPath(), err))
	}
	defer tarStream.Close()
	err = s.withFiles(ctx, opts.GetId(), func(rec *Record, rootfs string) error {
		return s.inContainer(rec, rootfs, opts.GetPath(), func(root *archive.Root, rel string, inRootfs, readOnly bool) error {
			// The extraction point is followed, inside the container, as
			// the container would follow it.
			fi, err := root.Stat(rel)
			if err != nil {
				return badPath(err, opts.GetPath(), opts.GetId())
			}
			if !fi.IsDir() {
				return errdefs.InvalidArgument(fmt.Errorf("extraction point is not a directory: %s", opts.GetPath()))
			}
			if hc, _ := rec.hostConfig(); hc.GetReadonlyRootfs() && inRootfs {
				return errdefs.Forbidden(errors.New("container rootfs is marked read-only"))
			}
			if readOnly {
				// dockerd's checkWritablePath: a read-only bind is the
				// container's to read, and docker cp's too.
				return errdefs.InvalidArgument(errors.New("mounted volume is marked read-only"))
			}
			ao := archive.Options{NoOverwriteDirNonDir: opts.GetNoOverwriteDirNonDir()}
			if inRootfs {
				ao.Busy = s.mountPoints(rec, rootfs, root)
			}
			if !opts.GetCopyUidGid() {
				ao.Owner = &archive.Owner{}
			}
			if _, err := root.Apply(ctx, rel, tarStream, ao); err != nil {
				return errdefs.InvalidArgument(fmt.Errorf("extract into %s: %w", opts.GetPath(), err))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	// Drain what the archive did not use, so the client's send completes.
	io.Copy(io.Discard, body)
	return stream.SendAndClose(&enginev1.ContainerArchivePutResponse{})
}

// mountPoints are the inodes in the rootfs that the container's mounts
// sit on, and the directories holding them: extraction must not remove
// them, or the mounts vanish from the running container.
func (s *Service) mountPoints(rec *Record, rootfs string, root *archive.Root) map[archive.FileID]bool {
	dests := []string{"/dev", "/proc", "/sys", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", initInContainer}
	hc, _ := rec.hostConfig()
	for _, m := range s.recMounts(rec) {
		dests = append(dests, m.Destination)
	}
	for d := range hc.GetTmpfs() {
		dests = append(dests, d)
	}
	busy := map[archive.FileID]bool{}
	for _, d := range dests {
		resolved, err := archive.Resolve(rootfs, d)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(rootfs, resolved)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		ids, _ := root.Busy(rel) // a mount point not made yet holds nothing
		for _, id := range ids {
			busy[id] = true
		}
	}
	return busy
}

func (s *Service) ContainerExport(req *enginev1.ContainerExportRequest, stream enginev1.Engine_ContainerExportServer) error {
	ctx := stream.Context()
	return s.withFiles(ctx, req.GetId(), func(rec *Record, rootfs string) error {
		root, err := archive.OpenRoot(rootfs)
		if err != nil {
			return err
		}
		defer root.Close()
		w := chunkio.NewWriter(func(b []byte) error { return stream.Send(&enginev1.Chunk{Data: b}) })
		if err := root.Tar(ctx, w, "/", ""); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		return w.Flush()
	})
}

// Docker's change kinds.
const (
	changeModified = 0
	changeAdded    = 1
	changeDeleted  = 2
)

// ContainerChanges compares the container's own layer (its overlay upper
// directory) with its image: a name there that the image has is
// modified, one it lacks is added, and a whiteout is a deletion.
func (s *Service) ContainerChanges(ctx context.Context, req *enginev1.ContainerChangesRequest) (*enginev1.ContainerChangesResponse, error) {
	rec, err := s.get(req.GetId())
	if err != nil {
		return nil, err
	}
	img, err := s.cfg.Images.Resolve(ctx, rec.ImageID)
	if err != nil {
		return nil, fmt.Errorf("image of container: %w", err)
	}
	var lowers []*archive.Root // top layer first
	defer func() {
		for _, l := range lowers {
			l.Close()
		}
	}()
	for _, c := range img.ChainIDs() {
		l, err := archive.OpenRoot(s.cfg.Images.Snapshots().DiffPath(c))
		if err != nil {
			return nil, fmt.Errorf("layer of container's image: %w", err)
		}
		lowers = append(lowers, l)
	}
	upperDir := filepath.Join(s.containerDir(rec.ID), "fs", "upper")
	upper, err := archive.OpenRoot(upperDir)
	if errors.Is(err, os.ErrNotExist) {
		return &enginev1.ContainerChangesResponse{}, nil // never started: no changes
	}
	if err != nil {
		return nil, err
	}
	defer upper.Close()
	// Mount points the runtime creates are not the container's changes;
	// neither is a directory changed only by holding one.
	mounts := []string{"/dev", "/proc", "/sys", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}
	for _, m := range s.recMounts(rec) {
		mounts = append(mounts, path.Clean(m.Destination))
	}
	isMount := func(name string) bool {
		for _, m := range mounts {
			if name == m || strings.HasPrefix(name, m+"/") {
				return true
			}
		}
		return false
	}
	resp := &enginev1.ContainerChangesResponse{}
	// The upper directory is the container's to change while this runs:
	// the walk never follows a link, and lookups in the image layers are
	// resolved inside each layer.
	err = upper.Walk(ctx, "/", func(e *archive.Entry) error {
		if e.Path == "." {
			return nil
		}
		name := "/" + e.Path
		if isMount(name) {
			if e.Info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		kind := int32(changeAdded)
		if isWhiteout(e.Info) {
			kind = changeDeleted
		} else if inImage(lowers, name) {
			kind = changeModified
		}
		resp.Changes = append(resp.Changes, &enginev1.FilesystemChange{Path: name, Kind: kind})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Drop the modified directories nothing kept is under. The walk
	// lists a directory's descendants right after it, so going backwards
	// the next kept change says whether one is under it.
	var kept []*enginev1.FilesystemChange
	next := ""
	for i := len(resp.Changes) - 1; i >= 0; i-- {
		c := resp.Changes[i]
		if c.GetKind() == changeModified && !strings.HasPrefix(next, c.GetPath()+"/") {
			if fi, err := upper.Lstat(c.GetPath()); err == nil && fi.IsDir() {
				continue
			}
		}
		kept = append(kept, c)
		next = c.GetPath()
	}
	slices.Reverse(kept)
	resp.Changes = kept
	return resp, nil
}

// isWhiteout is overlayfs's mark of a deleted name: a 0/0 character
// device.
func isWhiteout(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&os.ModeCharDevice != 0 && st.Rdev == 0
}

// inImage says whether the image's layers (top first) have name: the
// first layer with it or a whiteout of it decides.
func inImage(lowers []*archive.Root, name string) bool {
	for _, l := range lowers {
		fi, err := l.Lstat(name)
		if err != nil {
			continue
		}
		return !isWhiteout(fi)
	}
	return false
}
