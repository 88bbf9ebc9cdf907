package image

import (
	"context"
	"strings"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// The Engine service's image methods.

func (s *Service) ImageInspect(ctx context.Context, req *enginev1.ImageInspectRequest) (*enginev1.Image, error) {
	rec, err := s.Resolve(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return s.toProto(rec, true)
}

func (s *Service) ImageHistory(ctx context.Context, req *enginev1.ImageHistoryRequest) (*enginev1.ImageHistoryResponse, error) {
	items, err := s.History(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &enginev1.ImageHistoryResponse{Items: items}, nil
}

func (s *Service) ImageTag(ctx context.Context, req *enginev1.ImageTagRequest) (*enginev1.ImageTagResponse, error) {
	if err := s.Tag(ctx, req.GetName(), req.GetRepo(), req.GetTag()); err != nil {
		return nil, err
	}
	if rec, err := s.Resolve(ctx, req.GetName()); err == nil {
		tag := req.GetTag()
		if tag == "" {
			tag = "latest"
		}
		s.event("tag", rec.ID.String(), req.GetRepo()+":"+tag)
	}
	return &enginev1.ImageTagResponse{}, nil
}

func (s *Service) ImageRemove(ctx context.Context, req *enginev1.ImageRemoveRequest) (*enginev1.ImageRemoveResponse, error) {
	id := ""
	if rec, err := s.Resolve(ctx, req.GetName()); err == nil {
		id = rec.ID.String()
	}
	items, err := s.Remove(ctx, req.GetName(), req.GetForce(), req.GetNoprune())
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.GetUntagged() != "" {
			s.event("untag", id, it.GetUntagged())
		}
		if it.GetDeleted() != "" {
			s.event("delete", it.GetDeleted(), "")
		}
	}
	return &enginev1.ImageRemoveResponse{Items: items}, nil
}

func (s *Service) ImageList(ctx context.Context, req *enginev1.ImageListRequest) (*enginev1.ImageListResponse, error) {
	imgs, err := s.List(ctx, req)
	if err != nil {
		return nil, err
	}
	return &enginev1.ImageListResponse{Images: imgs}, nil
}

func (s *Service) ImagePrune(ctx context.Context, req *enginev1.ImagePruneRequest) (*enginev1.ImagePruneResponse, error) {
	return s.Prune(ctx, req.GetFilters())
}

func (s *Service) ImagePull(req *enginev1.ImagePullRequest, stream enginev1.Engine_ImagePullServer) error {
	if err := s.Pull(stream.Context(), req, stream.Send); err != nil {
		return err
	}
	ref := req.GetImage()
	if t := req.GetTag(); t != "" {
		if strings.Contains(t, ":") {
			ref += "@" + t
		} else {
			ref += ":" + t
		}
	}
	s.event("pull", ref, ref)
	return nil
}

// event publishes an image event (docker events), if anyone listens.
func (s *Service) event(action, id, name string) {
	if s.cfg.Events == nil {
		return
	}
	attrs := map[string]string{}
	if name != "" {
		attrs["name"] = name
	}
	s.cfg.Events.Publish("image", action, id, attrs)
}
