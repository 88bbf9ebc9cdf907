package shim

import (
	"context"
	"testing"
	"time"

	shimv1 "github.com/engined/engined/proto/shim/v1"
)

// Events are numbered from 1; asking for those after N returns the rest
// and forgets those up to N; asking again from 0 after a restart returns
// what was not acknowledged.
func TestEventLogSequenceAndAck(t *testing.T) {
	var l eventLog
	ctx := context.Background()
	l.publish(&shimv1.Event{Kind: shimv1.Event_KIND_EXEC_EXIT, ExecId: "a"})
	l.publish(&shimv1.Event{Kind: shimv1.Event_KIND_OOM})
	evs, err := l.after(ctx, 0)
	if err != nil || len(evs) != 2 || evs[0].GetSeq() != 1 || evs[1].GetSeq() != 2 {
		t.Fatalf("after 0: %v %v", evs, err)
	}
	// engined handled 1, then restarted: it asks from 0 and sees 2 only
	// once it has acknowledged 1.
	if evs, _ := l.after(ctx, 1); len(evs) != 1 || evs[0].GetSeq() != 2 {
		t.Fatalf("after 1: %v", evs)
	}
	if evs, _ := l.after(ctx, 0); len(evs) != 1 || evs[0].GetSeq() != 2 {
		t.Fatalf("replay after 1 was acknowledged: %v", evs)
	}
	// Nothing new: the call waits for the next event.
	got := make(chan []*shimv1.Event)
	go func() {
		evs, _ := l.after(ctx, 2)
		got <- evs
	}()
	select {
	case evs := <-got:
		t.Fatalf("returned with nothing new: %v", evs)
	case <-time.After(50 * time.Millisecond):
	}
	l.publish(&shimv1.Event{Kind: shimv1.Event_KIND_EXIT, Exit: &shimv1.ExitStatus{Code: 3}})
	if evs := <-got; len(evs) != 1 || evs[0].GetSeq() != 3 || evs[0].GetExit().GetCode() != 3 {
		t.Fatalf("waited for: %v", evs)
	}
	// A waiting call ends with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.after(cctx, 3); err == nil {
		t.Error("after with a cancelled context returned no error")
	}
}
