package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"google.golang.org/protobuf/types/known/timestamppb"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func summaryMessage(id string, labels map[string]string, started time.Time) *enginev1.Container {
	return &enginev1.Container{Id: id, Name: "/" + id, Image: "busybox", Command: "sh",
		Created: timestamppb.New(started.Add(-time.Hour)), Config: &enginev1.ContainerConfig{Labels: labels},
		HostConfig: &enginev1.HostConfig{NetworkMode: "bridge"},
		State:      &enginev1.ContainerState{Status: "running", Running: true, StartedAt: timestamppb.New(started)},
		Mounts:     []*enginev1.MountPoint{{Type: "volume", Name: "v", Destination: `/data","Status":"x`}},
	}
}

// The cached text is what encoding the summaries whole gives, whatever
// the values hold (the mark itself, quotes, a fake Status field), and
// Status is the one of the time of each list, not of the first.
func TestSummaryCacheEncoding(t *testing.T) {
	hostile := map[string]string{
		// A label that reads as the cached Status field: only a
		// test knows the mark, but the entry must come out right.
		"A":      "1",
		"Status": statusMark,
		"mark":   statusMark,
		"field":  `,"Status":"` + statusMark + `"`,
		"html":   "<&>",
	}
	now := time.Now()
	cs := []*enginev1.Container{
		summaryMessage("a", hostile, now.Add(-3*time.Second)),
		summaryMessage("b", nil, now.Add(-2*time.Hour)),
		{Id: "c", State: &enginev1.ContainerState{Status: "created"}},
	}
	want := func() []byte {
		var out []container.Summary
		for _, c := range cs {
			out = append(out, containerSummary(c))
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i := range 3 {
		got, err := summaries.list(cs)
		if err != nil {
			t.Fatal(err)
		}
		if w := want(); !bytes.Equal(got, w) {
			t.Fatalf("list %d:\n got %s\nwant %s", i, got, w)
		}
		var decoded []container.Summary
		if err := json.Unmarshal(got, &decoded); err != nil || decoded[0].Labels["mark"] != statusMark || decoded[0].Status != "Up 3 seconds" && i == 0 {
			t.Fatalf("list %d decodes to %+v (%v)", i, decoded, err)
		}
		// The same messages later: Status moves on, nothing else.
		for _, c := range cs[:2] {
			c.State.StartedAt = timestamppb.New(c.State.StartedAt.AsTime().Add(-time.Minute))
		}
	}
	// What DockerShape gives our CLI is the same JSON through encoding/json.
	shape, err := DockerShape(context.Background(), &enginev1.ContainerListResponse{Containers: cs})
	if err != nil {
		t.Fatal(err)
	}
	var viaLibrary []container.Summary
	if b, err := json.Marshal(shape); err != nil || json.Unmarshal(b, &viaLibrary) != nil || len(viaLibrary) != 3 || viaLibrary[0].Labels["mark"] != statusMark {
		t.Fatalf("DockerShape of a list through encoding/json: %s (%v)", b, err)
	}
	if got, _ := summaries.list(nil); string(got) != "[]" {
		t.Errorf("empty list: %s", got)
	}
}

// An entry goes with its message.
func TestSummaryCacheForgets(t *testing.T) {
	count := func() int {
		summaries.mu.Lock()
		defer summaries.mu.Unlock()
		return len(summaries.m)
	}
	before := count()
	for i := range 100 {
		if _, err := summaries.list([]*enginev1.Container{summaryMessage(string(rune('a'+i%26)), nil, time.Now())}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for count() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries left of 100 collected messages", count()-before)
		}
		runtime.GC()
		runtime.Gosched()
	}
}
