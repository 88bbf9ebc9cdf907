package compression

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestDecompress(t *testing.T) {
	plain := bytes.Repeat([]byte("engined archive content\n"), 1000)
	var gz, xzb, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(plain)
	xw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(plain)
	zw.Close()
	cases := map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "xz": xzb.Bytes(), "zstd": zs.Bytes(), "empty": nil}
	// bzip2 has no writer in the standard library: the bzip2 tool makes it.
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader(plain)
	if out, err := cmd.Output(); err == nil {
		cases["bzip2"] = out
	} else {
		t.Logf("no bzip2 tool (%v): bzip2 not tested", err)
	}
	for name, in := range cases {
		r, err := Decompress(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: read: %v", name, err)
		}
		want := plain
		if name == "empty" {
			want = nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want %d", name, len(got), len(want))
		}
	}
}
