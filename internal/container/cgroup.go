package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// orphanKillWait bounds how long killOrphans waits for the processes to
// be gone.
const orphanKillWait = 10 * time.Second

// killOrphans kills what is left of a container whose shim died: every
// process in its cgroups, then the cgroups themselves. Without the shim
// nothing else would. It returns once the cgroups are empty (or the wait
// is over), so the container is not reported exited while its processes
// still run.
func (s *Service) killOrphans(id string, initPid int) {
	dirs := cgroupDirs(id)
	// Thaw first: a frozen (paused) cgroup's processes cannot die.
	for _, d := range dirs {
		os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
		os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0)
	}
	// The pid may have been reused since (after a reboot, surely): kill it
	// only if it is still in the container's cgroup.
	if cg, err := os.ReadFile("/proc/" + strconv.Itoa(initPid) + "/cgroup"); initPid > 0 && err == nil && strings.Contains(string(cg), "/engined/"+id) {
		unix.Kill(initPid, unix.SIGKILL)
	}
	deadline := time.Now().Add(orphanKillWait)
	for {
		alive := false
		for _, d := range dirs {
			data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					unix.Kill(pid, unix.SIGKILL)
					alive = true
				}
			}
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			s.cfg.Logger.Warn("processes of a container whose shim died survive SIGKILL", "id", id, "waited", orphanKillWait)
			break
		}
		// Polling: a cgroup (v1) has no notification for becoming empty
		// that works for a cgroup engined does not own.
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range dirs {
		os.Remove(d)
	}
}

// cgroupDirs are the container's cgroup directories under /engined/<id>,
// on cgroup v1 (one per controller) or v2.
func cgroupDirs(id string) []string {
	var out []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		d := filepath.Join("/sys/fs/cgroup", e.Name(), "engined", id)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	if d := filepath.Join("/sys/fs/cgroup", "engined", id); exists(d) {
		out = append(out, d)
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
