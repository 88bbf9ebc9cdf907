package image

import (
	"context"
	"fmt"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/filters"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Tag points repo[:tag] at the image name refers to.
func (s *Service) Tag(ctx context.Context, name, repo, tag string) error {
	if repo == "" {
		return errdefs.InvalidArgument(fmt.Errorf("repository name must not be empty"))
	}
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid reference format: %q: %w", repo, err))
	}
	if _, ok := named.(reference.Digested); ok {
		return errdefs.InvalidArgument(fmt.Errorf("refusing to create a tag with a digest reference"))
	}
	if tag != "" {
		if named, err = reference.WithTag(reference.TrimNamed(named), tag); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid tag %q: %w", tag, err))
		}
	}
	named = reference.TagNameOnly(named)
	return s.cfg.Store.Update(func(tx *bolt.Tx) error {
		rec, err := resolve(tx, name)
		if err != nil {
			return err
		}
		return setTag(tx, named.String(), rec.ID, s.now())
	})
}

// Remove untags or deletes an image as `docker rmi` does.
func (s *Service) Remove(ctx context.Context, name string, force, noprune bool) ([]*enginev1.ImageDeleteItem, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	var items []*enginev1.ImageDeleteItem
	var deleted *Record
	err := s.cfg.Store.Update(func(tx *bolt.Tx) error {
		items, deleted = nil, nil
		rec, err := resolve(tx, name)
		if err != nil {
			return err
		}
		byRef := ""
		if named, err := reference.ParseNormalizedNamed(name); err == nil && !isIDLike(name, rec) {
			if c, ok := named.(reference.Canonical); ok {
				byRef = reference.TrimNamed(c).String() + "@" + c.Digest().String()
			} else {
				byRef = reference.TagNameOnly(named).String()
			}
		}
		container, used := s.inUse(ctx, rec.ID)
		if byRef != "" {
			lastTag := len(without(rec.RepoTags, byRef)) == 0
			if used && lastTag && !force {
				return errdefs.Conflict(fmt.Errorf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", name, container, shortID(rec.ID)))
			}
			items = append(items, untag(tx, rec, byRef))
			// As dockerd: once a repository's last tag is gone, so are
			// its digest references.
			if named, err := reference.ParseNormalizedNamed(byRef); err == nil {
				if _, canonical := named.(reference.Canonical); !canonical && !hasRepo(rec.RepoTags, named.Name()) {
					for _, d := range append([]string(nil), rec.RepoDigests...) {
						if dn, err := reference.ParseNormalizedNamed(d); err == nil && dn.Name() == named.Name() {
							items = append(items, untag(tx, rec, d))
						}
					}
				}
			}
			if !lastTag || used {
				return putRecord(tx, rec)
			}
		} else {
			if len(rec.RepoTags) > 1 && !force {
				return errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortID(rec.ID)))
			}
			if used && !force {
				return errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by container %s", shortID(rec.ID), container))
			}
		}
		if used {
			// Forced: drop the names, keep the image for its container.
			for _, r := range append(append([]string(nil), rec.RepoTags...), rec.RepoDigests...) {
				items = append(items, untag(tx, rec, r))
			}
			return putRecord(tx, rec)
		}
		all, err := allRecords(tx)
		if err != nil {
			return err
		}
		children := func(id digest.Digest) bool {
			for _, r := range all {
				if r.Parent == id && r.ID != id {
					return true
				}
			}
			return false
		}
		if byRef == "" && children(rec.ID) {
			return errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (cannot be forced) - image has dependent child images", shortID(rec.ID)))
		}
		if byRef != "" && children(rec.ID) {
			// Untagged, kept for the images made from it, as dockerd.
			return putRecord(tx, rec)
		}
		for _, r := range append(append([]string(nil), rec.RepoTags...), rec.RepoDigests...) {
			items = append(items, untag(tx, rec, r))
		}
		if err := deleteRecord(tx, rec.ID); err != nil {
			return err
		}
		deleted = rec
		items = append(items, &enginev1.ImageDeleteItem{Deleted: rec.ID.String()})
		if noprune {
			return nil
		}
		// As dockerd: the untagged parents (a build's steps) go too, up
		// to one that is named, used or has other children.
		gone := map[digest.Digest]bool{rec.ID: true}
		for p := rec.Parent; p != ""; {
			parent, err := getRecord(tx, p)
			if err != nil || parent == nil || len(parent.RepoTags) > 0 || len(parent.RepoDigests) > 0 {
				break
			}
			if _, used := s.inUse(ctx, parent.ID); used {
				break
			}
			other := false
			for _, r := range all {
				if r.Parent == parent.ID && !gone[r.ID] {
					other = true
				}
			}
			if other {
				break
			}
			if err := deleteRecord(tx, parent.ID); err != nil {
				return err
			}
			gone[parent.ID] = true
			items = append(items, &enginev1.ImageDeleteItem{Deleted: parent.ID.String()})
			p = parent.Parent
		}
		return nil
	})
	if err != nil || deleted == nil || noprune {
		return items, err
	}
	if _, err := s.collectGarbageLocked(ctx); err != nil {
		return items, fmt.Errorf("image %s deleted, but freeing its layers failed: %w", deleted.ID, err)
	}
	return items, nil
}

