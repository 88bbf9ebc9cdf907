package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/engined/engined/gateway"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

type networkRow struct {
	n     network.Inspect
	trunc bool
}

func (r networkRow) MarshalJSON() ([]byte, error) { return methodsJSON(r) }
func (r networkRow) ID() string {
	if r.trunc {
		return truncID(r.n.ID)
	}
	return r.n.ID
}
func (r networkRow) Name() string      { return r.n.Name }
func (r networkRow) Driver() string    { return r.n.Driver }
func (r networkRow) Scope() string     { return r.n.Scope }
func (r networkRow) IPv6() string      { return strconv.FormatBool(r.n.EnableIPv6) }
func (r networkRow) IPv4() string      { return strconv.FormatBool(r.n.EnableIPv4) }
func (r networkRow) Internal() string  { return strconv.FormatBool(r.n.Internal) }
func (r networkRow) CreatedAt() string { return r.n.Created.String() }
func (r networkRow) Labels() string {
	var kv []string
	for k, v := range r.n.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}
func (r networkRow) Label(name string) string { return r.n.Labels[name] }

var networkHeader = headers{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
	"IPv4": "IPV4", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}

func (c *CLI) networkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks", Args: groupArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.Out)
		return cmd.Help()
	}}
	inspect := withUnsupported(c.inspectSub("inspect [OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or more networks", inspectNetworkObj, c.completeNetworks),
		func(f *pflag.FlagSet) { f.BoolP("verbose", "v", false, "Verbose output for diagnostics") }, "verbose")
	cmd.AddCommand(c.networkLsCmd(), c.networkCreateCmd(), c.networkRmCmd(), c.networkConnectCmd(), c.networkDisconnectCmd(), c.networkPruneCmd(), inspect)
	return cmd
}

func (c *CLI) networkLsCmd() *cobra.Command {
	var quiet, noTrunc bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use: "ls [OPTIONS]", Aliases: []string{"list"}, Short: "List networks", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			fj, err := filterJSON(filters)
			if err != nil {
				return flagError{err}
			}
			resp, err := e.NetworkList(cmd.Context(), &enginev1.NetworkListRequest{Filters: fj})
			if err != nil {
				return c.daemonErr(err)
			}
			list, err := dockerShape[[]network.Inspect](cmd.Context(), resp)
			if err != nil {
				return err
			}
			sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
			rows := make([]any, 0, len(list))
			for _, n := range list {
				rows = append(rows, networkRow{n: n, trunc: !noTrunc})
			}
			if format == "" {
				format = c.configFormat("networksFormat")
			}
			if quiet && format == "" {
				format = "{{.ID}}"
			}
			return writeRows(c.Out, format, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", networkHeader, rows)
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, `Provide filter values (e.g. "driver=bridge")`)
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	return cmd
}

