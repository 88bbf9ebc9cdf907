package daemon

import (
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's target (SetGCPercent returns the old one).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestStartGCTargetIsPutBack(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	restore := relaxGCForStart()
	if got := gcPercent(); got != startGCPercent {
		t.Fatalf("target during the start %d, want %d", got, startGCPercent)
	}
	restore()
	if got := gcPercent(); got != 100 {
		t.Fatalf("target after the start %d, want 100 back", got)
	}
	debug.SetGCPercent(70)
	restore() // a second call (the bound's, then the reattach's) changes nothing
	if got := gcPercent(); got != 70 {
		t.Fatalf("a second restore set the target to %d", got)
	}
}

func TestStartGCLeavesUsersGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	t.Setenv("GOGC", "50")
	restore := relaxGCForStart()
	if got := gcPercent(); got != 50 {
		t.Fatalf("GOGC=50 set, target during the start %d", got)
	}
	restore()
	if got := gcPercent(); got != 50 {
		t.Fatalf("GOGC=50 set, target after the start %d", got)
	}
}
