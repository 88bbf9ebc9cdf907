package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/engined/engined/internal/testimage"
)

// The adversarial suite: hostile containers, archives, layers and image
// tarballs try to read or write the host through docker cp, export, diff,
// pull, load and import. Each test keeps a sentinel tree on the host,
// which the hostile side names by its absolute path, and asserts its
// digest is the same afterwards and its secret never comes back.

// sentinel is a host directory with a secret file the hostile side aims at.
type sentinel struct {
	dir    string
	secret string
}

func newSentinel(t *testing.T) *sentinel {
	t.Helper()
	dir, err := os.MkdirTemp("", "engined-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &sentinel{dir: dir, secret: "host-secret-" + filepath.Base(dir)}
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte(s.secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "sub", "victim"), []byte("original\n"), 0o644)
	return s
}

// hash digests every name, mode, size, link and content under the
// sentinel.
func (s *sentinel) hash(t *testing.T) string {
	t.Helper()
	var lines []string
	filepath.Walk(s.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			lines = append(lines, "error "+err.Error())
			return nil
		}
		line := fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size())
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			line += " -> " + l
		} else if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(lines, "\n"))))
}

// unchanged fails the test if the sentinel differs from before.
func (s *sentinel) unchanged(t *testing.T, before, what string) {
	t.Helper()
	if after := s.hash(t); after != before {
		out, _ := osexec.Command("find", s.dir, "-ls").CombinedOutput()
		t.Fatalf("%s changed the host's sentinel tree %s:\n%s", what, s.dir, out)
	}
}

// tarBytes builds a tar stream from headers; a regular file's body is
// its Linkname field when Typeflag is TypeReg (Linkname is unused there).
func tarBytes(t *testing.T, hdrs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return buf.Bytes()
}

// The reproduction of the issue: a container's absolute symlink to a host
// directory, then docker cp into and through it.
func TestHostileCpSymlinks(t *testing.T) {
	e := runEngine(t)
	h := e.Host
	s := newSentinel(t)
	before := s.hash(t)
	links := fmt.Sprintf("ln -s %[1]s /tmp/link; ln -s %[1]s/sub /tmp/sublink; ln -s ../../../../../../%[1]s /tmp/rel; "+
		"ln -s / /tmp/root; ln -s ../../../../.. /tmp/dotdot; ln -s %[1]s/secret /tmp/filelink; "+
		"mkdir -p /tmp/mid; ln -s %[1]s /tmp/mid/m; sleep 3600", s.dir)
	mustDocker(t, h, "run", "-d", "--name", "box", "busybox", "sh", "-c", links)
	waitExec(t, h, "box", "test -L /tmp/mid/m")

	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("payload\n"), 0o644)
	dests := []string{
		"/tmp/link/new", "/tmp/link", "/tmp/link/", "/tmp/sublink/victim", "/tmp/sublink",
		"/tmp/rel/new", "/tmp/rel", "/tmp/root" + s.dir + "/new", "/tmp/dotdot" + s.dir + "/sub/victim",
		"/tmp/filelink", "/tmp/mid/m/new", "/../../../../" + s.dir + "/new", s.dir + "/sub/victim",
	}
	for _, d := range dests {
		docker(t, h, "cp", f, "box:"+d)
		s.unchanged(t, before, "docker cp ./f box:"+d)
	}
	// The copies that resolved landed inside the container: through the
	// final-component symlink into the container's own path of that name.
	// (docker cp to a link whose target is missing creates the target,
	// here as a file: inside the container, where dockerd puts it too.)
	mustDocker(t, h, "exec", "box", "sh", "-c", "rm -rf "+s.dir+"; mkdir -p "+s.dir)
	mustDocker(t, h, "cp", f, "box:/tmp/link")
	s.unchanged(t, before, "docker cp ./f box:/tmp/link (target exists in the container)")
	if got := mustDocker(t, h, "exec", "box", "cat", s.dir+"/f"); got != "payload\n" {
		t.Errorf("cp through /tmp/link: container's %s/f = %q", s.dir, got)
	}

	// Copies out never read the host's files.
	for _, src := range []string{"/tmp/link", "/tmp/link/secret", "/tmp/link/.", "/tmp/filelink", "/tmp/rel/secret",
		"/tmp/root" + s.dir + "/secret", "/tmp/dotdot" + s.dir, "/tmp/mid/m/secret", "/tmp/mid", "/../../" + s.dir + "/secret", "/"} {
		out := t.TempDir()
		docker(t, h, "cp", "box:"+src, out)
		if grep(t, out, s.secret) {
			t.Fatalf("docker cp box:%s read the host's secret", src)
		}
	}
	if bytes.Contains(exportOf(t, h, "box"), []byte(s.secret)) {
		t.Fatal("docker export read the host's secret")
	}
	s.unchanged(t, before, "docker cp out")
}

