package daemon

import (
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// startGCPercent is the collector's target while engined starts. The
// start allocates about 12 MB in bursts (the records, their views, the
// API's handlers) and keeps 2 MB of it; from the runtime's 4 MB initial
// goal that was three collections in the first 35 ms of a start with
// 100 containers, each taking one of two CPUs from it.
const startGCPercent = 400

// startGCAtMost bounds how long the start's target lasts: hung shims
// can hold up the background reattach for minutes, while engined
// serves at the start's target.
const startGCAtMost = 10 * time.Second

// relaxGCForStart raises the collector's target for the start and
// returns what puts it back. A GOGC the user set is left alone.
func relaxGCForStart() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	prev := debug.SetGCPercent(startGCPercent)
	return sync.OnceFunc(func() {
		debug.SetGCPercent(prev)
		// The garbage of the start would otherwise keep its pages: the
		// scavenger gives back only what exceeds the new, lower goal, slowly.
		debug.FreeOSMemory()
	})
}
