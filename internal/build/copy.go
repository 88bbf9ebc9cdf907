package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/engined/engined/internal/archive"
	"github.com/engined/engined/internal/compression"
	"github.com/engined/engined/internal/container"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/image"
)

type copyRequest struct {
	name  string // COPY or ADD
	sd    instructions.SourcesAndDest
	chown string
	from  string
	add   bool
}

// source is one resolved source of a COPY.
type source struct {
	rel  string // inside the source root, symlinks resolved
	orig string // as written (its base names a copied file)
	dir  bool
	hash string
}

func (b *builder) release(l *image.RWLayer) {
	if err := l.Release(); err != nil {
		b.svc.cfg.Logger.Warn("release build layer", "err", err)
	}
}

func tarUpper(ctx context.Context, upper string, w io.Writer) (int, error) {
	return container.TarUpper(ctx, upper, w, nil)
}

// copy is COPY and ADD: sources from the context or, with --from, a
// stage or image, resolved inside their root; the destination inside the
// new layer's.
func (b *builder) copy(ctx context.Context, st *state, req copyRequest) error {
	if len(req.sd.SourceContents) > 0 {
		return errdefs.InvalidArgument(fmt.Errorf("heredocs in %s require BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled", req.name))
	}
	srcRoot := b.context
	preserveOwner := false
	if req.from != "" {
		rec, err := b.fromImage(ctx, req.from)
		if err != nil {
			return fmt.Errorf("invalid from flag value %s: %w", req.from, err)
		}
		l, err := b.svc.cfg.Images.NewRWLayer(rec)
		if err != nil {
			return err
		}
		defer b.release(l)
		srcRoot = l.Rootfs
		preserveOwner = req.chown == ""
	}
	var sources []source
	for _, orig := range req.sd.SourcePaths {
		if strings.HasPrefix(orig, "http://") || strings.HasPrefix(orig, "https://") || strings.HasPrefix(orig, "git@") {
			if !req.add {
				return errors.New("source can't be a URL for COPY")
			}
			return errdefs.InvalidArgument(fmt.Errorf("ADD failed: downloading %s: remote sources are not supported by this builder", orig))
		}
		found, err := resolveSources(srcRoot, orig)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				what := "file not found in build context or excluded by .dockerignore: "
				if req.from != "" {
					what = ""
				}
				return fmt.Errorf("%s failed: %sstat %s: file does not exist", req.name, what, strings.TrimPrefix(path.Clean("/"+orig), "/"))
			}
			return fmt.Errorf("%s failed: %w", req.name, err)
		}
		sources = append(sources, found...)
	}
	if len(sources) == 0 {
		return fmt.Errorf("%s failed: no source files were specified", req.name)
	}
	dest := req.sd.DestPath
	if len(sources) > 1 && !strings.HasSuffix(dest, "/") {
		return fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /", req.name)
	}
	var hashes []string
	for i := range sources {
		h, err := hashSource(ctx, srcRoot, &sources[i], preserveOwner)
		if err != nil {
			return fmt.Errorf("%s failed: %w", req.name, err)
		}
		hashes = append(hashes, h)
	}
	srcHash := hashes[0]
	if len(hashes) > 1 {
		sum := sha256.Sum256([]byte(strings.Join(hashes, ",")))
		srcHash = "multi:" + hex.EncodeToString(sum[:])
	}
	chownComment := ""
	if req.chown != "" {
		chownComment = "--chown=" + req.chown + " "
	}
	key := copyConfig(&st.cfg)
	key.Cmd = append(getShell(&st.cfg), fmt.Sprintf("#(nop) %s %s%s in %s ", req.name, chownComment, srcHash, dest))
	if hit, err := b.probe(ctx, st, key); err != nil || hit {
		return err
	}
	layer, err := b.svc.cfg.Images.NewRWLayer(st.img)
	if err != nil {
		return err
	}
	defer b.release(layer)
	destPath := dest
	if !path.IsAbs(destPath) {
		destPath = path.Join("/", st.cfg.WorkingDir, destPath)
		if strings.HasSuffix(dest, "/") || dest == "." {
			destPath += "/"
		}
	}
	// The destination's symlinks are followed inside the image, as
	// dockerd resolves it (scoped to the root): a link an earlier step
	// made names a path of the image, never of the host. The layer is
	// this build's own, so the path stays what it resolved to.
	trailing := strings.HasSuffix(destPath, "/")
	resolved, err := securejoin.SecureJoin(layer.Rootfs, destPath)
	if err != nil {
		return fmt.Errorf("resolve %s destination %s: %w", req.name, dest, err)
	}
	rel, err := filepath.Rel(layer.Rootfs, resolved)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("resolve %s destination %s: outside the image", req.name, dest)
	}
	destPath = "/" + filepath.ToSlash(rel)
	if trailing && destPath != "/" {
		destPath += "/"
	}
	dst, err := archive.OpenRoot(layer.Rootfs)
	if err != nil {
		return err
	}
	defer dst.Close()
	var owner *archive.Owner
	if !preserveOwner {
		owner = &archive.Owner{}
		if req.chown != "" {
			if owner, err = parseChown(dst, req.chown); err != nil {
				return fmt.Errorf("unable to convert uid/gid chown string to host mapping: %w", err)
			}
		}
	}
	src, err := archive.OpenRoot(srcRoot)
	if err != nil {
		return err
	}
	defer src.Close()
	for _, s := range sources {
		if err := copyOne(ctx, src, dst, s, destPath, owner, req.add); err != nil {
			return fmt.Errorf("failed to copy files: %w", err)
		}
	}
	return b.commit(ctx, st, key, func(w io.Writer) (int, error) { return tarUpper(ctx, layer.Upper, w) }, "")
}

