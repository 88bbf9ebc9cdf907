// Package config is engined's configuration: dockerd-compatible flags and
// a JSON config file (dockerd's daemon.json keys). Flags win over the file;
// unknown keys and contradictory settings are errors that name the problem.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Defaults for a fresh machine.
const (
	DefaultDataRoot   = "/var/lib/engined"
	DefaultExecRoot   = "/run/engined"
	DefaultHost       = "unix:///run/engined/docker.sock"
	DefaultConfigFile = "/etc/engined/daemon.json"
	DefaultGroup      = "docker"

	DefaultHTTPReadTimeout = 30 * time.Second
	DefaultHTTPIdleTimeout = 2 * time.Minute
)

// Config is everything engined is started with.
type Config struct {
	Hosts              []string `json:"hosts,omitempty"`
	DataRoot           string   `json:"data-root,omitempty"`
	ExecRoot           string   `json:"exec-root,omitempty"`
	LogLevel           string   `json:"log-level,omitempty"`
	Debug              bool     `json:"debug,omitempty"`
	TLS                *bool    `json:"tls,omitempty"`
	TLSVerify          *bool    `json:"tlsverify,omitempty"`
	TLSCACert          string   `json:"tlscacert,omitempty"`
	TLSCert            string   `json:"tlscert,omitempty"`
	TLSKey             string   `json:"tlskey,omitempty"`
	Group              string   `json:"group,omitempty"`
	Labels             []string `json:"labels,omitempty"`
	RegistryMirrors    []string `json:"registry-mirrors,omitempty"`
	InsecureRegistries []string `json:"insecure-registries,omitempty"`
	// InitPath is the init binary --init runs as PID 1 (dockerd's
	// init-path); empty: looked up at start (docker-init, tini-static).
	InitPath string `json:"init-path,omitempty"`

	// The default bridge network, as dockerd's flags: its interface
	// (-b), its address and prefix (--bip), the MTU, IPv4 forwarding
	// and masquerading. NFTable is engined's nftables table (a hidden
	// flag: tests run engineds side by side).
	Bridge    string `json:"bridge,omitempty"`
	BIP       string `json:"bip,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	IPForward *bool  `json:"ip-forward,omitempty"`
	IPMasq    *bool  `json:"ip-masq,omitempty"`
	NFTable   string `json:"-"`
	// ICC: --icc, containers on the default bridge talk to each other
	// (on unless turned off). AddressPools: --default-address-pool,
	// where networks get subnets (daemon.json's default-address-pools).
	ICC          *bool         `json:"icc,omitempty"`
	AddressPools []AddressPool `json:"default-address-pools,omitempty"`
	// AddressPoolFlags are the --default-address-pool values as given
	// ("base=10.10.0.0/16,size=24"); they win over the file's.
	AddressPoolFlags []string `json:"-"`
	// DNS, DNSSearch and DNSOptions are dockerd's --dns, --dns-search
	// and --dns-opt: what a container without its own gets (on a
	// user-defined network, the servers are the embedded DNS's
	// upstreams).
	DNS        []string `json:"dns,omitempty"`
	DNSSearch  []string `json:"dns-search,omitempty"`
	DNSOptions []string `json:"dns-opts,omitempty"`
	// HostResolvConf is the host's resolv.conf that containers' DNS
	// settings and the embedded resolver's upstream servers come from
	// (a hidden flag: tests point it at a server of their own).
	HostResolvConf string `json:"-"`

	// HTTPReadTimeout bounds the wait for a request's headers and, while
	// a request body is read, for its next bytes; HTTPIdleTimeout closes
	// a keep-alive connection idle between requests. Neither applies to
	// responses, so attach, logs -f, events and wait stream for hours.
	// Flags only (hidden: dockerd has none), for operators and tests.
	HTTPReadTimeout time.Duration `json:"-"`
	HTTPIdleTimeout time.Duration `json:"-"`

	// ConfigFile is where the file settings came from (not a file key).
	ConfigFile string `json:"-"`
	// keys are the keys a config file set, so "false" and "" in a file
	// still count as set.
	keys map[string]bool
}

// Flags holds the flag set and the values it writes into.
type Flags struct {
	set        *pflag.FlagSet
	cfg        Config
	tls        bool
	tlsVerify  bool
	ipForward  bool
	ipMasq     bool
	icc        bool
	pools      []string
	configFile string
}

// flagKeys maps each flag to its config file key, where the two differ in
// name only as they do in dockerd (a repeatable flag has a plural key).
var flagKeys = map[string]string{
	"host":                 "hosts",
	"data-root":            "data-root",
	"exec-root":            "exec-root",
	"log-level":            "log-level",
	"debug":                "debug",
	"tls":                  "tls",
	"tlsverify":            "tlsverify",
	"tlscacert":            "tlscacert",
	"tlscert":              "tlscert",
	"tlskey":               "tlskey",
	"group":                "group",
	"label":                "labels",
	"registry-mirror":      "registry-mirrors",
	"insecure-registry":    "insecure-registries",
	"init-path":            "init-path",
	"bridge":               "bridge",
	"bip":                  "bip",
	"mtu":                  "mtu",
	"ip-forward":           "ip-forward",
	"ip-masq":              "ip-masq",
	"icc":                  "icc",
	"default-address-pool": "default-address-pools",
	"dns":                  "dns",
	"dns-search":           "dns-search",
	"dns-opt":              "dns-opts",
}

// Register adds engined's flags to fs.
func Register(fs *pflag.FlagSet) *Flags {
	f := &Flags{set: fs}
	c := &f.cfg
	fs.StringArrayVarP(&c.Hosts, "host", "H", nil, "daemon socket(s) to listen on: unix:///path, tcp://host:port, fd:// (repeatable)")
	fs.StringVar(&c.DataRoot, "data-root", DefaultDataRoot, "root directory of persistent state")
	fs.StringVar(&c.ExecRoot, "exec-root", DefaultExecRoot, "root directory of runtime state (sockets, pid file)")
	fs.StringVarP(&c.LogLevel, "log-level", "l", "info", "log level: debug, info, warn, error")
	fs.BoolVarP(&c.Debug, "debug", "D", false, "debug mode (log level debug)")
	fs.BoolVar(&f.tls, "tls", false, "serve TLS on tcp listeners (implied by --tlsverify)")
	fs.BoolVar(&f.tlsVerify, "tlsverify", false, "serve TLS and require client certificates signed by --tlscacert")
	fs.StringVar(&c.TLSCACert, "tlscacert", "", "CA certificate that client certificates must be signed by")
	fs.StringVar(&c.TLSCert, "tlscert", "", "server TLS certificate")
	fs.StringVar(&c.TLSKey, "tlskey", "", "server TLS key")
	fs.StringVarP(&c.Group, "group", "G", DefaultGroup, "group that owns unix sockets (ignored if the group does not exist)")
	fs.StringArrayVar(&c.Labels, "label", nil, "engine label key=value (repeatable)")
	fs.StringArrayVar(&c.RegistryMirrors, "registry-mirror", nil, "registry mirror for docker.io (repeatable)")
	fs.StringArrayVar(&c.InsecureRegistries, "insecure-registry", nil, "registry (host:port or CIDR) reachable over plain HTTP (repeatable)")
	fs.StringVar(&c.InitPath, "init-path", "", "init binary for --init, run as PID 1 (default: docker-init or tini-static from PATH)")
	fs.StringVarP(&c.Bridge, "bridge", "b", "", "interface of the default bridge network (default engined0)")
	fs.StringVar(&c.BIP, "bip", "", "address and prefix of the default bridge (default: the first of dockerd's pools not routed on the host)")
	fs.IntVar(&c.MTU, "mtu", 0, "MTU of the default bridge and its veths (default 1500)")
	fs.BoolVar(&f.ipForward, "ip-forward", true, "enable net.ipv4.ip_forward")
	fs.BoolVar(&f.ipMasq, "ip-masq", true, "masquerade traffic leaving the bridges' subnets")
	fs.BoolVar(&f.icc, "icc", true, "let containers on the default bridge talk to each other")
	fs.StringArrayVar(&f.pools, "default-address-pool", nil, "subnets of networks without one of their own: base=<CIDR>,size=<prefix length> (repeatable; default: dockerd's)")
	fs.StringVar(&c.NFTable, "nft-table", "engined", "engined's nftables table (family ip)")
	fs.MarkHidden("nft-table")
	fs.StringArrayVar(&c.DNS, "dns", nil, "DNS server for containers that set none (repeatable)")
	fs.StringArrayVar(&c.DNSSearch, "dns-search", nil, "DNS search domain for containers that set none (repeatable)")
	fs.StringArrayVar(&c.DNSOptions, "dns-opt", nil, "DNS option for containers that set none (repeatable)")
	fs.StringVar(&c.HostResolvConf, "host-resolv-conf", "/etc/resolv.conf", "the host's resolv.conf: containers' nameservers and the embedded DNS's upstream servers")
	fs.MarkHidden("host-resolv-conf")
	fs.StringVar(&f.configFile, "config-file", DefaultConfigFile, "JSON configuration file (dockerd's daemon.json keys)")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", DefaultHTTPReadTimeout, "close a connection whose request headers, or the next bytes of its request body, take longer")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", DefaultHTTPIdleTimeout, "close a keep-alive connection idle for longer")
	fs.MarkHidden("http-read-timeout")
	fs.MarkHidden("http-idle-timeout")
	return f
}

// Load merges the parsed flags with the config file and checks the result.
// A missing file is fine at the default path and an error anywhere else.
func (f *Flags) Load() (*Config, error) {
	cfg := f.cfg
	if f.set.Changed("tls") {
		cfg.TLS = &f.tls
	}
	if f.set.Changed("tlsverify") {
		cfg.TLSVerify = &f.tlsVerify
	}
	if f.set.Changed("ip-forward") {
		cfg.IPForward = &f.ipForward
	}
	if f.set.Changed("ip-masq") {
		cfg.IPMasq = &f.ipMasq
	}
	if f.set.Changed("icc") {
		cfg.ICC = &f.icc
	}
	cfg.AddressPoolFlags = f.pools
	file, err := readFile(f.configFile, f.set.Changed("config-file"))
	if err != nil {
		return nil, err
	}
	if file != nil {
		cfg.ConfigFile = f.configFile
		if err := f.merge(&cfg, file); err != nil {
			return nil, err
		}
	}
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = []string{DefaultHost}
	}
	if cfg.Debug {
		cfg.LogLevel = "debug"
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// merge copies into cfg every file setting whose flag was not given.
func (f *Flags) merge(cfg *Config, file *Config) error {
	for flag, key := range flagKeys {
		if !file.keys[key] {
			continue
		}
		if f.set.Changed(flag) {
			slog.Info("flag overrides config file", "flag", "--"+flag, "key", key, "file", f.configFile)
			continue
		}
		switch key {
		case "hosts":
			cfg.Hosts = file.Hosts
		case "data-root":
			cfg.DataRoot = file.DataRoot
		case "exec-root":
			cfg.ExecRoot = file.ExecRoot
		case "log-level":
			cfg.LogLevel = file.LogLevel
		case "debug":
			cfg.Debug = file.Debug
		case "tls":
			cfg.TLS = file.TLS
		case "tlsverify":
			cfg.TLSVerify = file.TLSVerify
		case "tlscacert":
			cfg.TLSCACert = file.TLSCACert
		case "tlscert":
			cfg.TLSCert = file.TLSCert
		case "tlskey":
			cfg.TLSKey = file.TLSKey
		case "group":
			cfg.Group = file.Group
		case "labels":
			cfg.Labels = file.Labels
		case "registry-mirrors":
			cfg.RegistryMirrors = file.RegistryMirrors
		case "insecure-registries":
			cfg.InsecureRegistries = file.InsecureRegistries
		case "init-path":
			cfg.InitPath = file.InitPath
		case "bridge":
			cfg.Bridge = file.Bridge
		case "bip":
			cfg.BIP = file.BIP
		case "mtu":
			cfg.MTU = file.MTU
		case "ip-forward":
			cfg.IPForward = file.IPForward
		case "ip-masq":
			cfg.IPMasq = file.IPMasq
		case "icc":
			cfg.ICC = file.ICC
		case "default-address-pools":
			cfg.AddressPools = file.AddressPools
		case "dns":
			cfg.DNS = file.DNS
		case "dns-search":
			cfg.DNSSearch = file.DNSSearch
		case "dns-opts":
			cfg.DNSOptions = file.DNSOptions
		default:
			return fmt.Errorf("config file key %q has no merge rule", key)
		}
	}
	return nil
}

func readFile(path string, explicit bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	return ParseFile(path, data)
}

// ParseFile decodes a config file, rejecting unknown keys and trailing data.
func ParseFile(path string, data []byte) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Config{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, describeJSONError(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("config file %s: unexpected data after the JSON object", path)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	c.keys = make(map[string]bool, len(raw))
	for k := range raw {
		c.keys[k] = true
	}
	return &c, nil
}

func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Errorf("key %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown key %s", msg)
	}
	return err
}

// TLSEnabled reports whether tcp listeners serve TLS.
func (c *Config) TLSEnabled() bool {
	return (c.TLS != nil && *c.TLS) || c.TLSVerifyEnabled()
}

// TLSVerifyEnabled reports whether client certificates are required.
func (c *Config) TLSVerifyEnabled() bool { return c.TLSVerify != nil && *c.TLSVerify }

// TLSExplicitlyOff reports --tls=false (or "tls": false): the user's
// consent to plain tcp on a non-loopback address.
func (c *Config) TLSExplicitlyOff() bool { return c.TLS != nil && !*c.TLS }

// SlogLevel turns log-level into a slog level.
func (c *Config) SlogLevel() (slog.Level, error) {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q: use debug, info, warn or error", c.LogLevel)
}

func (c *Config) validate() error {
	if _, err := c.SlogLevel(); err != nil {
		return err
	}
	if c.DataRoot == "" || c.ExecRoot == "" {
		return errors.New("data-root and exec-root must not be empty")
	}
	if c.TLSVerifyEnabled() && c.TLS != nil && !*c.TLS {
		return errors.New("conflicting TLS settings: tlsverify is on but tls is off; tlsverify implies tls")
	}
	if c.TLSEnabled() && (c.TLSCert == "" || c.TLSKey == "") {
		return errors.New("TLS is on but --tlscert and --tlskey are not both set")
	}
	if c.TLSVerifyEnabled() && c.TLSCACert == "" {
		return errors.New("--tlsverify needs --tlscacert to check client certificates against")
	}
	for _, l := range c.Labels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			return fmt.Errorf("invalid label %q: want key=value", l)
		}
	}
	for _, d := range c.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("invalid dns %q: not an IP address", d)
		}
	}
	return nil
}

// IPForwardEnabled: --ip-forward, on unless turned off.
func (c *Config) IPForwardEnabled() bool { return c.IPForward == nil || *c.IPForward }

// ICCEnabled: --icc, on unless turned off.
func (c *Config) ICCEnabled() bool { return c.ICC == nil || *c.ICC }

// AddressPool is one of dockerd's default-address-pools entries:
// {"base": "10.10.0.0/16", "size": 24}.
type AddressPool struct {
	Base string `json:"base"`
	Size int    `json:"size"`
}

// IPMasqEnabled: --ip-masq, on unless turned off.
func (c *Config) IPMasqEnabled() bool { return c.IPMasq == nil || *c.IPMasq }