// waitExec waits until cmd succeeds in the container.
func waitExec(t *testing.T, host, name, cmd string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s: %q to succeed", name, cmd), func() bool {
		_, err := docker(t, host, "exec", name, "sh", "-c", cmd)
		return err == nil
	})
}

// grep says whether any regular file under dir contains s.
func grep(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(s)) {
				found = true
			}
		}
		return nil
	})
	return found
}

// Archives sent to PUT /containers/{id}/archive that climb out with "..",
// absolute names, symlinks they create themselves and hard links.
func TestHostileCpArchives(t *testing.T) {
	e := runEngine(t)
	s := newSentinel(t)
	before := s.hash(t)
	mustDocker(t, e.Host, "run", "-d", "--name", "box", "busybox", "sleep", "3600")
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	archives := map[string][]byte{
		"dotdot": tarBytes(t, tar.Header{Name: "../../../../../../" + s.dir + "/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"}),
		"abs":    tarBytes(t, tar.Header{Name: s.dir + "/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"}),
		"symlink then through it": tarBytes(t,
			tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: s.dir},
			tar.Header{Name: "esc/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"}),
		"relative symlink then through it": tarBytes(t,
			tar.Header{Name: "esc2", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../" + s.dir + "/sub"},
			tar.Header{Name: "esc2/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"}),
		"symlink to / then a directory": tarBytes(t,
			tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "/"},
			tar.Header{Name: "up" + s.dir + "/sub/", Typeflag: tar.TypeDir, Mode: 0o777},
			tar.Header{Name: "up" + s.dir + "/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"}),
		"hard link to a host file": tarBytes(t, tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: s.dir + "/secret"}),
		"hard link with dotdot":    tarBytes(t, tar.Header{Name: "hl2", Typeflag: tar.TypeLink, Linkname: "../../../../../" + s.dir + "/secret"}),
		"hard link through a symlink": tarBytes(t,
			tar.Header{Name: "l3", Typeflag: tar.TypeSymlink, Linkname: s.dir},
			tar.Header{Name: "hl3", Typeflag: tar.TypeLink, Linkname: "l3/secret"}),
		"symlink replaces a directory": tarBytes(t,
			tar.Header{Name: "tmp", Typeflag: tar.TypeSymlink, Linkname: s.dir},
			tar.Header{Name: "tmp/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"}),
		"whiteout of the parent": tarBytes(t, tar.Header{Name: ".wh..", Typeflag: tar.TypeReg}),
		"device":                 tarBytes(t, tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8}),
	}
	for name, data := range archives {
		for _, dest := range []string{"/", "/tmp", "/etc"} {
			c.CopyToContainer(ctx, "box", client.CopyToContainerOptions{DestinationPath: dest, Content: bytes.NewReader(data)})
			s.unchanged(t, before, "archive "+name+" into "+dest)
		}
	}
	if got := mustDocker(t, e.Host, "exec", "box", "sh", "-c", "cat /hl /hl2 2>&1; true"); strings.Contains(got, s.secret) {
		t.Fatal("a hard link in an archive linked the host's secret into the container")
	}
}

