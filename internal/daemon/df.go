package daemon

import (
	"context"
	"errors"
	"slices"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/volume"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// SystemDataUsage is docker system df: images, containers (with their
// sizes), volumes (with theirs and their reference counts) and build
// cache (the build steps' untagged images; they are not among the
// images, as dockerd's df leaves intermediate images out). Each concern answers for its
// own; the volumes' sizes are walked without holding the volume
// driver's lock.
func (e *engine) SystemDataUsage(ctx context.Context, req *enginev1.SystemDataUsageRequest) (*enginev1.SystemDataUsageResponse, error) {
	want := func(t string) bool { return len(req.GetType()) == 0 || slices.Contains(req.GetType(), t) }
	for _, t := range req.GetType() {
		switch t {
		case "container", "image", "volume", "build-cache":
		default:
			return nil, errdefs.InvalidArgument(errors.New("invalid type: " + t))
		}
	}
	resp := &enginev1.SystemDataUsageResponse{ImageSharedSizes: map[string]int64{}}
	if want("image") {
		list, err := e.imageService.ImageList(ctx, &enginev1.ImageListRequest{})
		if err != nil {
			return nil, err
		}
		resp.Images = list.GetImages()
		// Layers several images share count once in LayersSize and are
		// each image's SharedSize, as dockerd computes them; only
		// those are walked for their sizes.
		uses := map[string]int{}
		dirs := map[string][]string{}
		for _, img := range resp.Images {
			resp.LayersSize += img.GetSize()
			full, err := e.imageService.ImageInspect(ctx, &enginev1.ImageInspectRequest{Name: img.GetId()})
			if err != nil {
				continue // removed meanwhile
			}
			dirs[img.GetId()] = full.GetLayerDirs()
			for _, d := range full.GetLayerDirs() {
				uses[d]++
			}
		}
		sizes := map[string]int64{}
		for d, n := range uses {
			if n > 1 {
				size, err := volume.DirSize(ctx, d)
				if err != nil {
					return nil, err
				}
				sizes[d] = size
				resp.LayersSize -= int64(n-1) * size
			}
		}
		for _, img := range resp.Images {
			var shared int64
			for _, d := range dirs[img.GetId()] {
				shared += sizes[d]
			}
			resp.ImageSharedSizes[img.GetId()] = shared
		}
	}
	if want("container") || want("image") {
		list, err := e.containerService.ContainerList(ctx, &enginev1.ContainerListRequest{All: true, Size: want("container")})
		if err != nil {
			return nil, err
		}
		uses := map[string]int64{}
		for _, c := range list.GetContainers() {
			uses[c.GetImageId()]++
		}
		for _, img := range resp.Images {
			img.Containers = uses[img.GetId()]
		}
		if want("container") {
			resp.Containers = list.GetContainers()
		}
	}
	if want("volume") {
		vols, err := e.volumeService.Usage(ctx)
		if err != nil {
			return nil, err
		}
		resp.Volumes = vols
	}
	if want("build-cache") {
		cache, err := e.imageService.BuildCacheRecords(ctx)
		if err != nil {
			return nil, err
		}
		resp.BuildCache = cache
	}
	return resp, nil
}