func (c *CLI) networkCreateCmd() *cobra.Command {
	var driver, scope, ipamDriver string
	var subnets, gateways, ipRanges, labels, opts, aux []string
	var internal, attachable, ipv6, ipv4, configOnly, ingress bool
	var configFrom string
	var ipamOpts []string
	cmd := &cobra.Command{
		Use: "create [OPTIONS] NETWORK", Short: "Create a network", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			cr := network.CreateRequest{Name: args[0], Driver: driver, Scope: scope, Internal: internal, Attachable: attachable,
				Labels: kvMap(labels), Options: kvMap(opts), ConfigOnly: configOnly, Ingress: ingress}
			if configFrom != "" {
				cr.ConfigFrom = &network.ConfigReference{Network: configFrom}
			}
			if cmd.Flags().Changed("ipv6") {
				cr.EnableIPv6 = &ipv6
			}
			if cmd.Flags().Changed("ipv4") {
				cr.EnableIPv4 = &ipv4
			}
			if len(subnets) > 0 || len(gateways) > 0 || len(ipRanges) > 0 || ipamDriver != "default" || len(aux) > 0 || len(ipamOpts) > 0 {
				ipam := &network.IPAM{Driver: ipamDriver, Options: kvMap(ipamOpts)}
				if len(gateways) > len(subnets) || len(ipRanges) > len(subnets) {
					return fmt.Errorf("every ip-range or gateway must have a corresponding subnet")
				}
				for i, s := range subnets {
					var cfg network.IPAMConfig
					if cfg.Subnet, err = netip.ParsePrefix(s); err != nil {
						return fmt.Errorf("invalid subnet %s: %w", s, err)
					}
					if i < len(gateways) {
						if cfg.Gateway, err = netip.ParseAddr(gateways[i]); err != nil {
							return fmt.Errorf("invalid gateway %s: %w", gateways[i], err)
						}
					}
					if i < len(ipRanges) {
						if cfg.IPRange, err = netip.ParsePrefix(ipRanges[i]); err != nil {
							return fmt.Errorf("invalid ip-range %s: %w", ipRanges[i], err)
						}
					}
					if i == 0 && len(aux) > 0 {
						cfg.AuxAddress = map[string]netip.Addr{}
						for k, v := range kvMap(aux) {
							a, err := netip.ParseAddr(v)
							if err != nil {
								return fmt.Errorf("invalid aux-address %s: %w", v, err)
							}
							cfg.AuxAddress[k] = a
						}
					}
					ipam.Config = append(ipam.Config, cfg)
				}
				cr.IPAM = ipam
			}
			body, err := json.Marshal(cr)
			if err != nil {
				return err
			}
			req, err := gateway.NetworkCreateRequest(body)
			if err != nil {
				return daemonError{msg: err.Error()}
			}
			resp, err := e.NetworkCreate(cmd.Context(), req)
			if err != nil {
				return c.daemonErr(err)
			}
			fmt.Fprintln(c.Out, resp.GetId())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	f.StringVar(&scope, "scope", "", "Control the network's scope")
	f.StringVar(&configFrom, "config-from", "", "The network from which to copy the configuration")
	f.BoolVar(&configOnly, "config-only", false, "Create a configuration only network")
	f.BoolVar(&ingress, "ingress", false, "Create swarm routing-mesh network")
	f.StringArrayVar(&ipamOpts, "ipam-opt", nil, "Set IPAM driver specific options")
	f.StringVar(&ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	f.StringArrayVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	f.StringArrayVar(&gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	f.StringArrayVar(&ipRanges, "ip-range", nil, "Allocate container ip from a sub-range")
	f.StringArrayVar(&aux, "aux-address", nil, "Auxiliary IPv4 or IPv6 addresses used by Network driver")
	f.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	f.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	f.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	f.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 address assignment")
	f.BoolVar(&ipv4, "ipv4", true, "Enable or disable IPv4 address assignment")
	return cmd
}

func kvMap(kvs []string) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func (c *CLI) networkRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "rm NETWORK [NETWORK...]", Aliases: []string{"remove"}, Short: "Remove one or more networks", Args: minArgs(1),
		ValidArgsFunction: c.completeNetworks,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			failed := false
			for _, n := range args {
				if _, err := e.NetworkRemove(cmd.Context(), &enginev1.NetworkRemoveRequest{Id: n}); err != nil {
					err = c.daemonErr(err)
					if force && isNotFound(err) {
						continue
					}
					fmt.Fprintln(c.Err, err)
					failed = true
					continue
				}
				fmt.Fprintln(c.Out, n)
			}
			if failed {
				// The Docker CLI's words for it.
				return StatusError{Code: 1, Status: "exit status 1"}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func (c *CLI) networkConnectCmd() *cobra.Command {
	var ip, ip6, mac string
	var aliases, links, linkLocal, driverOpts []string
	var gwPriority int
	cmd := &cobra.Command{
		Use: "connect [OPTIONS] NETWORK CONTAINER", Short: "Connect a container to a network", Args: exactArgs(2),
		ValidArgsFunction: c.completeNetworks,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			_, err = e.NetworkConnect(cmd.Context(), &enginev1.NetworkConnectRequest{Network: args[0], Container: args[1],
				Endpoint: &enginev1.EndpointConfig{Ipv4Address: ip, MacAddress: mac, Aliases: aliases, Links: links}})
			return c.daemonErr(err)
		},
	}
	cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address (e.g., \"172.30.100.104\")")
	cmd.Flags().StringVar(&mac, "mac-address", "", "MAC address")
	cmd.Flags().MarkHidden("mac-address")
	cmd.Flags().StringSliceVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	cmd.Flags().StringArrayVar(&links, "link", nil, "Add link to another container")
	cmd.Flags().StringSliceVar(&driverOpts, "driver-opt", nil, "driver options for the network")
	cmd.Flags().IntVar(&gwPriority, "gw-priority", 0, "Highest gw-priority provides the default gateway. Accepts positive and negative values.")
	cmd.Flags().StringVar(&ip6, "ip6", "", "IPv6 address (e.g., \"2001:db8::33\")")
	cmd.Flags().StringSliceVar(&linkLocal, "link-local-ip", nil, "Add a link-local address for the container")
	return withUnsupported(cmd, func(*pflag.FlagSet) {}, "driver-opt", "gw-priority", "ip6", "link-local-ip")
}

func (c *CLI) networkDisconnectCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "disconnect [OPTIONS] NETWORK CONTAINER", Short: "Disconnect a container from a network", Args: exactArgs(2),
		ValidArgsFunction: c.completeNetworks,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := c.engine()
			if err != nil {
				return err
			}
			_, err = e.NetworkDisconnect(cmd.Context(), &enginev1.NetworkDisconnectRequest{Network: args[0], Container: args[1], Force: force})
			return c.daemonErr(err)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

func (c *CLI) networkPruneCmd() *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use: "prune [OPTIONS]", Short: "Remove all unused networks", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force && !c.confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?") {
				return nil
			}
			e, err := c.engine()
			if err != nil {
				return err
			}
			fj, err := filterJSON(filters)
			if err != nil {
				return flagError{err}
			}
			resp, err := e.NetworkPrune(cmd.Context(), &enginev1.NetworkPruneRequest{Filters: fj})
			if err != nil {
				return c.daemonErr(err)
			}
			c.printDeleted("Networks", resp.GetNetworksDeleted())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

var _ = time.Now