// A process in the container swaps a directory for a symlink to the host
// directory in a loop while docker cp runs in both directions; a second,
// unpaused container does the same in a bind mount the first one shares.
// Run for 10 seconds: no copy may escape even once.
func TestHostileCpSwapRace(t *testing.T) {
	e := runEngine(t)
	s := newSentinel(t)
	before := s.hash(t)
	shared := t.TempDir()
	swap := func(dir string) string {
		return strings.ReplaceAll(fmt.Sprintf("mkdir -p DIR/d; echo inside > DIR/d/secret; ln -s %s DIR/l; "+
			"while :; do mv DIR/d DIR/x; mv DIR/l DIR/d; mv DIR/d DIR/l; mv DIR/x DIR/d; done", s.dir), "DIR", dir)
	}
	mustDocker(t, e.Host, "run", "-d", "--name", "target", "-v", shared+":/shared", "busybox", "sh", "-c", swap("/in"))
	mustDocker(t, e.Host, "run", "-d", "--name", "racer", "-v", shared+":/shared", "busybox", "sh", "-c", swap("/shared"))
	waitExec(t, e.Host, "racer", "test -e /shared/l || test -e /shared/x")
	c := mobyClient(t, e.Host)
	ctx := context.Background()
	payload := tarBytes(t, tar.Header{Name: "victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"},
		tar.Header{Name: "sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned\n"})
	var copies, in, out int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); copies++ {
		for _, p := range []string{"/in/d", "/shared/d", "/in/d/", "/shared/d/sub"} {
			if _, err := c.CopyToContainer(ctx, "target", client.CopyToContainerOptions{DestinationPath: p, Content: bytes.NewReader(payload)}); err == nil {
				in++
			}
			res, err := c.CopyFromContainer(ctx, "target", client.CopyFromContainerOptions{SourcePath: p})
			if err != nil {
				continue
			}
			data, _ := io.ReadAll(res.Content)
			res.Content.Close()
			out++
			if bytes.Contains(data, []byte(s.secret)) {
				t.Fatalf("docker cp target:%s read the host's secret (after %d rounds)", p, copies)
			}
		}
		s.unchanged(t, before, fmt.Sprintf("round %d of docker cp against a swapping container", copies))
	}
	t.Logf("%d rounds: %d copies in and %d out succeeded, none escaped", copies, in, out)
	if in == 0 || out == 0 {
		t.Errorf("no copy succeeded (%d in, %d out): the race did not exercise the copy", in, out)
	}
	// docker diff of the swapping container never lists the host's names.
	for i := 0; i < 20; i++ {
		res, err := c.ContainerDiff(ctx, "target", client.ContainerDiffOptions{})
		if err != nil {
			continue
		}
		for _, ch := range res.Changes {
			// The host directory holds config.json-free names "secret" and
			// "sub"; inside the container only /in/d/secret exists.
			if strings.HasSuffix(ch.Path, "/secret") && ch.Path != "/in/d/secret" && ch.Path != "/in/x/secret" {
				t.Fatalf("docker diff listed %s", ch.Path)
			}
		}
	}
}

// Layers pulled from the real registry that climb out, write through
// their own symlinks, link host files and delete with bad whiteouts.
func TestHostileLayers(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t, "--registry-mirror", "http://"+reg.Addr)
	s := newSentinel(t)
	before := s.hash(t)
	ctx := context.Background()
	bb, err := testimage.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	F := func(name string, typ byte, link string) testimage.File {
		f := testimage.File{Name: name, Typeflag: typ, Linkname: link}
		if typ == tar.TypeReg {
			f.Body, f.Linkname = []byte(link), ""
		}
		return f
	}
	hostile := map[string][]testimage.File{
		"dotdot":        {F("../../../../../../"+s.dir+"/sub/victim", tar.TypeReg, "pwned")},
		"abs symlink":   {F("esc", tar.TypeSymlink, s.dir), F("esc/sub/victim", tar.TypeReg, "pwned")},
		"rel symlink":   {F("esc", tar.TypeSymlink, "../../../../../../../../"+s.dir), F("esc/sub/victim", tar.TypeReg, "pwned")},
		"root symlink":  {F("up", tar.TypeSymlink, "/"), F("up"+s.dir+"/", tar.TypeDir, ""), F("up"+s.dir+"/secret", tar.TypeReg, "pwned")},
		"hard link":     {F("hl", tar.TypeLink, s.dir+"/secret")},
		"whiteout ..":   {F(".wh..", tar.TypeReg, "")},
		"whiteout ...":  {F("etc/.wh...", tar.TypeReg, "")},
		"whiteout sub":  {F("up", tar.TypeSymlink, s.dir), F("up/.wh.sub", tar.TypeReg, "")},
		"opaque via ln": {F("up", tar.TypeSymlink, s.dir), F("up/.wh..wh..opq", tar.TypeReg, "")},
	}
	i := 0
	for name, files := range hostile {
		l, err := testimage.Layer(files...)
		if err != nil {
			t.Fatal(err)
		}
		img, err := testimage.Image([]string{"sh"}, nil, bb, l)
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("hostile%d:latest", i)
		i++
		if err := testimage.Push(ctx, img, reg.Ref(ref)); err != nil {
			t.Fatal(err)
		}
		out, err := docker(t, e.Host, "pull", reg.Ref(ref))
		s.unchanged(t, before, "pull of layer "+name)
		if strings.HasPrefix(name, "whiteout ..") || name == "whiteout ..." {
			if err == nil || !strings.Contains(out, "invalid whiteout name") {
				t.Errorf("layer %s: pull %v %q, want the bad whiteout named", name, err, out)
			}
			continue
		}
		if err != nil {
			continue // refused is fine; the sentinel is what matters
		}
		got, _ := docker(t, e.Host, "run", "--rm", reg.Ref(ref), "sh", "-c", "cat /hl /esc/sub/victim "+s.dir+"/secret 2>/dev/null; true")
		if strings.Contains(got, s.secret) {
			t.Fatalf("layer %s: the container reads the host's secret", name)
		}
		s.unchanged(t, before, "run of layer "+name)
	}
}

