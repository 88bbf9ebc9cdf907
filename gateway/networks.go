package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// inspectResponse is a container's inspect document with API 1.51's
// NetworkSettings, which still has the deprecated top-level fields of
// the default network (IPAddress, Gateway, MacAddress, …) that newer Go
// types dropped; the outer field wins over the embedded one in JSON.
type inspectResponse struct {
	container.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

type legacyNetworkSettings struct {
	Bridge                 string
	SandboxID              string
	SandboxKey             string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	Ports                  network.PortMap
	SecondaryIPAddresses   []any
	SecondaryIPv6Addresses []any
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
	Networks               map[string]*network.EndpointSettings
}

func containerInspectJSON(c *enginev1.Container) inspectResponse {
	in := containerInspect(c)
	ns := c.GetNetworkSettings()
	out := &legacyNetworkSettings{SandboxID: ns.GetSandboxId(), SandboxKey: ns.GetSandboxKey(), Ports: in.NetworkSettings.Ports,
		Networks: in.NetworkSettings.Networks}
	// The top-level fields are the default bridge's endpoint, as dockerd's.
	if ep := ns.GetNetworks()["bridge"]; ep != nil {
		out.EndpointID, out.Gateway, out.IPAddress = ep.GetEndpointId(), ep.GetGateway(), ep.GetIpAddress()
		out.IPPrefixLen, out.MacAddress = int(ep.GetIpPrefixLen()), ep.GetMacAddress()
	}
	return inspectResponse{InspectResponse: in, NetworkSettings: out}
}

// networkSettings is the Go type's view of a container's networks.
func networkSettings(ns *enginev1.NetworkSettings) *container.NetworkSettings {
	out := &container.NetworkSettings{SandboxID: ns.GetSandboxId(), SandboxKey: ns.GetSandboxKey(), Ports: portMap(ns.GetPorts()),
		Networks: map[string]*network.EndpointSettings{}}
	for name, ep := range ns.GetNetworks() {
		out.Networks[name] = endpointSettings(ep)
	}
	return out
}

func endpointSettings(ep *enginev1.EndpointSettings) *network.EndpointSettings {
	es := &network.EndpointSettings{NetworkID: ep.GetNetworkId(), EndpointID: ep.GetEndpointId(), IPPrefixLen: int(ep.GetIpPrefixLen()),
		Aliases: ep.GetAliases(), Links: ep.GetLinks()}
	if a, err := netip.ParseAddr(ep.GetIpv4Address()); err == nil {
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
	}
	es.Gateway, _ = netip.ParseAddr(ep.GetGateway())
	es.IPAddress, _ = netip.ParseAddr(ep.GetIpAddress())
	if mac, err := net.ParseMAC(ep.GetMacAddress()); err == nil {
		es.MacAddress = network.HardwareAddr(mac)
	}
	es.Aliases, es.DNSNames = ep.GetAliases(), ep.GetDnsNames()
	return es
}

// oldAliases is what API versions before 1.45 showed as a user-defined
// network's Aliases: the aliases plus the short id and the hostname
// (dockerd moved those to DNSNames in 1.45).
func oldAliases(ctx context.Context, c *enginev1.Container, networks map[string]*network.EndpointSettings) {
	if !versionBefore(ctx, "1.45") {
		return
	}
	for name, ep := range networks {
		if name == "bridge" || name == "host" || name == "none" || ep == nil {
			continue
		}
		for _, a := range []string{shortID(c.GetId()), c.GetConfig().GetHostname()} {
			if a != "" && !slices.Contains(ep.Aliases, a) {
				// Clipped: the slice may be the engine's, shared with other replies.
				ep.Aliases = append(slices.Clip(ep.Aliases), a)
			}
		}
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func init() {
	registerResponse(func(_ context.Context, n *enginev1.Network) (any, error) { return networkInspect(n), nil })
	registerResponse(func(_ context.Context, m *enginev1.NetworkListResponse) (any, error) {
		out := make([]network.Inspect, 0, len(m.GetNetworks()))
		for _, n := range m.GetNetworks() {
			out = append(out, networkInspect(n))
		}
		return out, nil
	})
	registerResponse(func(context.Context, *enginev1.NetworkRemoveResponse) (any, error) { return noBody{}, nil })
	registerResponse(func(_ context.Context, m *enginev1.NetworkPruneResponse) (any, error) {
		return network.PruneReport{NetworksDeleted: m.GetNetworksDeleted()}, nil
	})
	successStatus[(&enginev1.NetworkRemoveResponse{}).ProtoReflect().Descriptor().FullName()] = http.StatusNoContent
}

// networkInspect is dockerd's network document (GET /networks lists
// the same, with the containers, as dockerd's list does).
func networkInspect(n *enginev1.Network) network.Inspect {
	out := network.Inspect{Network: network.Network{Name: n.GetName(), ID: n.GetId(), Created: n.GetCreated().AsTime(), Scope: "local",
		Driver: n.GetDriver(), EnableIPv4: n.GetDriver() == "bridge", IPAM: network.IPAM{Driver: "default", Config: []network.IPAMConfig{}},
		Internal: n.GetInternal(), Attachable: n.GetAttachable(), Options: n.GetOptions(), Labels: n.GetLabels()},
		Containers: map[string]network.EndpointResource{}}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if s, err := netip.ParsePrefix(n.GetSubnet()); err == nil {
		c := network.IPAMConfig{Subnet: s}
		c.Gateway, _ = netip.ParseAddr(n.GetGateway())
		c.IPRange, _ = netip.ParsePrefix(n.GetIpRange())
		for name, v := range n.GetAuxAddresses() {
			if a, err := netip.ParseAddr(v); err == nil {
				if c.AuxAddress == nil {
					c.AuxAddress = map[string]netip.Addr{}
				}
				c.AuxAddress[name] = a
			}
		}
		out.IPAM.Config = append(out.IPAM.Config, c)
	}
	for id, c := range n.GetContainers() {
		r := network.EndpointResource{Name: c.GetName(), EndpointID: c.GetEndpointId()}
		if mac, err := net.ParseMAC(c.GetMacAddress()); err == nil {
			r.MacAddress = network.HardwareAddr(mac)
		}
		r.IPv4Address, _ = netip.ParsePrefix(c.GetIpv4Address())
		out.Containers[id] = r
	}
	return out
}

// supportedNetworkCreate are the fields of Docker's network create body
// engined applies; any other set is a 400.
var supportedNetworkCreate = fieldSet("Name", "Driver", "Scope", "EnableIPv4", "EnableIPv6", "IPAM", "Internal", "Attachable", "Options", "Labels")

// networkCreate is POST /networks/create.
func (h *handlers) networkCreate(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := networkCreateRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := h.engine.NetworkCreate(r.Context(), req)
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(network.CreateResponse{ID: resp.GetId()})
}

// networkCreateRequest checks Docker's body: what engined does not do
// is refused by name.
func networkCreateRequest(body []byte) (*enginev1.NetworkCreateRequest, error) {
	var cr network.CreateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&cr); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if err := unsupportedFields("NetworkCreateRequest", reflect.ValueOf(&cr).Elem(), supportedNetworkCreate); err != nil {
		return nil, err
	}
	switch {
	case cr.Scope != "" && cr.Scope != "local":
		return nil, fmt.Errorf("network scope %q is not supported: only local", cr.Scope)
	case cr.EnableIPv6 != nil && *cr.EnableIPv6:
		return nil, errors.New("IPv6 networks (EnableIPv6) are not supported yet")
	case cr.EnableIPv4 != nil && !*cr.EnableIPv4:
		return nil, errors.New("networks without IPv4 (EnableIPv4=false) are not supported")
	}
	req := &enginev1.NetworkCreateRequest{Name: cr.Name, Driver: cr.Driver, Internal: cr.Internal, Labels: cr.Labels, Options: cr.Options,
		Attachable: cr.Attachable}
	if ipam := cr.IPAM; ipam != nil {
		if ipam.Driver != "" && ipam.Driver != "default" {
			return nil, fmt.Errorf("IPAM driver %q is not supported: only default", ipam.Driver)
		}
		if len(ipam.Options) > 0 {
			return nil, errors.New("IPAM options (IPAM.Options) are not supported")
		}
		switch len(ipam.Config) {
		case 0:
		case 1:
			c := ipam.Config[0]
			if c.IPRange.IsValid() {
				req.IpRange = c.IPRange.String()
			}
			for name, a := range c.AuxAddress {
				if req.AuxAddresses == nil {
					req.AuxAddresses = map[string]string{}
				}
				req.AuxAddresses[name] = a.String()
			}
			if c.Subnet.IsValid() {
				req.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				req.Gateway = c.Gateway.String()
			}
		default:
			return nil, errors.New("more than one IPAM config (several --subnet) is not supported yet")
		}
	}
	return req, nil
}

// networkConnect is POST /networks/{id}/connect.
func (h *handlers) networkConnect(w http.ResponseWriter, r *http.Request, p map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var cr network.ConnectRequest
	if err := json.Unmarshal(body, &cr); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if cr.Container == "" {
		writeError(w, http.StatusBadRequest, "Container must be set")
		return
	}
	req := &enginev1.NetworkConnectRequest{Network: p["id"], Container: cr.Container}
	if cr.EndpointConfig != nil {
		if err := endpointSupported("EndpointConfig", cr.EndpointConfig); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		req.Endpoint = endpointConfig(cr.EndpointConfig)
	}
	if _, err := h.engine.NetworkConnect(r.Context(), req); err != nil {
		writeGRPCError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// networkDisconnect is POST /networks/{id}/disconnect.
func (h *handlers) networkDisconnect(w http.ResponseWriter, r *http.Request, p map[string]string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var dr network.DisconnectRequest
	if err := json.Unmarshal(body, &dr); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if dr.Container == "" {
		writeError(w, http.StatusBadRequest, "Container must be set")
		return
	}
	if _, err := h.engine.NetworkDisconnect(r.Context(), &enginev1.NetworkDisconnectRequest{Network: p["id"], Container: dr.Container, Force: dr.Force}); err != nil {
		writeGRPCError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// notYet answers a Docker operation engined does not have yet with a 501
// that names it, rather than a bare 404.
func notYet(what string) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		writeError(w, http.StatusNotImplemented, what+" is not supported by engined yet")
	}
}
