package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/filters"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// config reads and parses an image's config blob.
// config is the image's parsed config and its bytes. Both are shared
// (configCache): callers must not change them.
func (s *Service) config(r *Record) (*v1.ConfigFile, []byte, error) {
	if c, ok := s.configs.Load(r.ID); ok {
		c := c.(*parsedConfig)
		return c.cfg, c.raw, nil
	}
	raw, err := s.content.ReadAll(r.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s config: %w", r.ID, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("image %s config: %w", r.ID, err)
	}
	s.configs.Store(r.ID, &parsedConfig{cfg: cfg, raw: raw})
	return cfg, raw, nil
}

// parsedConfig is a configs entry. Configs are content addressed, so an
// entry never goes stale; it goes with its blob (prune). Each create read
// and parsed its image's config twice, a third of its time.
type parsedConfig struct {
	cfg *v1.ConfigFile
	raw []byte
}

// cloneConfig is a copy of c that shares nothing with it.
func cloneConfig(c v1.Config) v1.Config {
	c.Cmd, c.Entrypoint, c.Env = slices.Clone(c.Cmd), slices.Clone(c.Entrypoint), slices.Clone(c.Env)
	c.OnBuild, c.Shell = slices.Clone(c.OnBuild), slices.Clone(c.Shell)
	c.Labels, c.Volumes, c.ExposedPorts = maps.Clone(c.Labels), maps.Clone(c.Volumes), maps.Clone(c.ExposedPorts)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Healthcheck = &h
	}
	return c
}

func (s *Service) labels(r *Record) map[string]string {
	cfg, _, err := s.config(r)
	if err != nil {
		return nil
	}
	return cfg.Config.Labels
}

// toProto describes r for the API.
func (s *Service) toProto(r *Record, withConfig bool) (*enginev1.Image, error) {
	img := &enginev1.Image{
		Id:                r.ID.String(),
		RepoTags:          familiarAll(r.RepoTags),
		RepoDigests:       familiarAll(r.RepoDigests),
		Created:           timestamppb.New(r.Created),
		Size:              r.Size(),
		ManifestDigest:    r.Manifest.String(),
		ManifestMediaType: r.ManifestMediaType,
		Containers:        -1,
		Parent:            r.Parent.String(),
	}
	if !r.LastTagTime.IsZero() {
		img.LastTagTime = timestamppb.New(r.LastTagTime)
	}
	if n, err := s.content.Size(r.Manifest); err == nil {
		img.ManifestSize = n
	}
	cfg, raw, err := s.config(r)
	if err != nil {
		return nil, err
	}
	img.Labels = maps.Clone(cfg.Config.Labels)
	if withConfig {
		img.ConfigJson = raw
		for _, l := range r.Layers {
			img.DiffIds = append(img.DiffIds, l.DiffID.String())
		}
		for _, c := range r.ChainIDs() {
			img.LayerDirs = append(img.LayerDirs, s.snaps.DiffPath(c))
		}
	}
	return img, nil
}

func familiarAll(refs []string) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, familiar(r))
	}
	return out
}