// docker load archives whose manifest names a config or a layer through a
// symlink to a host file, or with "..".
func TestHostileLoad(t *testing.T) {
	e := startEngined(t)
	s := newSentinel(t)
	// A host file that would load as a valid image config if read.
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"leak":"` + s.secret + `"}}}`
	os.WriteFile(filepath.Join(s.dir, "config.json"), []byte(cfg), 0o644)
	before := s.hash(t)
	manifest := func(config string, layers ...string) tar.Header {
		m, _ := json.Marshal([]map[string]any{{"Config": config, "RepoTags": []string{"leak:latest"}, "Layers": layers}})
		return tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Linkname: string(m)}
	}
	archives := map[string][]byte{
		"config symlink":     tarBytes(t, tar.Header{Name: "c.json", Typeflag: tar.TypeSymlink, Linkname: s.dir + "/config.json"}, manifest("c.json")),
		"config rel symlink": tarBytes(t, tar.Header{Name: "c.json", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../" + s.dir + "/config.json"}, manifest("c.json")),
		"config dotdot":      tarBytes(t, manifest("../../../../../../"+s.dir+"/config.json")),
		"config absolute":    tarBytes(t, manifest(s.dir+"/config.json")),
		"dir symlink":        tarBytes(t, tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: s.dir}, manifest("d/config.json")),
		"config hard link":   tarBytes(t, tar.Header{Name: "c.json", Typeflag: tar.TypeLink, Linkname: s.dir + "/config.json"}, manifest("c.json")),
		"layer symlink": tarBytes(t, tar.Header{Name: "l.tar", Typeflag: tar.TypeSymlink, Linkname: s.dir + "/secret"},
			tar.Header{Name: "c.json", Typeflag: tar.TypeReg, Linkname: cfg}, manifest("c.json", "l.tar")),
		"manifest symlink": tarBytes(t, tar.Header{Name: "manifest.json", Typeflag: tar.TypeSymlink, Linkname: s.dir + "/secret"}),
		"index symlink":    tarBytes(t, tar.Header{Name: "index.json", Typeflag: tar.TypeSymlink, Linkname: s.dir + "/config.json"}),
		"blob symlink": tarBytes(t, tar.Header{Name: "blobs/", Typeflag: tar.TypeSymlink, Linkname: s.dir},
			tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Linkname: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":1}]}`}),
	}
	c := mobyClient(t, e.Host)
	for name, data := range archives {
		res, err := c.ImageLoad(context.Background(), bytes.NewReader(data))
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(res)
			res.Close()
		}
		if err == nil && !bytes.Contains(body, []byte("errorDetail")) {
			t.Errorf("load %s: accepted: %s", name, body)
		}
		s.unchanged(t, before, "load of "+name)
	}
	if out := mustDocker(t, e.Host, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("a hostile archive loaded an image: %s", out)
	}
	if out, _ := docker(t, e.Host, "inspect", "leak"); strings.Contains(out, s.secret) {
		t.Fatal("a host file was loaded as an image config")
	}
}

// docker import of a root filesystem tar that climbs out.
func TestHostileImport(t *testing.T) {
	e := startEngined(t)
	s := newSentinel(t)
	before := s.hash(t)
	climb := []tar.Header{
		{Name: "../../../../../" + s.dir + "/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned-dotdot"},
		{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/"},
		{Name: "esc" + s.dir + "/sub/victim", Typeflag: tar.TypeReg, Linkname: "pwned-through-link"},
	}
	if out, err := importTar(t, e, "climb:latest", tarBytes(t, climb...)); err != nil {
		t.Fatalf("import: %v %s", err, out)
	}
	s.unchanged(t, before, "docker import")
	out, err := importTar(t, e, "", tarBytes(t, tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: s.dir + "/secret"}))
	if err == nil || !strings.Contains(out, `hard link target "`+s.dir+`/secret": no such file`) {
		t.Errorf("import with a hard link out: %v %q", err, out)
	}
	out, err = importTar(t, e, "", tarBytes(t, tar.Header{Name: "bin/.wh..", Typeflag: tar.TypeReg}))
	if err == nil || !strings.Contains(out, `invalid whiteout name ".wh.."`) {
		t.Errorf("import with a bad whiteout: %v %q", err, out)
	}
	s.unchanged(t, before, "docker import")
	// What climbed out is inside the image.
	c := mustDocker(t, e.Host, "create", "climb", "x")
	res, err := mobyClient(t, e.Host).CopyFromContainer(context.Background(), strings.TrimSpace(c), client.CopyFromContainerOptions{SourcePath: s.dir + "/sub/victim"})
	if err != nil {
		t.Fatalf("cp out of the imported image: %v", err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(tr); string(b) != "pwned-through-link" {
		t.Errorf("victim inside the image = %q", b)
	}
}
