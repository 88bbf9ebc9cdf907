package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/engined/engined/internal/errdefs"
	enginev1 "github.com/engined/engined/proto/engine/v1"
	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// ContainerUpdate changes resource limits (and the restart policy); a
// running container gets them at once through its shim.
func (s *Service) ContainerUpdate(ctx context.Context, req *enginev1.ContainerUpdateRequest) (*enginev1.ContainerUpdateResponse, error) {
	r, err := s.get(req.GetId())
	if err != nil {
		return nil, err
	}
	unlock := s.lock(r.ID)
	defer unlock()
	n := req.GetResources()
	rec, err := s.update(r.ID, func(rec *Record) error {
		hc, err := rec.hostConfig()
		if err != nil {
			return err
		}
		set := func(dst *int64, v int64) {
			if v != 0 {
				*dst = v
			}
		}
		set(&hc.Memory, n.GetMemory())
		set(&hc.MemorySwap, n.GetMemorySwap())
		set(&hc.MemoryReservation, n.GetMemoryReservation())
		set(&hc.NanoCpus, n.GetNanoCpus())
		set(&hc.CpuShares, n.GetCpuShares())
		set(&hc.CpuQuota, n.GetCpuQuota())
		set(&hc.CpuPeriod, n.GetCpuPeriod())
		if n.GetCpusetCpus() != "" {
			hc.CpusetCpus = n.GetCpusetCpus()
		}
		if n.GetCpusetMems() != "" {
			hc.CpusetMems = n.GetCpusetMems()
		}
		if n.PidsLimit != nil {
			hc.PidsLimit = n.PidsLimit
		}
		if p := n.GetRestartPolicy(); p.GetName() != "" {
			if err := validRestartPolicy(p); err != nil {
				return err
			}
			if hc.GetAutoRemove() && p.GetName() != "no" {
				return errdefs.InvalidArgument(fmt.Errorf("restart policy cannot be updated because AutoRemove is enabled for the container"))
			}
			hc.RestartPolicy = p
		}
		if hc.Memory > 0 && hc.MemorySwap > 0 && hc.MemorySwap < hc.Memory {
			return errdefs.InvalidArgument(fmt.Errorf("Minimum memoryswap limit should be larger than memory limit, see usage"))
		}
		if err := validateResources(hc); err != nil {
			return err
		}
		rec.HostConfig, err = protojson.Marshal(hc)
		return err
	})
	if err != nil {
		return nil, err
	}
	client := s.shim(rec.ID)
	if client == nil || (rec.Status != "running" && rec.Status != "paused") {
		return &enginev1.ContainerUpdateResponse{Warnings: []string{}}, nil
	}
	spec, err := s.buildSpec(ctx, rec)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(s.stateDir(rec.ID), "config.json")
	// A container that exits meanwhile (its state directory goes, its
	// shim says so) takes the new limits at its next start.
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &enginev1.ContainerUpdateResponse{Warnings: []string{}}, nil
		}
		return nil, err
	}
	if _, err := client.Update(ctx, &shimv1.UpdateRequest{SpecPath: specPath}); err != nil && !isNotRunning(err) {
		return nil, fmt.Errorf("Cannot update container %s: %w", rec.ID, err)
	}
	return &enginev1.ContainerUpdateResponse{Warnings: []string{}}, nil
}
