package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// engineService is the Engine service's descriptor, as compiled into the
// generated code: `docker engine` is built from it at run time, so a
// method added to engine.proto needs no CLI code.
func engineService() protoreflect.ServiceDescriptor {
	return enginev1.File_engine_v1_engine_proto.Services().ByName("Engine")
}

func methodKind(m protoreflect.MethodDescriptor) string {
	switch {
	case m.IsStreamingClient() && m.IsStreamingServer():
		return "bidi-stream"
	case m.IsStreamingClient():
		return "client-stream"
	case m.IsStreamingServer():
		return "server-stream"
	}
	return "unary"
}

func (c *CLI) engineCmd() *cobra.Command {
	var compact bool
	cmd := &cobra.Command{
		Use:   "engine [METHOD [JSON_REQUEST...]]",
		Short: "Call any Engine gRPC method with a JSON request (lists the methods without one)",
		Long: `Call any method of the Engine gRPC service. The request is the method's
input message in protobuf JSON; it defaults to {}. Replies are printed as
protobuf JSON, one per message for streaming methods. For client-streaming
methods each JSON_REQUEST argument is one message of the stream, and with
none, messages are read from stdin, one JSON object a line.`,
		Args: cobra.ArbitraryArgs,
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			ms := engineService().Methods()
			for i := 0; i < ms.Len(); i++ {
				names = append(names, string(ms.Get(i).Name()))
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			svc := engineService()
			if len(args) == 0 {
				tw := tabwriter.NewWriter(c.Out, 0, 1, 3, ' ', 0)
				fmt.Fprintln(tw, "METHOD\tKIND\tREQUEST\tREPLY")
				ms := svc.Methods()
				rows := make([]string, 0, ms.Len())
				for i := 0; i < ms.Len(); i++ {
					m := ms.Get(i)
					rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", m.Name(), methodKind(m), m.Input().Name(), m.Output().Name()))
				}
				sort.Strings(rows)
				for _, r := range rows {
					fmt.Fprintln(tw, r)
				}
				return tw.Flush()
			}
			m := svc.Methods().ByName(protoreflect.Name(args[0]))
			if m == nil {
				return fmt.Errorf("unknown Engine method %q: `docker engine` lists them", args[0])
			}
			if _, err := c.engine(); err != nil {
				return err
			}
			reqs := args[1:]
			if len(reqs) == 0 && !m.IsStreamingClient() {
				reqs = []string{"{}"}
			}
			var msgs []*dynamicpb.Message
			for _, r := range reqs {
				in := dynamicpb.NewMessage(m.Input())
				if err := protojson.Unmarshal([]byte(r), in); err != nil {
					return fmt.Errorf("request for %s (%s): %w", m.Name(), m.Input().FullName(), err)
				}
				msgs = append(msgs, in)
			}
			if len(msgs) > 1 && !m.IsStreamingClient() {
				return fmt.Errorf("%s takes one request", m.Name())
			}
			print := func(out *dynamicpb.Message) error {
				b, err := protojson.Marshal(out)
				if err != nil {
					return err
				}
				// protojson's own spacing varies on purpose; this is stable.
				var buf bytes.Buffer
				if compact {
					err = json.Compact(&buf, b)
				} else {
					err = json.Indent(&buf, b, "", "  ")
				}
				if err != nil {
					return err
				}
				buf.WriteByte('\n')
				_, err = buf.WriteTo(c.Out)
				return err
			}
			full := fmt.Sprintf("/%s/%s", svc.FullName(), m.Name())
			ctx := cmd.Context()
			if !m.IsStreamingClient() && !m.IsStreamingServer() {
				out := dynamicpb.NewMessage(m.Output())
				if err := c.conn.Invoke(ctx, full, msgs[0], out); err != nil {
					return c.daemonErr(err)
				}
				return print(out)
			}
			desc := &grpc.StreamDesc{StreamName: string(m.Name()), ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient()}
			st, err := c.conn.NewStream(ctx, desc, full)
			if err != nil {
				return c.daemonErr(err)
			}
			for _, in := range msgs {
				if err := st.SendMsg(in); err != nil {
					return c.daemonErr(err)
				}
			}
			if m.IsStreamingClient() && len(args) == 1 {
				// Messages from stdin, one JSON object a line.
				if err := c.sendLines(st, m); err != nil {
					return err
				}
			}
			if err := st.CloseSend(); err != nil {
				return c.daemonErr(err)
			}
			for {
				out := dynamicpb.NewMessage(m.Output())
				err := st.RecvMsg(out)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return c.daemonErr(err)
				}
				if err := print(out); err != nil {
					return err
				}
				if !m.IsStreamingServer() {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&compact, "compact", false, "Print each reply on one line")
	return cmd
}

func (c *CLI) sendLines(st grpc.ClientStream, m protoreflect.MethodDescriptor) error {
	data, err := io.ReadAll(c.In)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		in := dynamicpb.NewMessage(m.Input())
		if err := protojson.Unmarshal([]byte(line), in); err != nil {
			return fmt.Errorf("request for %s: %w", m.Name(), err)
		}
		if err := st.SendMsg(in); err != nil {
			return c.daemonErr(err)
		}
	}
	return nil
}
