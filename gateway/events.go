package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"google.golang.org/protobuf/types/known/timestamppb"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// systemEvents is GET /events: a JSON stream, one event per line, the
// reply started at once so clients waiting for events see the stream
// open.
func (h *handlers) systemEvents(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	q := r.URL.Query()
	req := &enginev1.SystemEventsRequest{Filters: q.Get("filters")}
	for key, dst := range map[string]**timestamppb.Timestamp{"since": &req.Since, "until": &req.Until} {
		if v := q.Get(key); v != "" {
			t, err := parseEventTime(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid %s %q: %v", key, v, err))
				return
			}
			*dst = timestamppb.New(t)
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stream, err := h.engine.SystemEvents(ctx, req)
	if err == nil {
		_, err = stream.Recv() // subscribed
	}
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		ev, err := stream.Recv()
		if err != nil {
			return
		}
		msg := eventMessage(ev)
		if msg.Type == events.ImageEventType && msg.Action == events.ActionCreate && versionBefore(ctx, "1.46") {
			continue // image create events came with API 1.46
		}
		if err := enc.Encode(eventToDocker(ctx, msg)); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// legacyEvent is an event with the fields API 1.52 dropped: status, id
// and from (container events), status and id (image events).
type legacyEvent struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

func eventToDocker(ctx context.Context, msg events.Message) any {
	if !versionBefore(ctx, "1.52") {
		return msg
	}
	switch msg.Type {
	case events.ContainerEventType:
		return legacyEvent{Status: string(msg.Action), ID: msg.Actor.ID, From: msg.Actor.Attributes["image"], Message: msg}
	case events.ImageEventType:
		return legacyEvent{Status: string(msg.Action), ID: msg.Actor.ID, Message: msg}
	}
	return msg
}

// parseEventTime reads since and until as the docker CLI sends them
// (Unix seconds with an optional fraction) or as RFC 3339.
func parseEventTime(v string) (time.Time, error) {
	if sec, frac, _ := strings.Cut(v, "."); sec != "" {
		if s, err := strconv.ParseInt(sec, 10, 64); err == nil {
			var ns int64
			if frac != "" {
				f := (frac + "000000000")[:9]
				if ns, err = strconv.ParseInt(f, 10, 64); err != nil {
					return time.Time{}, err
				}
			}
			return time.Unix(s, ns), nil
		}
	}
	return time.Parse(time.RFC3339Nano, v)
}

// eventMessage is an Engine event as Docker's events.Message.
func eventMessage(ev *enginev1.Event) events.Message {
	msg := events.Message{Type: events.Type(ev.GetType()), Action: events.Action(ev.GetAction()),
		Actor: events.Actor{ID: ev.GetActorId(), Attributes: ev.GetAttributes()}, Scope: "local",
		Time: ev.GetTimeNano() / int64(time.Second), TimeNano: ev.GetTimeNano()}
	if msg.Actor.Attributes == nil {
		msg.Actor.Attributes = map[string]string{}
	}
	return msg
}
