package gateway

import (
	"slices"
	"strings"
	"testing"
)

// The Docker CLI sends --security-opt systempaths=unconfined as empty
// MaskedPaths and ReadonlyPaths; engined's API carries it as that option,
// and inspect shows it as dockerd does.
func TestSystemPathsUnconfined(t *testing.T) {
	req, err := CreateRequest([]byte(`{"Image":"busybox","HostConfig":{"SecurityOpt":["no-new-privileges"],"MaskedPaths":[],"ReadonlyPaths":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := req.GetHostConfig().GetSecurityOpt(); !slices.Equal(got, []string{"no-new-privileges", systemPathsUnconfined}) {
		t.Errorf("SecurityOpt = %q", got)
	}
	hc := hostConfig(req.GetHostConfig())
	if hc.MaskedPaths == nil || len(hc.MaskedPaths) != 0 || hc.ReadonlyPaths == nil || len(hc.ReadonlyPaths) != 0 || !slices.Equal(hc.SecurityOpt, []string{"no-new-privileges"}) {
		t.Errorf("inspect: MaskedPaths %#v, ReadonlyPaths %#v, SecurityOpt %q", hc.MaskedPaths, hc.ReadonlyPaths, hc.SecurityOpt)
	}

	req, err = CreateRequest([]byte(`{"Image":"busybox","HostConfig":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if hc := hostConfig(req.GetHostConfig()); hc.MaskedPaths != nil || hc.ReadonlyPaths != nil || hc.SecurityOpt != nil {
		t.Errorf("defaults: MaskedPaths %#v, ReadonlyPaths %#v, SecurityOpt %q", hc.MaskedPaths, hc.ReadonlyPaths, hc.SecurityOpt)
	}

	for _, body := range []string{
		`{"Image":"busybox","HostConfig":{"MaskedPaths":["/proc/kcore"],"ReadonlyPaths":[]}}`,
		`{"Image":"busybox","HostConfig":{"MaskedPaths":[]}}`,
	} {
		if _, err := CreateRequest([]byte(body)); err == nil || !strings.Contains(err.Error(), "MaskedPaths") {
			t.Errorf("%s: err = %v", body, err)
		}
	}
}