// hasRepo reports a reference of repository name among refs.
func hasRepo(refs []string, name string) bool {
	for _, r := range refs {
		if n, err := reference.ParseNormalizedNamed(r); err == nil && n.Name() == name {
			return true
		}
	}
	return false
}

// isIDLike reports that name was an ID or ID prefix of rec, not a name.
func isIDLike(name string, rec *Record) bool {
	if d, err := digest.Parse(name); err == nil {
		return d == rec.ID
	}
	return isHex(name) && len(name) <= 64 && len(name) > 0 && rec.ID.Encoded()[:len(name)] == name
}

func untag(tx *bolt.Tx, rec *Record, ref string) *enginev1.ImageDeleteItem {
	rec.RepoTags = without(rec.RepoTags, ref)
	rec.RepoDigests = without(rec.RepoDigests, ref)
	removeTag(tx, ref)
	return &enginev1.ImageDeleteItem{Untagged: familiar(ref)}
}

func familiar(ref string) string {
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		return reference.FamiliarString(named)
	}
	return ref
}

func (s *Service) inUse(ctx context.Context, id digest.Digest) (string, bool) {
	if s.cfg.InUse == nil {
		return "", false
	}
	return s.cfg.InUse(ctx, id)
}

// Prune deletes dangling images, or with dangling=false every image no
// container uses.
func (s *Service) Prune(ctx context.Context, filterJSON string) (*enginev1.ImagePruneResponse, error) {
	args, err := filters.Parse(filterJSON, "dangling", "label", "until")
	if err != nil {
		return nil, err
	}
	danglingOnly, err := args.Bool("dangling", true)
	if err != nil {
		return nil, err
	}
	var until time.Time
	if v := args.Get("until"); len(v) > 0 {
		if until, err = filters.ParseTime(v[0], s.now()); err != nil {
			return nil, err
		}
	}
	var recs []*Record
	if err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		recs, err = allRecords(tx)
		return err
	}); err != nil {
		return nil, err
	}
	resp := &enginev1.ImagePruneResponse{}
	before := s.diskUsage()
	hasChild := map[digest.Digest]bool{}
	for _, r := range recs {
		if r.Parent != "" {
			hasChild[r.Parent] = true
		}
	}
	for _, r := range recs {
		if danglingOnly && len(r.RepoTags) > 0 {
			continue
		}
		// As dockerd: only images without children are pruned; their
		// untagged parents go with them.
		if hasChild[r.ID] {
			continue
		}
		if _, used := s.inUse(ctx, r.ID); used {
			continue
		}
		if !until.IsZero() && !r.Created.Before(until) {
			continue
		}
		if args.Has("label") && !args.MatchLabels("label", s.labels(r)) {
			continue
		}
		items, err := s.Remove(ctx, r.ID.String(), true, false)
		if err != nil {
			return nil, err
		}
		resp.Deleted = append(resp.Deleted, items...)
	}
	resp.SpaceReclaimed = max(before-s.diskUsage(), 0)
	return resp, nil
}

// collectGarbage removes blobs and snapshots no image references.
func (s *Service) collectGarbage(ctx context.Context) (int64, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	return s.collectGarbageLocked(ctx)
}

func (s *Service) collectGarbageLocked(ctx context.Context) (int64, error) {
	blobs := map[digest.Digest]bool{}
	chains := map[digest.Digest]bool{}
	err := s.cfg.Store.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			blobs[r.ID], blobs[r.Manifest] = true, true
			for _, l := range r.Layers {
				blobs[l.Digest], chains[l.ChainID] = true, true
			}
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var freed int64
	err = s.content.Walk(func(d digest.Digest) error {
		if blobs[d] {
			return nil
		}
		if n, err := s.content.Size(d); err == nil {
			freed += n
		}
		s.configs.Delete(d)
		return s.content.Delete(d)
	})
	if err != nil {
		return freed, err
	}
	err = s.snaps.Walk(func(c digest.Digest) error {
		if chains[c] {
			return nil
		}
		freed += s.unpackedSize(c)
		return s.snaps.Remove(c)
	})
	return freed, err
}

// diskUsage is the bytes of blobs and unpacked layers.
func (s *Service) diskUsage() int64 {
	var n int64
	s.content.Walk(func(d digest.Digest) error {
		if sz, err := s.content.Size(d); err == nil {
			n += sz
		}
		return nil
	})
	s.snaps.Walk(func(c digest.Digest) error {
		n += s.unpackedSize(c)
		return nil
	})
	return n
}
