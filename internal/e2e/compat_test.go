package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// post sends body to engined's socket and returns status, headers, body.
func (e *engined) post(t *testing.T, path, contentType string, body io.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := unixClient(e.Sock).Post("http://engined"+path, contentType, body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Thousands of labelled containers, or one with a 4 MiB label, are still
// listed and inspected: gRPC's default 4 MiB message limit inside engined
// made every list answer 500 for everyone.
func TestManyLabelledContainersList(t *testing.T) {
	e := runEngine(t)
	ctx := context.Background()
	c := mobyClient(t, e.Host)

	const n = 2000
	labels := map[string]string{}
	for i := range 6 {
		labels[fmt.Sprintf("com.docker.compose.label%d", i)] = strings.Repeat(string(rune('a'+i)), 500)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"true"}, Labels: labels}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create: %v", err)
	}
	out := mustDocker(t, e.Host, "ps", "-a", "--format", "{{.ID}}")
	if got := len(strings.Fields(out)); got != n {
		t.Fatalf("docker ps -a listed %d containers, want %d", got, n)
	}

	// One 4 MiB label round-trips through inspect and list.
	big := strings.Repeat("x", 4<<20)
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "big", Config: &container.Config{Image: "busybox", Labels: map[string]string{"big": big}}})
	if err != nil {
		t.Fatalf("create with a 4 MiB label: %v", err)
	}
	ins, err := c.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if ins.Container.Config.Labels["big"] != big {
		t.Errorf("the 4 MiB label came back with %d bytes", len(ins.Container.Config.Labels["big"]))
	}
	if _, err := c.ContainerList(ctx, client.ContainerListOptions{All: true}); err != nil {
		t.Errorf("list with the big container: %v", err)
	}
}

// A JSON body over the limit is a 413 saying so, not "invalid JSON".
func TestOversizeBodyIs413(t *testing.T) {
	e := startEngined(t)
	body := `{"Image":"busybox","Labels":{"x":"` + strings.Repeat("x", 65<<20) + `"}}`
	resp, msg := e.post(t, "/v1.51/containers/create", "application/json", strings.NewReader(body))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "request body too large") {
		t.Errorf("oversize create: %d %s", resp.StatusCode, msg)
	}
	// Without a Content-Length (chunked) too, and on a generated route.
	resp, msg = e.post(t, "/v1.51/containers/x/update", "application/json", io.MultiReader(strings.NewReader(`{"Memory":`), strings.NewReader(strings.Repeat(" ", 65<<20)), strings.NewReader("1}")))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize chunked update: %d %s", resp.StatusCode, msg)
	}
}

// API versions down to 1.24 are accepted, as by Docker 28.
func TestAPIVersionFloor(t *testing.T) {
	e := runEngine(t)
	code, _, body := e.get("/v1.24/version")
	if code != http.StatusOK || !strings.Contains(body, `"ApiVersion":"1.51"`) || !strings.Contains(body, `"MinAPIVersion":"1.24"`) {
		t.Errorf("/v1.24/version: %d %s", code, body)
	}
	if code, _, body := e.get("/v1.23/version"); code != http.StatusBadRequest || !strings.Contains(body, "Minimum supported API version is 1.24") {
		t.Errorf("/v1.23/version: %d %s", code, body)
	}
	ctx := context.Background()
	c := mobyClient(t, e.Host, client.WithVersion("1.24"))
	if _, err := c.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "busybox", Cmd: []string{"sleep", "30"}}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	ins, err := c.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
	if err != nil || !ins.Container.State.Running {
		t.Fatalf("inspect: %v %+v", err, ins.Container.State)
	}
	list, err := c.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != cr.ID {
		t.Fatalf("list: %v %+v", err, list)
	}
	if _, err := c.ContainerRemove(ctx, cr.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// /info for 1.24 names security options without their key=value form.
	if code, _, body := e.get("/v1.24/info"); code != http.StatusOK || !strings.Contains(body, `"SecurityOptions":["seccomp"`) {
		t.Errorf("/v1.24/info: %d %s", code, body)
	}
}