// List answers GET /images/json.
func (s *Service) List(ctx context.Context, req *enginev1.ImageListRequest) ([]*enginev1.Image, error) {
	args, err := filters.Parse(req.GetFilters(), "dangling", "label", "before", "since", "reference", "until")
	if err != nil {
		return nil, err
	}
	dangling, err := args.Bool("dangling", false)
	if err != nil {
		return nil, err
	}
	var recs []*Record
	var before, since *Record
	err = s.cfg.Store.View(func(tx *bolt.Tx) error {
		if recs, err = allRecords(tx); err != nil {
			return err
		}
		for key, dst := range map[string]**Record{"before": &before, "since": &since} {
			if v := args.Get(key); len(v) > 0 {
				if *dst, err = resolve(tx, v[0]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var until = ""
	if v := args.Get("until"); len(v) > 0 {
		until = v[0]
	}
	hasChild := map[string]bool{}
	for _, r := range recs {
		if r.Parent != "" {
			hasChild[r.Parent.String()] = true
		}
	}
	var out []*enginev1.Image
	for _, r := range recs {
		// As dockerd: an untagged image with children (a build's
		// intermediate step) is listed only with -a, and is not dangling.
		intermediate := len(r.RepoTags) == 0 && hasChild[r.ID.String()]
		if intermediate && (!req.GetAll() || args.Has("dangling") && dangling) {
			continue
		}
		if args.Has("dangling") && dangling != (len(r.RepoTags) == 0) {
			continue
		}
		if before != nil && !r.Created.Before(before.Created) {
			continue
		}
		if since != nil && !r.Created.After(since.Created) {
			continue
		}
		if until != "" {
			t, err := filters.ParseTime(until, s.now())
			if err != nil {
				return nil, err
			}
			if !r.Created.Before(t) {
				continue
			}
		}
		img, err := s.toProto(r, false)
		if err != nil {
			return nil, err
		}
		if args.Has("label") && !args.MatchLabels("label", img.Labels) {
			continue
		}
		if args.Has("reference") {
			var keep []string
			for _, t := range img.RepoTags {
				name := t
				if i := lastColon(t); i > 0 {
					name = t[:i]
				}
				if args.MatchPattern("reference", t) || args.MatchPattern("reference", name) {
					keep = append(keep, t)
				}
			}
			if len(keep) == 0 {
				continue
			}
			img.RepoTags = keep
			var digests []string
			for _, d := range img.RepoDigests {
				if name, _, ok := strings.Cut(d, "@"); ok && args.MatchPattern("reference", name) {
					digests = append(digests, d)
				}
			}
			img.RepoDigests = digests
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.AsTime().After(out[j].Created.AsTime()) })
	return out, nil
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ':':
			return i
		case '/':
			return -1
		}
	}
	return -1
}

// History answers GET /images/{name}/history: newest step first, layer
// sizes on the steps that made a layer.
func (s *Service) History(ctx context.Context, name string) ([]*enginev1.HistoryItem, error) {
	rec, err := s.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	cfg, _, err := s.config(rec)
	if err != nil {
		return nil, err
	}
	var items []*enginev1.HistoryItem
	layer := 0
	hist := slices.Clip(cfg.History)
	if len(hist) == 0 {
		for range rec.Layers {
			hist = append(hist, v1.History{Created: v1.Time{Time: rec.Created}})
		}
	}
	for _, h := range hist {
		item := &enginev1.HistoryItem{Id: "<missing>", Created: timestamppb.New(h.Created.Time), CreatedBy: h.CreatedBy, Comment: h.Comment}
		if !h.EmptyLayer && layer < len(rec.Layers) {
			item.Size = rec.Layers[layer].Unpacked
			layer++
		}
		items = append(items, item)
	}
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	// The images of earlier steps (a build's parents) name their entries:
	// an image's last history entry is the step that made it.
	for cur := rec; cur != nil; {
		cc, _, err := s.config(cur)
		if err != nil {
			break
		}
		if i := len(items) - len(cc.History); len(cc.History) > 0 && i >= 0 && i < len(items) {
			items[i].Id = cur.ID.String()
			items[i].Tags = familiarAll(cur.RepoTags)
		}
		if cur.Parent == "" {
			break
		}
		cur, _ = s.Resolve(ctx, cur.Parent.String())
	}
	if len(items) > 0 {
		items[0].Id = rec.ID.String()
		items[0].Tags = familiarAll(rec.RepoTags)
	}
	return items, nil
}

// RunConfig is what the image says to run (entrypoint, cmd, env, user,
// working dir, labels), for containers.
func (s *Service) RunConfig(r *Record) (v1.Config, error) {
	cfg, _, err := s.config(r)
	if err != nil {
		return v1.Config{}, err
	}
	return cloneConfig(cfg.Config), nil
}

// Healthcheck is the image's HEALTHCHECK (nil: none), read from the raw
// config: go-containerregistry's type has no StartInterval.
func (s *Service) Healthcheck(r *Record) (*enginev1.HealthConfig, error) {
	parsed, raw, err := s.config(r)
	if err != nil || parsed.Config.Healthcheck == nil {
		return nil, err // the same key, parsed: no HEALTHCHECK
	}
	var cfg struct {
		Config struct {
			Healthcheck *struct {
				Test                                          []string
				Interval, Timeout, StartPeriod, StartInterval int64
				Retries                                       int64
			}
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("image %s config: %w", r.ID, err)
	}
	h := cfg.Config.Healthcheck
	if h == nil {
		return nil, nil
	}
	return &enginev1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, Retries: int32(min(max(h.Retries, 0), math.MaxInt32))}, nil
}
