package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func init() {
	registerResponse(func(_ context.Context, v *enginev1.Volume) (any, error) { return volumeJSON(v), nil })
	registerResponse(func(_ context.Context, m *enginev1.VolumeListResponse) (any, error) {
		out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: m.GetWarnings()}
		for _, v := range m.GetVolumes() {
			out.Volumes = append(out.Volumes, volumeJSON(v))
		}
		return out, nil
	})
	registerResponse(func(context.Context, *enginev1.VolumeRemoveResponse) (any, error) { return noBody{}, nil })
	successStatus[(&enginev1.VolumeRemoveResponse{}).ProtoReflect().Descriptor().FullName()] = http.StatusNoContent
	registerResponse(func(ctx context.Context, m *enginev1.SystemDataUsageResponse) (any, error) {
		return dataUsage(ctx, m), nil
	})
}

// volumeJSON is dockerd's volume document.
func volumeJSON(v *enginev1.Volume) volume.Volume {
	out := volume.Volume{Name: v.GetName(), Driver: v.GetDriver(), Mountpoint: v.GetMountpoint(), Scope: "local",
		CreatedAt: v.GetCreatedAt().AsTime().Format(time.RFC3339), Labels: v.GetLabels(), Options: v.GetOptions()}
	if out.Labels == nil && v.GetLabelsSet() {
		out.Labels = map[string]string{}
	}
	if out.Options == nil && v.GetOptionsSet() {
		out.Options = map[string]string{}
	}
	if v.GetSize() != -1 || v.GetRefCount() != -1 {
		out.UsageData = &volume.UsageData{Size: v.GetSize(), RefCount: v.GetRefCount()}
	}
	return out
}

// supportedVolumeCreate are the fields of Docker's volume create body
// engined applies.
var supportedVolumeCreate = fieldSet("Name", "Driver", "DriverOpts", "Labels")

// volumeCreate is POST /volumes/create: 201 with the volume (an
// existing one when the name is taken, as dockerd).
func (h *handlers) volumeCreate(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var cr volume.CreateRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&cr); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON: %v", err))
			return
		}
	}
	if cr.ClusterVolumeSpec != nil {
		writeError(w, http.StatusBadRequest, "cluster volumes (ClusterVolumeSpec) are not supported: engined is not a swarm manager")
		return
	}
	if err := unsupportedFields("VolumeCreateRequest", reflect.ValueOf(&cr).Elem(), supportedVolumeCreate); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(body, &raw)
	labelsSet := raw["Labels"] != nil && string(raw["Labels"]) != "null"
	resp, err := h.engine.VolumeCreate(r.Context(), &enginev1.VolumeCreateRequest{Name: cr.Name, Driver: cr.Driver,
		DriverOpts: cr.DriverOpts, Labels: cr.Labels, LabelsSet: labelsSet})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(volumeJSON(resp))
}

// volumePrune is POST /volumes/prune: anonymous volumes only unless the
// all filter says otherwise; before API 1.42 all unused volumes, as
// dockerd.
func (h *handlers) volumePrune(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	f := r.URL.Query().Get("filters")
	if versionBefore(r.Context(), "1.42") {
		var m map[string]any
		if f == "" {
			m = map[string]any{}
		} else if err := json.Unmarshal([]byte(f), &m); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid filters %q: %v", f, err))
			return
		}
		if _, ok := m["all"]; ok {
			writeError(w, http.StatusBadRequest, "invalid filter 'all'")
			return
		}
		m["all"] = []string{"true"}
		b, _ := json.Marshal(m)
		f = string(b)
	}
	resp, err := h.engine.VolumePrune(r.Context(), &enginev1.VolumePruneRequest{Filters: f})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(volume.PruneReport{VolumesDeleted: nonNil(resp.GetVolumesDeleted()), SpaceReclaimed: uint64(resp.GetSpaceReclaimed())})
}

// volumeUpdate is PUT /volumes/{name}: only cluster volumes can be
// updated, as with dockerd.
func (h *handlers) volumeUpdate(w http.ResponseWriter, r *http.Request, p map[string]string) {
	if _, err := h.engine.VolumeInspect(r.Context(), &enginev1.VolumeInspectRequest{Name: p["name"]}); err != nil {
		writeGRPCError(w, err)
		return
	}
	writeError(w, http.StatusBadRequest, errors.New("volume update is only supported for cluster volumes: engined is not a swarm manager").Error())
}

// legacyDiskUsage is GET /system/df's body in API 1.51 and before.
type legacyDiskUsage struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []build.CacheRecord
}

func dataUsage(ctx context.Context, m *enginev1.SystemDataUsageResponse) legacyDiskUsage {
	out := legacyDiskUsage{LayersSize: m.GetLayersSize(), Images: []image.Summary{}, Containers: []container.Summary{},
		Volumes: []volume.Volume{}, BuildCache: []build.CacheRecord{}}
	for _, img := range m.GetImages() {
		out.Images = append(out.Images, image.Summary{ID: img.GetId(), RepoTags: nonNil(img.GetRepoTags()),
			RepoDigests: nonNil(img.GetRepoDigests()), Created: img.GetCreated().GetSeconds(), Size: img.GetSize(),
			SharedSize: m.GetImageSharedSizes()[img.GetId()], Containers: img.GetContainers(), Labels: img.GetLabels()})
	}
	for _, c := range m.GetContainers() {
		out.Containers = append(out.Containers, containerSummary(c))
	}
	for _, v := range m.GetVolumes() {
		out.Volumes = append(out.Volumes, volumeJSON(v))
	}
	for _, b := range m.GetBuildCache() {
		r := build.CacheRecord{ID: b.GetId(), Type: b.GetType(), Description: b.GetDescription(), InUse: b.GetInUse(),
			Shared: b.GetShared(), Size: b.GetSize(), CreatedAt: b.GetCreatedAt().AsTime(), UsageCount: int(b.GetUsageCount())}
		if b.GetLastUsedAt() != nil {
			t := b.GetLastUsedAt().AsTime()
			r.LastUsedAt = &t
		}
		out.BuildCache = append(out.BuildCache, r)
	}
	return out
}
