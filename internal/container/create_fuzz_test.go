package container

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/engined/engined/gateway"
	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/oci"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// createSeeds are bodies of POST /containers/create as Docker clients send
// them, plus a few that are wrong in the ways clients get wrong.
var createSeeds = []string{
	// docker create busybox (CLI 28).
	`{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}`,
	// docker run -it --rm -u 1000:1000 -w /tmp -e A=1 --entrypoint /bin/sh busybox -c id
	`{"User":"1000:1000","Tty":true,"OpenStdin":true,"AttachStdin":true,"Env":["A=1","B"],"Cmd":["-c","id"],"Entrypoint":["/bin/sh"],"Image":"busybox","WorkingDir":"/tmp","HostConfig":{"AutoRemove":true}}`,
	// Limits, capabilities, binds, sysctls, ulimits, restart policy.
	`{"Image":"busybox","Cmd":["true"],"StopTimeout":5,"StopSignal":"SIGUSR1","HostConfig":{"Binds":["/tmp/x:/x:ro","/tmp/y:/y:rw,z"],"CapAdd":["NET_ADMIN","CAP_SYS_TIME"],"CapDrop":["ALL"],"Memory":67108864,"MemorySwap":134217728,"MemoryReservation":1048576,"NanoCpus":500000000,"CpuShares":512,"CpusetCpus":"0","PidsLimit":100,"ShmSize":1048576,"Sysctls":{"net.ipv4.ip_forward":"1","kernel.shmmax":"1"},"Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}],"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"Tmpfs":{"/run":"size=1m"},"ExtraHosts":["h:1.2.3.4"],"Dns":["1.1.1.1"],"LogConfig":{"Type":"json-file","Config":{"max-size":"1m","max-file":"2"}}}}`,
	`{"Image":"busybox","Entrypoint":[""],"Cmd":["/bin/true"],"HostConfig":{"Privileged":true,"ReadonlyRootfs":true}}`,
	`{"Image":"busybox","ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}},"Labels":{"a":"b"}}`,
	// Wrong: types, values, shapes.
	`{"Image":"busybox","Cmd":"true"}`,
	`{"Image":"busybox","HostConfig":{"Binds":["relative:/x"]}}`,
	`{"Image":"busybox","HostConfig":{"Binds":["/a:/b:/c:/d"]}}`,
	`{"Image":"busybox","HostConfig":{"Binds":["/a:/b:nope"]}}`,
	`{"Image":"busybox","HostConfig":{"Memory":-1,"MemorySwap":5}}`,
	`{"Image":"busybox","HostConfig":{"NanoCpus":1,"CpuQuota":1}}`,
	`{"Image":"busybox","HostConfig":{"NanoCpus":9223372036854775807}}`,
	`{"Image":"busybox","HostConfig":{"ShmSize":-1}}`,
	`{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"bogus","Soft":1,"Hard":1}]}}`,
	`{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"nofile","Soft":-2,"Hard":1}]}}`,
	`{"Image":"busybox","HostConfig":{"Sysctls":{"kernel.hostname":"x"}}}`,
	`{"Image":"busybox","HostConfig":{"CapAdd":["CAP_BOGUS"]}}`,
	`{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}`,
	`{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":4294967297}}}`,
	`{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always"},"AutoRemove":true}}`,
	`{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"syslog"}}}`,
	`{"Image":"busybox","StopTimeout":4294967296}`,
	`{"Image":"busybox","User":"a:b:c"}`,
	`{"Image":"busybox","User":"4294967296"}`,
	`{"Image":"busybox","WorkingDir":"relative"}`,
	`{"Image":"busybox","HostConfig":{"Dns":["not-an-ip"]}}`,
	`{"Image":"busybox","ExposedPorts":{"http":{}}}`,
	`{"Image":"","Cmd":[]}`, `{}`, `null`, `[]`, ``, `{"HostConfig":null,"Config":null}`,
	`{"Image":"busybox","Entrypoint":[],"Cmd":[]}`,
	`{"Image":"busybox","Env":["=x","\u0000=1"],"Hostname":"a\u0000b"}`,
}

// FuzzContainerCreate drives a create body through the gateway's
// conversion, the engine's create validation and record, and the OCI
// spec built from that record at start, as the daemon does (with a fixed
// image run config and a root filesystem of the test's own instead of
// the image service and the overlay mount). Nothing may panic; bad input
// is an error, and a validation error is InvalidArgument.
func FuzzContainerCreate(f *testing.F) {
	for _, s := range createSeeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "web-1")
	}
	f.Add([]byte(createSeeds[1]), "/bad name")
	f.Add([]byte(createSeeds[1]), "a")

	rootfs := f.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbad:x:nope:0::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\nwheel:x:10:root\n"), 0o644)
	s := &Service{cfg: Config{DataRoot: f.TempDir()}}
	imgCfg := v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}, WorkingDir: "/", Labels: map[string]string{"img": "1"}}

	f.Fuzz(func(t *testing.T, body []byte, name string) {
		req, err := gateway.CreateRequest(body)
		if err != nil {
			return // the gateway answers 400
		}
		req.Name = name
		want := proto.Clone(req.GetConfig()).(*enginev1.ContainerConfig)
		rec, err := newRecord(req, imgCfg, nil, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
		if err != nil {
			if c := errdefs.Code(err); c != codes.InvalidArgument {
				t.Fatalf("create validation: %v (%v), want InvalidArgument", err, c)
			}
			return
		}
		// What Create stores is what start reads back.
		got, err := rec.config()
		if err != nil {
			t.Fatalf("stored config does not read back: %v", err)
		}
		want.Hostname = got.GetHostname() // defaulted to the ID
		if !proto.Equal(got, want) {
			t.Fatalf("stored config %v, want %v", got, want)
		}
		if _, err := rec.hostConfig(); err != nil {
			t.Fatalf("stored host config does not read back: %v", err)
		}
		opts, err := s.specOptions(rec, imgCfg, rootfs)
		if err != nil {
			if c := errdefs.Code(err); c != codes.InvalidArgument {
				t.Fatalf("spec options: %v (%v), want InvalidArgument", err, c)
			}
			return
		}
		spec, err := oci.Spec(opts)
		if err != nil {
			return // start answers InvalidArgument
		}
		if args := append([]string{rec.Path}, rec.Args...); !slices.Equal(spec.Process.Args, args) {
			t.Fatalf("spec args %q, want %q", spec.Process.Args, args)
		}
		if spec.Root.Path != rootfs {
			t.Fatalf("spec root %q, want %q", spec.Root.Path, rootfs)
		}
	})
}
