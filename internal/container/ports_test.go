package container

import (
	"reflect"
	"strings"
	"testing"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

func TestPortSpecs(t *testing.T) {
	cfg := &enginev1.ContainerConfig{ExposedPorts: []string{"80", "443/tcp", "53/UDP"}}
	mergeExposedPorts(cfg, map[string]struct{}{"8080/tcp": {}, "80/tcp": {}})
	if want := []string{"53/udp", "80/tcp", "443/tcp", "8080/tcp"}; !reflect.DeepEqual(cfg.ExposedPorts, want) {
		t.Errorf("merged exposed ports %q, want %q", cfg.ExposedPorts, want)
	}
	hc := &enginev1.HostConfig{PublishAllPorts: true, PortBindings: []*enginev1.PortBinding{
		{ContainerPort: "80/tcp", HostPort: "8000-8010"},
		{ContainerPort: "80/tcp", HostIp: "127.0.0.1", HostPort: "9000"},
		{ContainerPort: "53/udp"},
	}}
	got, err := portSpecs(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortSpec{
		{Proto: "tcp", ContainerPort: 80, HostPortStart: 8000, HostPortEnd: 8010},
		{Proto: "tcp", ContainerPort: 80, HostIP: "127.0.0.1", HostPortStart: 9000, HostPortEnd: 9000},
		{Proto: "udp", ContainerPort: 53},
		// -P: the exposed ports without a binding, ephemeral.
		{Proto: "tcp", ContainerPort: 443},
		{Proto: "tcp", ContainerPort: 8080},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("portSpecs:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidatePorts(t *testing.T) {
	for _, c := range []struct {
		mode    string
		exposed []string
		binding *enginev1.PortBinding
		all     bool
		want    string
	}{
		{binding: &enginev1.PortBinding{ContainerPort: "80/tcp", HostPort: "x"}, want: `invalid port specification: "x"`},
		{binding: &enginev1.PortBinding{ContainerPort: "80/tcp", HostPort: "0"}}, // ephemeral, as dockerd (testcontainers sends it)
		{binding: &enginev1.PortBinding{ContainerPort: "80/tcp", HostPort: "0-5"}, want: `invalid port specification: "0-5"`},
		{binding: &enginev1.PortBinding{ContainerPort: "80/tcp", HostPort: "9-8"}, want: `invalid port specification: "9-8"`},
		{binding: &enginev1.PortBinding{ContainerPort: "0/tcp"}, want: `invalid port specification: "0/tcp"`},
		{binding: &enginev1.PortBinding{ContainerPort: "80/xyz"}, want: "invalid proto: xyz"},
		{binding: &enginev1.PortBinding{ContainerPort: "80/sctp"}, want: "sctp"},
		{binding: &enginev1.PortBinding{ContainerPort: "80/tcp", HostIp: "nope"}, want: "invalid IP address: nope"},
		{binding: &enginev1.PortBinding{ContainerPort: "80/tcp", HostIp: "::"}, want: "IPv4 addresses only"},
		{exposed: []string{"http"}, want: `invalid port specification: "http"`},
		{mode: "container:x", binding: &enginev1.PortBinding{ContainerPort: "80/tcp"}, want: "conflicting options: port publishing and the container type network mode"},
		{mode: "container:x", all: true, want: "conflicting options: port publishing and the container type network mode"},
		{mode: "container:x", exposed: []string{"80"}, want: "conflicting options: port exposing and the container type network mode"},
		{mode: "bridge", binding: &enginev1.PortBinding{ContainerPort: "80/udp", HostIp: "127.0.0.1", HostPort: "53"}},
	} {
		hc := &enginev1.HostConfig{NetworkMode: c.mode, PublishAllPorts: c.all}
		if c.binding != nil {
			hc.PortBindings = []*enginev1.PortBinding{c.binding}
		}
		err := validatePorts(&enginev1.ContainerConfig{ExposedPorts: c.exposed}, hc)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c, err, c.want)
		}
	}
	if w := portWarnings(&enginev1.HostConfig{NetworkMode: "host", PortBindings: []*enginev1.PortBinding{{ContainerPort: "80/tcp"}}}); len(w) != 1 {
		t.Errorf("host network with -p: warnings %q", w)
	}
}
