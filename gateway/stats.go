package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/moby/moby/api/types/container"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func statsToDocker(m *enginev1.ContainerStatsResponse) container.StatsResponse {
	return container.StatsResponse{
		ID: m.GetId(), Name: m.GetName(), OSType: "linux", Read: m.GetRead().AsTime(),
		CPUStats: container.CPUStats{
			CPUUsage: container.CPUUsage{TotalUsage: m.GetCpuTotalNs(), PercpuUsage: m.GetCpuPercpuNs(),
				UsageInKernelmode: m.GetCpuKernelNs(), UsageInUsermode: m.GetCpuUserNs()},
			SystemUsage: m.GetSystemCpuNs(), OnlineCPUs: m.GetOnlineCpus(),
			ThrottlingData: container.ThrottlingData{Periods: m.GetThrottlingPeriods(), ThrottledPeriods: m.GetThrottledPeriods(), ThrottledTime: m.GetThrottledTimeNs()},
		},
		MemoryStats: container.MemoryStats{Usage: m.GetMemoryUsage(), MaxUsage: m.GetMemoryMaxUsage(), Limit: m.GetMemoryLimit(), Stats: m.GetMemoryStats()},
		PidsStats:   container.PidsStats{Current: m.GetPidsCurrent(), Limit: m.GetPidsLimit()},
		BlkioStats:  container.BlkioStats{},
	}
}

// containerStats is GET /containers/{id}/stats: one sample (stream=false)
// or one per second. Each carries the previous one as precpu_stats, which
// docker stats needs to compute CPU %.
func (h *handlers) containerStats(w http.ResponseWriter, r *http.Request, p map[string]string) {
	q := r.URL.Query()
	streaming := q.Get("stream") == "" || boolParam(q, "stream")
	oneShot := boolParam(q, "one-shot")
	// Without stream, dockerd samples twice so precpu_stats is filled in.
	stream, err := h.engine.ContainerStats(r.Context(), &enginev1.ContainerStatsRequest{Id: p["id"], Stream: streaming || !oneShot})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	first, err := stream.Recv()
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	prev := statsToDocker(first)
	if streaming || oneShot {
		out := prev
		if oneShot {
			out.PreCPUStats = container.CPUStats{}
		}
		if enc.Encode(out) != nil || oneShot {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				h.log.Debug("stats stream ended", "err", err)
			}
			return
		}
		cur := statsToDocker(m)
		cur.PreCPUStats, cur.PreRead = prev.CPUStats, prev.Read
		prev = cur
		if enc.Encode(cur) != nil || !streaming {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}
