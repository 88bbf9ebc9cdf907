package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func load(t *testing.T, file string, args ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("engined", pflag.ContinueOnError)
	f := Register(fs)
	path := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append(args, "--config-file", path)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.Load()
}

func TestDefaults(t *testing.T) {
	c, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataRoot != DefaultDataRoot || c.ExecRoot != DefaultExecRoot || len(c.Hosts) != 1 || c.Hosts[0] != DefaultHost || c.TLSEnabled() || c.LogLevel != "info" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestFileAndFlags(t *testing.T) {
	c, err := load(t, `{"data-root": "/file/data", "hosts": ["unix:///file.sock"], "debug": true, "labels": ["a=b"]}`, "--data-root", "/flag/data")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataRoot != "/flag/data" {
		t.Errorf("flag did not win: data-root %q", c.DataRoot)
	}
	if len(c.Hosts) != 1 || c.Hosts[0] != "unix:///file.sock" || c.LogLevel != "debug" || len(c.Labels) != 1 {
		t.Errorf("file settings not applied: %+v", c)
	}
	c, err = load(t, `{"dns": ["10.0.0.2"], "dns-search": ["corp"], "dns-opts": ["ndots:2"]}`, "--dns", "10.0.0.3")
	if err != nil || strings.Join(c.DNS, ",") != "10.0.0.3" || c.DNSSearch[0] != "corp" || c.DNSOptions[0] != "ndots:2" {
		t.Errorf("dns settings: %+v %v", c, err)
	}
	c, err = load(t, `{"tls": false}`, "-H", "tcp://0.0.0.0:2375")
	if err != nil || !c.TLSExplicitlyOff() || c.TLSEnabled() {
		t.Errorf("tls=false from file: %+v %v", c, err)
	}
	c, err = load(t, `{}`, "--tlsverify", "--tlscacert", "ca", "--tlscert", "c", "--tlskey", "k")
	if err != nil || !c.TLSEnabled() || !c.TLSVerifyEnabled() {
		t.Errorf("--tlsverify: %+v %v", c, err)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		file string
		args []string
		want string
	}{
		{`{"bogus": 1}`, nil, `unknown key "bogus"`},
		{`{"debug": "yes"}`, nil, `key "debug" must be bool`},
		{`{"data-root": "/a"} {"x":1}`, nil, "unexpected data"},
		{`{`, nil, "config file"},
		{`{"tls": false, "tlsverify": true, "tlscacert": "a", "tlscert": "b", "tlskey": "c"}`, nil, "conflicting TLS settings"},
		{`{}`, []string{"--tlsverify"}, "--tlscert and --tlskey"},
		{`{}`, []string{"--tls", "--tlscert", "c", "--tlskey", "k", "--tlsverify"}, "--tlscacert"},
		{`{"log-level": "chatty"}`, nil, `invalid log level "chatty"`},
		{`{}`, []string{"--label", "nokey"}, `invalid label "nokey"`},
		{`{"dns": ["resolver.lan"]}`, nil, `invalid dns "resolver.lan"`},
	}
	for _, c := range cases {
		_, err := load(t, c.file, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %s args %v: err %v, want %q", c.file, c.args, err, c.want)
		}
	}
	fs := pflag.NewFlagSet("engined", pflag.ContinueOnError)
	f := Register(fs)
	if err := fs.Parse([]string{"--config-file", "/nonexistent/daemon.json"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.Load()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/daemon.json") {
		t.Errorf("explicit missing file: %v", err)
	}
}
