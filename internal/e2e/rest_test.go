package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// _ping with curl, as a user would check it.
func TestPingHeadersWithCurl(t *testing.T) {
	e := startEngined(t)
	out, err := exec.Command("curl", "-sS", "--unix-socket", e.Sock, "-I", "http://x/_ping").CombinedOutput()
	if err != nil {
		t.Fatalf("curl -I /_ping: %v\n%s", err, out)
	}
	mustContain(t, "curl -I /_ping", string(out), "HTTP/1.1 200 OK", "Api-Version: 1.51", "Ostype: linux", "Server: engined/",
		"Docker-Experimental: false", "Cache-Control: no-cache, no-store, must-revalidate", "Pragma: no-cache", "Swarm: inactive", "Content-Length: 0")
	out, err = exec.Command("curl", "-sS", "--unix-socket", e.Sock, "http://x/v1.45/_ping").CombinedOutput()
	if err != nil || string(out) != "OK" {
		t.Errorf("GET /v1.45/_ping = %q, %v", out, err)
	}
}

func TestRESTErrorsAndRoutes(t *testing.T) {
	e := startEngined(t)
	type errBody struct {
		Message string `json:"message"`
	}
	cases := []struct {
		method, path string
		code         int
		message      string
	}{
		{"GET", "/v1.99/version", 400, "client version 1.99 is too new. Maximum supported API version is 1.51"},
		{"GET", "/v1.23/version", 400, "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{"GET", "/nope", 404, "page not found"},
		{"GET", "/v1.51/nope", 404, "page not found"},
		{"DELETE", "/version", 404, "page not found"},
		{"GET", "/plugins/foo/json", 404, `plugin "foo" not found`},
	}
	for _, c := range cases {
		code, h, body := e.do(c.method, c.path)
		if code != c.code {
			t.Errorf("%s %s: status %d, want %d (%s)", c.method, c.path, code, c.code, body)
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
		var b errBody
		if err := json.Unmarshal([]byte(body), &b); err != nil || b.Message != c.message {
			t.Errorf("%s %s: body %q, want message %q", c.method, c.path, body, c.message)
		}
		for _, hd := range []string{"Api-Version", "Ostype", "Server", "Docker-Experimental"} {
			if h.Get(hd) == "" {
				t.Errorf("%s %s: no %s header", c.method, c.path, hd)
			}
		}
	}

	for _, p := range []string{"/version", "/v1.40/version", "/v1.51/version", "/info", "/v1.41/info"} {
		code, h, body := e.get(p)
		if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q %s", p, code, h.Get("Content-Type"), body)
		}
	}
	code, _, body := e.get("/plugins")
	if code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /plugins = %d %q", code, body)
	}
}

// Older API versions get the /info fields their version still had.
func TestInfoShapePerAPIVersion(t *testing.T) {
	e := startEngined(t)
	fields := func(path string) map[string]json.RawMessage {
		code, _, body := e.get(path)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	old, cur := fields("/v1.41/info"), fields("/v1.51/info")
	if _, ok := old["BridgeNfIptables"]; !ok {
		t.Error("v1.41 /info lacks BridgeNfIptables")
	}
	if _, ok := cur["BridgeNfIptables"]; ok {
		t.Error("v1.51 /info still has BridgeNfIptables (omitted since 1.50)")
	}
	if !strings.Contains(string(old["RuncCommit"]), "Expected") || strings.Contains(string(cur["RuncCommit"]), "Expected") {
		t.Errorf("RuncCommit.Expected: v1.41 %s, v1.51 %s", old["RuncCommit"], cur["RuncCommit"])
	}
	for _, k := range []string{"NCPU", "MemTotal", "Containers", "NFd"} {
		if s := string(cur[k]); s == "" || s[0] == '"' {
			t.Errorf("%s = %s, want a JSON number", k, s)
		}
	}
}
