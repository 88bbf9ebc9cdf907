package container

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/sysinfo"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// statsInterval is how often a stats stream samples, as dockerd.
const statsInterval = time.Second

// ContainerStats samples the container's cgroup counters through its shim.
// A stopped container reports zeros once, as dockerd does.
func (s *Service) ContainerStats(req *enginev1.ContainerStatsRequest, stream enginev1.Engine_ContainerStatsServer) error {
	ctx := stream.Context()
	r, err := s.get(req.GetId())
	if err != nil {
		return err
	}
	for {
		resp := &enginev1.ContainerStatsResponse{Id: r.ID, Name: r.Name, Read: timestamppb.Now(), OnlineCpus: uint32(runtime.NumCPU())}
		if client := s.shim(r.ID); client != nil {
			st, err := client.Stats(ctx, &shimv1.StatsRequest{})
			if err == nil {
				resp.CpuTotalNs, resp.CpuKernelNs, resp.CpuUserNs, resp.CpuPercpuNs = st.GetCpuTotalNs(), st.GetCpuKernelNs(), st.GetCpuUserNs(), st.GetCpuPercpuNs()
				resp.ThrottlingPeriods, resp.ThrottledPeriods, resp.ThrottledTimeNs = st.GetThrottlingPeriods(), st.GetThrottledPeriods(), st.GetThrottledTimeNs()
				resp.MemoryUsage, resp.MemoryMaxUsage, resp.MemoryLimit, resp.MemoryStats = st.GetMemoryUsage(), st.GetMemoryMaxUsage(), st.GetMemoryLimit(), st.GetMemoryStats()
				resp.PidsCurrent, resp.PidsLimit = st.GetPidsCurrent(), st.GetPidsLimit()
				// An unlimited cgroup reports a huge number (8 EiB, or
				// "max"); as dockerd, the limit is then the host's memory.
				if host := hostMemory(); host > 0 && (resp.MemoryLimit == 0 || resp.MemoryLimit > uint64(host)) {
					resp.MemoryLimit = uint64(host)
				}
			} else if !isNotRunning(err) {
				return err
			}
		}
		if n, err := systemCPUNanos(); err == nil {
			resp.SystemCpuNs = n
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		if !req.GetStream() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(statsInterval):
		}
		if _, err := s.get(r.ID); errdefs.IsNotFound(err) {
			return nil
		}
	}
}

// systemCPUNanos is the host's total CPU time from /proc/stat, the
// denominator of docker stats' CPU %.
func systemCPUNanos() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != "cpu" {
			continue
		}
		var ticks uint64
		for _, v := range f[1:8] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, err
			}
			ticks += n
		}
		// USER_HZ is 100 on Linux.
		return ticks * uint64(time.Second/100), nil
	}
	return 0, fmt.Errorf("no cpu line in /proc/stat")
}

// hostMemory is the host's RAM in bytes (0 if unknown).
var hostMemory = sync.OnceValue(func() int64 {
	h, err := sysinfo.Read()
	if err != nil {
		return 0
	}
	return h.MemTotal
})