// Events keep status, id and from for API < 1.52.
func TestLegacyEventFields(t *testing.T) {
	e := runEngine(t)
	since := time.Now().Unix() - 1
	id := strings.TrimSpace(mustDocker(t, e.Host, "create", "busybox"))
	until := time.Now().Unix() + 1
	for _, prefix := range []string{"/v1.24", "/v1.51", ""} {
		code, _, body := e.get(fmt.Sprintf("%s/events?since=%d&until=%d", prefix, since, until))
		if code != http.StatusOK {
			t.Fatalf("events: %d %s", code, body)
		}
		var found bool
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("event %q: %v", line, err)
			}
			if ev["Type"] == "container" && ev["Action"] == "create" {
				found = true
				if ev["status"] != "create" || ev["id"] != id || ev["from"] != "busybox" {
					t.Errorf("%s: container create event lacks the legacy fields: %s", prefix, line)
				}
			}
		}
		if !found {
			t.Errorf("%s: no container create event in %s", prefix, body)
		}
	}
}

// engined is not part of a swarm, and says so as dockerd does.
func TestSwarmEndpoints(t *testing.T) {
	e := startEngined(t)
	out, err := docker(t, e.Host, "swarm", "leave")
	if err == nil || !strings.Contains(out, "This node is not part of a swarm") {
		t.Errorf("docker swarm leave: %v %s", err, out)
	}
	out, err = docker(t, e.Host, "service", "ls")
	if err == nil || !strings.Contains(out, `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`) {
		t.Errorf("docker service ls: %v %s", err, out)
	}
	for _, p := range []string{"/v1.51/swarm", "/nodes", "/tasks", "/secrets", "/configs", "/services/x"} {
		if code, _, body := e.get(p); code != http.StatusServiceUnavailable {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
}

// docker load streams its answer, and a bad archive is an error in the
// stream after a 200, as dockerd does.
func TestImageLoadStreams(t *testing.T) {
	e := startEngined(t)
	resp, body := e.post(t, "/v1.51/images/load?quiet=1", "application/x-tar", strings.NewReader("this is no tar"))
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("bad archive: %d length %d type %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Type"))
	}
	var m struct {
		Error       string
		ErrorDetail struct{ Message string } `json:"errorDetail"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error == "" || m.ErrorDetail.Message != m.Error {
		t.Errorf("bad archive body %q: %v", body, err)
	}
	out, err := docker(t, e.Host, "load", "-i", "/dev/null")
	if err == nil {
		t.Errorf("docker load of nothing succeeded: %s", out)
	}
}

// logs -f sends its headers at once, even when the selected stream has
// nothing yet: the container writes only to stderr.
func TestLogsFollowHeadersAtOnce(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sh", "-c", "echo to-stderr >&2; exec sleep 300"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://engined/v1.51/containers/"+id+"/logs?follow=1&stdout=1", nil)
	c := unixClient(e.Sock)
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("no headers from logs -f: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.docker.multiplexed-stream" {
		t.Errorf("logs -f: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// tail=abc is all lines, as dockerd reads it (followed, so the
	// line is read once the container has written it).
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://engined/v1.51/containers/"+id+"/logs?follow=1&stderr=1&tail=abc", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("tail=abc: %d %s", resp.StatusCode, b)
	}
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("to-stderr")) {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("tail=abc: read %q: %v", got, err)
		}
	}
}

// hijackExecStart starts exec id over a raw connection and returns the
// reply's status line and headers and a reader of the stream.
func hijackExecStart(t *testing.T, e *engined, id, body string) (string, http.Header, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("unix", e.Sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /v1.51/exec/%s/start HTTP/1.1\r\nHost: engined\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", id, len(body), body)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status, resp.Header, br
}

// Exec start frames its output by the start request's Tty, as dockerd does.
func TestExecStartFramingFollowsRequest(t *testing.T) {
	e := runEngine(t)
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sleep", "300"))
	for _, tc := range []struct {
		execTty, startTty bool
	}{{true, false}, {false, false}, {false, true}} {
		resp, body := e.post(t, "/v1.51/containers/"+id+"/exec", "application/json",
			strings.NewReader(fmt.Sprintf(`{"Cmd":["echo","hello"],"AttachStdout":true,"AttachStderr":true,"Tty":%v}`, tc.execTty)))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("exec create: %d %s", resp.StatusCode, body)
		}
		var ex struct{ Id string }
		json.Unmarshal([]byte(body), &ex)
		status, hdr, br := hijackExecStart(t, e, ex.Id, fmt.Sprintf(`{"Tty":%v}`, tc.startTty))
		out, _ := io.ReadAll(br)
		wantCT := "application/vnd.docker.multiplexed-stream"
		if tc.startTty {
			wantCT = "application/vnd.docker.raw-stream"
		}
		if !strings.HasPrefix(status, "101") || hdr.Get("Content-Type") != wantCT {
			t.Errorf("exec Tty %v start Tty %v: %s %q, want 101 %s", tc.execTty, tc.startTty, status, hdr.Get("Content-Type"), wantCT)
		}
		framed := len(out) >= 8 && out[0] == 1 && int(binary.BigEndian.Uint32(out[4:8])) <= len(out)-8
		if framed == tc.startTty || !bytes.Contains(out, []byte("hello")) {
			t.Errorf("exec Tty %v start Tty %v: output %q (framed %v)", tc.execTty, tc.startTty, out, framed)
		}
	}
}

// An invalid image reference at create is 400 "invalid reference format".
func TestCreateInvalidReference(t *testing.T) {
	e := startEngined(t)
	code, body := e.createRaw(t, `{"Image":"UPPER:case:bad"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "invalid reference format") {
		t.Errorf("create with a bad reference: %d %s", code, body)
	}
}

// tarOf is a tar holding one file.
func tarOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	return b.Bytes()
}

