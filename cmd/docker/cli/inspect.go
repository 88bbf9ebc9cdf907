package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/engined/engined/gateway"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// inspected is one object for inspect: its Docker type (for templates)
// and the JSON the REST API answers for it.
type inspected struct {
	typed any
	raw   []byte
}

func shapeOf[T any](ctx context.Context, m proto.Message) (inspected, error) {
	v, err := gateway.DockerShape(ctx, m)
	if err != nil {
		return inspected{}, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return inspected{}, err
	}
	var typed T
	if err := json.Unmarshal(raw, &typed); err != nil {
		return inspected{}, err
	}
	return inspected{typed: typed, raw: raw}, nil
}

type inspectFunc func(ctx context.Context, e enginev1.EngineClient, ref string, size bool) (inspected, error)

func inspectContainerObj(ctx context.Context, e enginev1.EngineClient, ref string, size bool) (inspected, error) {
	m, err := e.ContainerInspect(ctx, &enginev1.ContainerInspectRequest{Id: ref, Size: size})
	if err != nil {
		return inspected{}, err
	}
	return shapeOf[container.InspectResponse](ctx, m)
}

func inspectImageObj(ctx context.Context, e enginev1.EngineClient, ref string, _ bool) (inspected, error) {
	m, err := e.ImageInspect(ctx, &enginev1.ImageInspectRequest{Name: ref})
	if err != nil {
		return inspected{}, err
	}
	return shapeOf[image.InspectResponse](ctx, m)
}

func inspectNetworkObj(ctx context.Context, e enginev1.EngineClient, ref string, _ bool) (inspected, error) {
	m, err := e.NetworkInspect(ctx, &enginev1.NetworkInspectRequest{Id: ref})
	if err != nil {
		return inspected{}, err
	}
	return shapeOf[network.Inspect](ctx, m)
}

// printInspect prints objects as docker inspect does: an indented JSON
// array, or the template once per object.
func (c *CLI) printInspect(ctx context.Context, refs []string, format string, size bool, kinds []inspectFunc, notFound func(string) error) error {
	e, err := c.engine()
	if err != nil {
		return err
	}
	var objs []inspected
	var errs []error
	for _, ref := range refs {
		var obj inspected
		var found bool
		var lastErr error
		for _, k := range kinds {
			o, err := k(ctx, e, ref, size)
			if err != nil {
				lastErr = c.daemonErr(err)
				if len(kinds) > 1 && (isNotFound(lastErr) || strings.Contains(lastErr.Error(), "invalid reference format")) {
					continue
				}
				break
			}
			obj, found = o, true
			break
		}
		if !found {
			if len(kinds) > 1 && (lastErr == nil || isNotFound(lastErr) || strings.Contains(lastErr.Error(), "invalid reference format")) {
				lastErr = notFound(ref)
			}
			errs = append(errs, lastErr)
			continue
		}
		objs = append(objs, obj)
	}
	if format == "" || format == "json" {
		var buf bytes.Buffer
		if len(objs) == 0 {
			buf.WriteString("[]")
		} else {
			var all bytes.Buffer
			all.WriteString("[")
			for i, o := range objs {
				if i > 0 {
					all.WriteString(",")
				}
				all.Write(o.raw)
			}
			all.WriteString("]")
			if err := json.Indent(&buf, all.Bytes(), "", "    "); err != nil {
				return err
			}
		}
		buf.WriteString("\n")
		buf.WriteTo(c.Out)
	} else {
		tmpl, err := parseTemplate(templateString(format))
		if err != nil {
			return StatusError{Code: 64, Status: err.Error()}
		}
		var out bytes.Buffer
		for _, o := range objs {
			var b bytes.Buffer
			if err := tmpl.Execute(&b, o.typed); err != nil {
				// As the Docker CLI: retry on the raw JSON's map.
				var m any
				dec := json.NewDecoder(bytes.NewReader(o.raw))
				dec.UseNumber()
				if dec.Decode(&m) != nil {
					errs = append(errs, fmt.Errorf("template parsing error: %w", err))
					continue
				}
				b.Reset()
				raw, cerr := tmpl.Clone()
				if cerr != nil {
					return cerr
				}
				// As the Docker CLI: on the raw JSON a missing key is an error.
				if err := raw.Option("missingkey=error").Execute(&b, m); err != nil {
					errs = append(errs, fmt.Errorf("template parsing error: %w", err))
					continue
				}
			}
			out.Write(b.Bytes())
			out.WriteByte('\n')
		}
		if out.Len() == 0 {
			out.WriteString("\n")
		}
		out.WriteTo(c.Out)
	}
	if err := errors.Join(errs...); err != nil {
		return StatusError{Code: 1, Status: err.Error()}
	}
	return nil
}

func (c *CLI) inspectCmd() *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use: "inspect [OPTIONS] NAME|ID [NAME|ID...]", Short: "Return low-level information on Docker objects", Args: minArgs(1),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			var kinds []inspectFunc
			switch typ {
			case "":
				kinds = []inspectFunc{inspectContainerObj, inspectImageObj, inspectNetworkObj, inspectVolumeObj}
			case "container":
				kinds = []inspectFunc{inspectContainerObj}
			case "image":
				kinds = []inspectFunc{inspectImageObj}
			case "network":
				kinds = []inspectFunc{inspectNetworkObj}
			case "volume":
				kinds = []inspectFunc{inspectVolumeObj}
			case "config", "node", "plugin", "secret", "service", "task":
				return fmt.Errorf("%s inspect is not supported by engined yet", typ)
			default:
				return fmt.Errorf("%q is not a valid value for --type", typ)
			}
			return c.printInspect(cmd.Context(), args, format, size, kinds, func(ref string) error {
				return fmt.Errorf("Error: No such object: %s", ref)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	cmd.Flags().StringVar(&typ, "type", "", "Only inspect objects of the given type")
	return cmd
}

// inspectSub is "container inspect", "image inspect", "network inspect".
func (c *CLI) inspectSub(use, short string, kind inspectFunc, complete func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)) *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use: use, Short: short, Args: minArgs(1), ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.printInspect(cmd.Context(), args, format, size, []inspectFunc{kind}, nil)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	if use[0] == 'i' && strings.Contains(use, "CONTAINER") {
		cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes")
	}
	return cmd
}