// fromImage is COPY --from's image: a stage by name or index, else an
// image (pulled if missing).
func (b *builder) fromImage(ctx context.Context, ref string) (*image.Record, error) {
	for _, s := range b.stages {
		if s.name != "" && strings.EqualFold(s.name, ref) {
			return b.svc.cfg.Images.Resolve(ctx, s.imageID)
		}
	}
	if n, err := strconv.Atoi(ref); err == nil {
		if n == len(b.stages) {
			return nil, errors.New("refers to current build stage")
		}
		if n < 0 || n > len(b.stages) {
			return nil, errors.New("index out of bounds")
		}
		return b.svc.cfg.Images.Resolve(ctx, b.stages[n].imageID)
	}
	return b.baseImage(ctx, ref, "")
}

// resolveSources expands a source (globs included) inside root. Paths
// are resolved as a process chrooted at root would (a symlink to
// /etc/passwd names root's etc/passwd), so no source leads out of it.
func resolveSources(root, orig string) ([]source, error) {
	clean := strings.TrimPrefix(path.Clean("/"+orig), "/")
	if strings.ContainsAny(clean, "*?[") {
		var out []source
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if rel == "." {
				return nil
			}
			if ok, _ := path.Match(clean, filepath.ToSlash(rel)); ok {
				s, err := resolveOne(root, filepath.ToSlash(rel))
				if err != nil {
					return err
				}
				out = append(out, s)
				if d.IsDir() {
					return fs.SkipDir
				}
			}
			return nil
		})
		return out, err
	}
	if clean == "" {
		clean = "."
	}
	s, err := resolveOne(root, clean)
	if err != nil {
		return nil, err
	}
	return []source{s}, nil
}

func resolveOne(root, rel string) (source, error) {
	full, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return source{}, err
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return source{}, err
	}
	r, _ := filepath.Rel(root, full)
	return source{rel: filepath.ToSlash(r), orig: rel, dir: fi.IsDir()}, nil
}

