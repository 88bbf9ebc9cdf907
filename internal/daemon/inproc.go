package daemon

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// inprocConn is the gateway's connection to the Engine service in the
// same process. A unary call runs the service's handler directly, with
// the server's interceptor, its request copied and its reply handed
// over rather than encoded: a list of 1,000 containers sent through an HTTP/2 pipe spent
// half its time encoding and decoding protobuf. Streams go through the
// pipe (streams, a real server transport).
type inprocConn struct {
	server    any
	unary     map[string]grpc.MethodDesc // by full method name
	intercept grpc.UnaryServerInterceptor
	streams   grpc.ClientConnInterface
}

func newInprocConn(desc *grpc.ServiceDesc, server any, intercept grpc.UnaryServerInterceptor, streams grpc.ClientConnInterface) *inprocConn {
	c := &inprocConn{server: server, unary: map[string]grpc.MethodDesc{}, intercept: intercept, streams: streams}
	for _, m := range desc.Methods {
		c.unary["/"+desc.ServiceName+"/"+m.MethodName] = m
	}
	return c
}

func (c *inprocConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.unary[method]
	if !ok {
		return c.streams.Invoke(ctx, method, args, reply, opts...)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s: in-process call with non-protobuf messages %T, %T", method, args, reply)
	}
	// What the client sent as outgoing metadata, the handler sees as
	// incoming, as across a transport.
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md)
	resp, err := m.Handler(c.server, ctx, func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%s: request type %T", method, v)
		}
		proto.Merge(dst, in)
		return nil
	}, c.intercept)
	if err != nil {
		return err
	}
	if r, ok := resp.(proto.Message); ok && r != nil {
		shallowCopy(out, r)
	}
	return nil
}

// shallowCopy sets dst's fields to src's, sharing what they hold: a
// reply is the handler's to give away (nothing changes it after it
// returned), and the gateway only reads it. A deep copy of a list of
// 1,000 containers cost as much as encoding it.
func shallowCopy(dst, src proto.Message) {
	d := dst.ProtoReflect()
	src.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
}

func (c *inprocConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.streams.NewStream(ctx, desc, method, opts...)
}
