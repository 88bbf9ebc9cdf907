package image

import (
	"context"
	"fmt"
	"sort"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Push uploads name[:tag] (every tag of the repository when tag is empty)
// to its registry, reporting progress as docker push shows it.
func (s *Service) Push(ctx context.Context, req *enginev1.ImagePushRequest, emit Emit) error {
	named, err := reference.ParseNormalizedNamed(req.GetName())
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid reference format: %q: %w", req.GetName(), err))
	}
	var tags []string
	if t, ok := named.(reference.Tagged); ok {
		tags = []string{t.Tag()}
	} else if req.GetTag() != "" {
		tags = []string{req.GetTag()}
	}
	repoName := reference.TrimNamed(named)
	type target struct {
		tag string
		rec *Record
	}
	var targets []target
	err = s.cfg.Store.View(func(tx *bolt.Tx) error {
		if len(tags) == 0 {
			recs, err := allRecords(tx)
			if err != nil {
				return err
			}
			for _, r := range recs {
				for _, rt := range r.RepoTags {
					if n, err := reference.ParseNamed(rt); err == nil && n.Name() == repoName.Name() {
						targets = append(targets, target{n.(reference.Tagged).Tag(), r})
					}
				}
			}
			sort.Slice(targets, func(i, j int) bool { return targets[i].tag < targets[j].tag })
			if len(targets) == 0 {
				return errdefs.NotFound(fmt.Errorf("An image does not exist locally with the tag: %s", reference.FamiliarName(repoName)))
			}
			return nil
		}
		tagged, err := reference.WithTag(repoName, tags[0])
		if err != nil {
			return errdefs.InvalidArgument(err)
		}
		rec, err := resolve(tx, tagged.String())
		if err != nil {
			return errdefs.NotFound(fmt.Errorf("An image does not exist locally with the tag: %s", reference.FamiliarString(tagged)))
		}
		targets = append(targets, target{tags[0], rec})
		return nil
	})
	if err != nil {
		return err
	}
	var opts []name.Option
	if s.isInsecure(reference.Domain(repoName)) {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(reference.Domain(repoName)+"/"+reference.Path(repoName), opts...)
	if err != nil {
		return errdefs.InvalidArgument(err)
	}
	ropts := s.remoteOptions(ctx, req.GetAuth(), nil)
	e := &serialEmit{emit: emit}
	if err := e.send(&enginev1.Progress{Status: "The push refers to repository [" + repoName.Name() + "]"}); err != nil {
		return err
	}
	for _, tg := range targets {
		img, err := s.v1Image(tg.rec)
		if err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for i := len(layers) - 1; i >= 0; i-- {
			if err := e.send(&enginev1.Progress{Id: shortHex(tg.rec.Layers[i].Digest), Status: "Preparing"}); err != nil {
				return err
			}
		}
		for i := len(layers) - 1; i >= 0; i-- {
			l, id := layers[i], shortHex(tg.rec.Layers[i].Digest)
			updates := make(chan v1.Update, 16)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for u := range updates {
					e.send(&enginev1.Progress{Id: id, Status: "Pushing", Current: u.Complete, Total: u.Total})
				}
			}()
			err := remote.WriteLayer(repo, l, append(ropts, remote.WithProgress(updates))...)
			<-done
			if err != nil {
				return pushError(repoName, err)
			}
			if err := e.send(&enginev1.Progress{Id: id, Status: "Pushed"}); err != nil {
				return err
			}
		}
		if err := remote.Write(repo.Tag(tg.tag), img, ropts...); err != nil {
			return pushError(repoName, err)
		}
		manifest, _ := img.RawManifest()
		d, _ := img.Digest()
		if err := e.send(&enginev1.Progress{Status: fmt.Sprintf("%s: digest: %s size: %d", tg.tag, d, len(manifest))}); err != nil {
			return err
		}
		if err := e.send(&enginev1.Progress{Aux: &enginev1.PushResult{Tag: tg.tag, Digest: d.String(), Size: int64(len(manifest))}}); err != nil {
			return err
		}
		repoDigest := repoName.String() + "@" + d.String()
		s.cfg.Store.Update(func(tx *bolt.Tx) error {
			r, err := getRecord(tx, tg.rec.ID)
			if err != nil || r == nil || contains(r.RepoDigests, repoDigest) {
				return err
			}
			r.RepoDigests = append(r.RepoDigests, repoDigest)
			return putRecord(tx, r)
		})
	}
	return nil
}

func pushError(repo reference.Named, err error) error {
	return fmt.Errorf("push %s: %w", reference.FamiliarName(repo), err)
}

func (s *Service) ImagePush(req *enginev1.ImagePushRequest, stream enginev1.Engine_ImagePushServer) error {
	return s.Push(stream.Context(), req, stream.Send)
}