// hashSource is the cache's name of a source's content: names, modes,
// link targets and file contents (not times; owners only when they are
// kept), as dockerd's hash leaves times out.
func hashSource(ctx context.Context, root string, s *source, withOwner bool) (string, error) {
	r, err := archive.OpenRoot(root)
	if err != nil {
		return "", err
	}
	defer r.Close()
	var parts []string
	err = r.Walk(ctx, s.rel, func(e *archive.Entry) error {
		h := sha256.New()
		st := e.Info.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", e.Path, e.Info.Mode(), e.Info.Size())
		if withOwner {
			fmt.Fprintf(h, "%d:%d\x00", st.Uid, st.Gid)
		}
		switch {
		case e.Info.Mode()&os.ModeSymlink != 0:
			l, err := e.Readlink()
			if err != nil {
				return err
			}
			io.WriteString(h, l)
		case e.Info.Mode().IsRegular():
			f, err := e.Open()
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		parts = append(parts, hex.EncodeToString(h.Sum(nil)))
		return nil
	})
	if err != nil {
		return "", err
	}
	if !s.dir {
		s.hash = "file:" + parts[0]
		return s.hash, nil
	}
	sort.Strings(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
	s.hash = "dir:" + hex.EncodeToString(sum[:])
	return s.hash, nil
}

// copyOne copies a source to dest in the new layer: a directory's
// content into dest, a file into dest (a directory when it ends in "/"
// or is one) or as dest; ADD unpacks a local tar archive into dest.
func copyOne(ctx context.Context, src, dst *archive.Root, s source, dest string, owner *archive.Owner, add bool) error {
	destIsDir := strings.HasSuffix(dest, "/")
	dest = path.Clean(dest)
	if fi, err := dst.Stat(dest); err == nil && fi.IsDir() {
		destIsDir = true
	}
	opts := archive.Options{Owner: owner}
	if s.dir {
		if err := mkdirRoot(ctx, dst, dest, owner); err != nil {
			return err
		}
		return pipeTar(ctx, func(w io.Writer) error { return src.Tar(ctx, w, s.rel, "") }, func(r io.Reader) error {
			_, err := dst.Apply(ctx, dest, r, opts)
			return err
		})
	}
	if add {
		if ok, err := applyArchive(ctx, src, dst, s.rel, dest); ok || err != nil {
			return err
		}
	}
	dir, name := dest, path.Base(s.orig)
	if !destIsDir {
		dir, name = path.Dir(dest), path.Base(dest)
	}
	if err := mkdirRoot(ctx, dst, dir, owner); err != nil {
		return err
	}
	return pipeTar(ctx, func(w io.Writer) error { return src.Tar(ctx, w, s.rel, name) }, func(r io.Reader) error {
		_, err := dst.Apply(ctx, dir, r, opts)
		return err
	})
}

// applyArchive unpacks rel when it is a tar (plain or compressed), as
// ADD does with local archives; ok false: it is not one.
func applyArchive(ctx context.Context, src, dst *archive.Root, rel, dest string) (bool, error) {
	f, err := src.OpenFile(rel)
	if err != nil {
		return false, err
	}
	defer f.Close()
	plain, err := compression.Decompress(bufio.NewReader(f))
	if err != nil {
		return false, nil
	}
	defer plain.Close()
	br := bufio.NewReaderSize(plain, 64<<10)
	head, _ := br.Peek(512)
	if len(head) < 512 || !isTarHeader(head) {
		return false, nil
	}
	if err := mkdirRoot(ctx, dst, dest, nil); err != nil {
		return true, err
	}
	_, err = dst.Apply(ctx, dest, br, archive.Options{})
	return true, err
}

func isTarHeader(h []byte) bool {
	if bytes.Equal(h[257:262], []byte("ustar")) {
		return true
	}
	_, err := tar.NewReader(bytes.NewReader(append(append([]byte(nil), h...), make([]byte, 1024)...))).Next()
	return err == nil
}

// pipeTar connects a tar writer to a reader; both end before it returns.
func pipeTar(ctx context.Context, write func(io.Writer) error, read func(io.Reader) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	rerr := read(pr)
	pr.CloseWithError(errors.New("reader ended"))
	werr := <-done
	if rerr != nil {
		return rerr
	}
	if werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		return werr
	}
	return nil
}

// mkdirRoot makes dir (and its parents) inside the root unless it exists.
func mkdirRoot(ctx context.Context, r *archive.Root, dir string, owner *archive.Owner) error {
	dir = path.Clean("/" + dir)
	if dir == "/" {
		return nil
	}
	if fi, err := r.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755})
	tw.Close()
	_, err := r.Apply(ctx, "/", &buf, archive.Options{Owner: owner})
	return err
}

func mkdirInRoot(ctx context.Context, rootfs, dir string, owner *archive.Owner) error {
	r, err := archive.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer r.Close()
	return mkdirRoot(ctx, r, dir, owner)
}

// parseChown resolves --chown's user[:group] with the image's
// /etc/passwd and /etc/group.
func parseChown(root *archive.Root, spec string) (*archive.Owner, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, err := lookupID(root, "/etc/passwd", user, "user")
	if err != nil {
		return nil, err
	}
	gid := uid
	if hasGroup {
		if gid, err = lookupID(root, "/etc/group", group, "group"); err != nil {
			return nil, err
		}
	} else if _, numeric := strconv.Atoi(user); numeric != nil {
		// A user name without a group: the user's primary group.
		if g, err := primaryGroup(root, user); err == nil {
			gid = g
		}
	}
	return &archive.Owner{UID: uid, GID: gid}, nil
}

func lookupID(root *archive.Root, file, name, kind string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	f, err := root.OpenFile(file)
	if err != nil {
		return 0, fmt.Errorf("can't find uid for %s %s: no such %s: %s", kind, name, kind, name)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == name {
			return strconv.Atoi(fields[2])
		}
	}
	return 0, fmt.Errorf("can't find uid for %s %s: no such %s: %s", kind, name, kind, name)
}

func primaryGroup(root *archive.Root, user string) (int, error) {
	f, err := root.OpenFile("/etc/passwd")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 4 && fields[0] == user {
			return strconv.Atoi(fields[3])
		}
	}
	return 0, errors.New("no such user")
}