// compressWith compresses data with a command-line tool (gzip, bzip2, xz,
// zstd).
func compressWith(t *testing.T, tool string, data []byte) []byte {
	t.Helper()
	cmd := exec.Command(tool, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("%s: %v", tool, err)
	}
	return out
}

// Compressed archives are taken on input as dockerd takes them: docker
// load of a .tar.gz, PUT archive with a gzip, bzip2, xz or zstd tar (what
// testcontainers' CopyToContainer sends), docker cp - of a .tgz.
func TestCompressedArchivesAccepted(t *testing.T) {
	e := runEngine(t)
	ctx := context.Background()
	c := mobyClient(t, e.Host)
	id := strings.TrimSpace(mustDocker(t, e.Host, "create", "--name", "target", "busybox", "true"))
	for _, tool := range []string{"gzip", "bzip2", "xz", "zstd"} {
		data := compressWith(t, tool, tarOf(t, "from-"+tool, "hello "+tool))
		if _, err := c.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/tmp", Content: bytes.NewReader(data)}); err != nil {
			t.Errorf("CopyToContainer %s: %v", tool, err)
			continue
		}
		if out := mustDocker(t, e.Host, "cp", "target:/tmp/from-"+tool, "-"); !strings.Contains(out, "hello "+tool) {
			t.Errorf("%s file not in the container: %q", tool, out)
		}
	}
	// docker cp - ctr:/dir with a .tgz on stdin.
	cmd := exec.Command(dockerCLI, "-H", e.Host, "cp", "-", "target:/")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	cmd.Stdin = bytes.NewReader(compressWith(t, "gzip", tarOf(t, "from-tgz", "tgz content")))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docker cp - of a .tgz: %v %s", err, out)
	} else if out := mustDocker(t, e.Host, "cp", "target:/from-tgz", "-"); !strings.Contains(out, "tgz content") {
		t.Errorf("tgz file not in the container: %q", out)
	}

	// docker load of a gzipped docker save.
	dir := t.TempDir()
	mustDocker(t, e.Host, "save", "-o", filepath.Join(dir, "bb.tar"), "busybox")
	raw, err := os.ReadFile(filepath.Join(dir, "bb.tar"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bb.tar.gz"), compressWith(t, "gzip", raw), 0o644)
	mustDocker(t, e.Host, "rm", "-f", "target")
	mustDocker(t, e.Host, "rmi", "busybox")
	out := mustDocker(t, e.Host, "load", "-i", filepath.Join(dir, "bb.tar.gz"))
	mustContain(t, "docker load of a .tar.gz", out, "Loaded image: busybox:latest")
}

// waitClosed reads conn until the server closes it; a deadline far above
// the server's timeouts turns a connection left open into a failure.
func waitClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s: the server never closed the connection", what)
	}
}

