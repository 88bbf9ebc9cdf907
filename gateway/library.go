package gateway

import (
	"context"

	"github.com/moby/moby/api/types/jsonstream"

	"google.golang.org/protobuf/proto"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// This file is the gateway's library surface: the conversions between
// Engine messages and Docker's wire shapes, for clients of the Engine
// service that print or accept Docker's JSON without HTTP (our CLI's
// inspect, ps --format and create flags), so both share one conversion.

// DockerShape is the value whose encoding/json form is what the REST API
// answers for the Engine response m at the current API version (a type of
// github.com/moby/moby/api).
func DockerShape(ctx context.Context, m proto.Message) (any, error) {
	return toDocker(ctx, m)
}

// NetworkCreateRequest turns the body of Docker's POST /networks/create
// into the Engine request; an error is a bad request.
func NetworkCreateRequest(body []byte) (*enginev1.NetworkCreateRequest, error) {
	return networkCreateRequest(body)
}

// ProgressMessage is one line of a pull or push as the REST API streams it
// (Docker's JSON message), for clients that render progress as the Docker
// CLI does.
func ProgressMessage(p *enginev1.Progress) jsonstream.Message {
	return progressLine(p).Message
}

// EventMessage is an event as GET /events streams it at the current API
// version (with the legacy status, id and from fields the Docker CLI 28
// still shows).
func EventMessage(ctx context.Context, ev *enginev1.Event) any {
	return eventToDocker(ctx, eventMessage(ev))
}
