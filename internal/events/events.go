// Package events is engined's event bus (docker events): services publish
// what happened to containers and images, subscribers stream it, and the
// latest events are kept so a subscriber can start in the past (since).
package events

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/engined/engined/internal/filters"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// keep is how many past events are kept for since.
const keep = 1024

// Bus fans events out to subscribers. The zero value is not usable; use
// New.
type Bus struct {
	mu   sync.Mutex
	past []*enginev1.Event
	subs map[chan *enginev1.Event]struct{}
}

// New returns an empty bus.
func New() *Bus { return &Bus{subs: map[chan *enginev1.Event]struct{}{}} }

// Publish records an event of typ about the actor id, stamped now. A
// subscriber too slow to take it loses it rather than blocking the
// publisher (a container's exit must not wait for an event reader).
func (b *Bus) Publish(typ, action, id string, attrs map[string]string) {
	now := time.Now()
	ev := &enginev1.Event{Type: typ, Action: action, ActorId: id, Attributes: attrs, TimeNano: now.UnixNano()}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.past = append(b.past, ev)
	if len(b.past) > keep {
		b.past = b.past[len(b.past)-keep:]
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribe calls ready once it is subscribed, then fn with the kept
// events from since on (if since is not zero), then with every new one,
// until ctx ends, until is passed (if not zero) or fn fails.
func (b *Bus) Subscribe(ctx context.Context, since, until time.Time, ready func() error, fn func(*enginev1.Event) error) error {
	ch := make(chan *enginev1.Event, 256)
	b.mu.Lock()
	var past []*enginev1.Event
	if !since.IsZero() {
		for _, ev := range b.past {
			if ev.GetTimeNano() >= since.UnixNano() && (until.IsZero() || ev.GetTimeNano() <= until.UnixNano()) {
				past = append(past, ev)
			}
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}()
	if err := ready(); err != nil {
		return err
	}
	for _, ev := range past {
		if err := fn(ev); err != nil {
			return err
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case ev := <-ch:
			if err := fn(ev); err != nil {
				return err
			}
		case <-deadline:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// SystemEvents is the Engine service's events stream.
func (b *Bus) SystemEvents(req *enginev1.SystemEventsRequest, stream enginev1.Engine_SystemEventsServer) error {
	args, err := filters.Parse(req.GetFilters(), "type", "event", "container", "image", "label", "network", "volume")
	if err != nil {
		return err
	}
	var since, until time.Time
	if req.Since != nil {
		since = req.GetSince().AsTime()
	}
	if req.Until != nil {
		until = req.GetUntil().AsTime()
	}
	// An empty event first: the stream is open, so the client can be
	// told so before any event happens.
	ready := func() error { return stream.Send(&enginev1.Event{}) }
	return b.Subscribe(stream.Context(), since, until, ready, func(ev *enginev1.Event) error {
		if !matches(args, ev) {
			return nil
		}
		return stream.Send(ev)
	})
}

// matches applies docker events' filters: each key given must match.
func matches(args filters.Args, ev *enginev1.Event) bool {
	attrs := ev.GetAttributes()
	if args.Has("type") && !args["type"][ev.GetType()] {
		return false
	}
	if args.Has("event") && !args["event"][ev.GetAction()] && !args["event"][strings.SplitN(ev.GetAction(), ":", 2)[0]] {
		return false
	}
	if args.Has("container") && (ev.GetType() != "container" || !anyRef(args["container"], ev.GetActorId(), attrs["name"])) {
		return false
	}
	if args.Has("network") && (ev.GetType() != "network" || !anyRef(args["network"], ev.GetActorId(), attrs["name"])) {
		return false
	}
	if args.Has("volume") && (ev.GetType() != "volume" || !args["volume"][ev.GetActorId()]) {
		return false
	}
	if args.Has("image") && !anyRef(args["image"], attrs["image"], ev.GetActorId(), attrs["name"]) {
		return false
	}
	if args.Has("label") && !args.MatchLabels("label", attrs) {
		return false
	}
	return true
}

// anyRef says whether a filter value names the actor: its id (or a
// prefix of it of at least a few characters) or its name.
func anyRef(vals map[string]bool, id string, names ...string) bool {
	for v := range vals {
		if v == id || (len(v) >= 4 && strings.HasPrefix(id, v)) {
			return true
		}
		for _, n := range names {
			if n != "" && (v == n || strings.TrimSuffix(v, ":latest") == strings.TrimSuffix(n, ":latest")) {
				return true
			}
		}
	}
	return false
}