// Idle keep-alive connections, slow-loris headers and stalled bodies are
// closed; hijacked and streamed replies that are silent for longer than
// those timeouts still work.
func TestServerClosesIdleAndSlowConnections(t *testing.T) {
	reg := startRegistry(t)
	pushFixtures(t, reg)
	e := startEngined(t, "--registry-mirror", "http://"+reg.Addr, "--http-read-timeout", "1s", "--http-idle-timeout", "1s")
	mustDocker(t, e.Host, "pull", "busybox")

	dial := func() net.Conn {
		conn, err := net.Dial("unix", e.Sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// Idle keep-alive: one request answered, then nothing.
	conn := dial()
	fmt.Fprint(conn, "GET /_ping HTTP/1.1\r\nHost: engined\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("ping: %v %+v", err, resp)
	}
	waitClosed(t, conn, "idle keep-alive connection")

	// Slow loris: headers never finished.
	conn = dial()
	fmt.Fprint(conn, "GET /_ping HTTP/1.1\r\nHost: engined\r\nX-Slow: ")
	waitClosed(t, conn, "slow-loris headers")

	// A body that stops halfway.
	conn = dial()
	fmt.Fprint(conn, "POST /v1.51/containers/create HTTP/1.1\r\nHost: engined\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Image\":")
	waitClosed(t, conn, "stalled request body")

	// Silent for longer than the timeouts: attach (docker run), logs -f,
	// events and wait keep going.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, dockerCLI, "-H", e.Host, "events", "--filter", "event=die")
	events.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	evOut, _ := events.StdoutPipe()
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer events.Process.Kill()
	// Through attach: docker run attaches before the container starts.
	out := mustDocker(t, e.Host, "run", "--name", "attached", "busybox", "sh", "-c", "sleep 3; echo late")
	if !strings.Contains(out, "late") {
		t.Errorf("docker run: %q", out)
	}
	// logs -f of a running container (of a stopped one it returns at once).
	id := strings.TrimSpace(mustDocker(t, e.Host, "run", "-d", "busybox", "sh", "-c", "sleep 3; echo late"))
	logs := exec.CommandContext(ctx, dockerCLI, "-H", e.Host, "logs", "-f", id)
	logs.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	var logsOut lockedBuffer
	logs.Stdout = &logsOut
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	if code := strings.TrimSpace(mustDocker(t, e.Host, "wait", id)); code != "0" {
		t.Errorf("docker wait: %q", code)
	}
	if err := logs.Wait(); err != nil || !strings.Contains(logsOut.String(), "late") {
		t.Errorf("docker logs -f: %v %q", err, logsOut.String())
	}
	line, err := bufio.NewReader(evOut).ReadString('\n')
	if err != nil || !strings.Contains(line, "die") {
		t.Errorf("docker events: %q %v", line, err)
	}
}

// docker info reports only the plugins engined has and the versions of
// what runs containers: the shim (in containerd's place) and runc's
// libcontainer, which the shim is built with.
func TestInfoPluginsAndRuntimeVersions(t *testing.T) {
	e := startEngined(t)
	out := mustDocker(t, e.Host, "info")
	mustContain(t, "docker info", out, "Log: json-file\n", "Network: bridge host null\n", "runc version: v1.", "containerd version: ")
	for _, lie := range []string{"Volume: local", "Log: json-file none"} {
		if strings.Contains(out, lie) {
			t.Errorf("docker info claims %q:\n%s", lie, out)
		}
	}
	if strings.Contains(out, "runc version: \n") || strings.Contains(out, "containerd version: \n") {
		t.Errorf("docker info has empty versions:\n%s", out)
	}
}
