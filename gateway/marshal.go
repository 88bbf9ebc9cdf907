package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// toDockerFunc turns one Engine response into the value whose encoding/json
// form is Docker's wire shape: normally a type from github.com/moby/moby/api,
// so numbers stay numbers and field names are Docker's.
type toDockerFunc func(ctx context.Context, m proto.Message) (any, error)

var responseConverters = map[protoreflect.FullName]toDockerFunc{}

// registerResponse declares the Docker shape of an Engine response type.
// Every message a REST route returns needs one (a test checks).
func registerResponse[T proto.Message](fn func(ctx context.Context, m T) (any, error)) {
	var zero T
	responseConverters[zero.ProtoReflect().Descriptor().FullName()] = func(ctx context.Context, m proto.Message) (any, error) {
		return fn(ctx, m.(T))
	}
}

// toDocker is the gateway's response rewriter: it runs with the request's
// context, so converters can shape replies for older API versions.
func toDocker(ctx context.Context, m proto.Message) (any, error) {
	fn, ok := responseConverters[m.ProtoReflect().Descriptor().FullName()]
	if !ok {
		return nil, fmt.Errorf("gateway: no Docker shape registered for %s", m.ProtoReflect().Descriptor().FullName())
	}
	return fn(ctx, m)
}

// noBody is the Docker shape of replies that have none (201 Created).
type noBody struct{}

// successStatus is the status of replies that are not 200 OK.
var successStatus = map[protoreflect.FullName]int{}

// setSuccessStatus is the forward-response option applying successStatus.
func setSuccessStatus(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	if code, ok := successStatus[m.ProtoReflect().Descriptor().FullName()]; ok {
		w.WriteHeader(code)
	}
	return nil
}

// fromDockerFunc decodes a Docker JSON request body into an Engine request.
type fromDockerFunc func(data []byte, m proto.Message) error

var requestConverters = map[protoreflect.FullName]fromDockerFunc{}

// registerRequest declares how a Docker request body fills an Engine request
// whose body is mapped with `body: "..."` in its http rule.
func registerRequest[T proto.Message](fn func(data []byte, m T) error) {
	var zero T
	requestConverters[zero.ProtoReflect().Descriptor().FullName()] = func(data []byte, m proto.Message) error {
		return fn(data, m.(T))
	}
}

// dockerMarshaler writes the values toDocker produced with encoding/json and
// reads request bodies through the registered request converters.
type dockerMarshaler struct{}

var _ runtime.Delimited = dockerMarshaler{}

func (dockerMarshaler) ContentType(any) string { return "application/json" }

// Delimiter separates streamed messages: Docker streams are NDJSON.
func (dockerMarshaler) Delimiter() []byte { return []byte("\n") }

func (dockerMarshaler) Marshal(v any) ([]byte, error) {
	// grpc-gateway wraps each streamed message as {"result": ...}; Docker's
	// streams are the bare objects.
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		if r, ok := m["result"]; ok {
			v = r
		}
	}
	switch v := v.(type) {
	case noBody:
		return nil, nil
	case encodedJSON:
		return v, nil
	}
	if m, ok := v.(proto.Message); ok {
		// Only error chunks of streams get here unconverted.
		return protojson.Marshal(m)
	}
	return json.Marshal(v)
}

func (d dockerMarshaler) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return json.Unmarshal(data, v)
	}
	if fn, ok := requestConverters[m.ProtoReflect().Descriptor().FullName()]; ok {
		return fn(data, m)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}

func (d dockerMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if isTooLarge(err) {
			return errBodyTooLarge // errorHandler makes it a 413
		}
		if err != nil {
			return err
		}
		return d.Unmarshal(data, v)
	})
}

func (d dockerMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := d.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}
