package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/engined/engined/internal/testtls"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// ptyCLI starts bin/docker with a new pty as its controlling terminal
// and returns the master, the collected output and the process.
func ptyCLI(t *testing.T, size console.WinSize, args ...string) (console.Console, *lockedBuffer, *exec.Cmd) {
	t.Helper()
	return ptyRun(t, ourCLI(), size, args...)
}

func ptyRun(t *testing.T, bin string, size console.WinSize, args ...string) (console.Console, *lockedBuffer, *exec.Cmd) {
	t.Helper()
	ptm, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := ptm.Resize(size); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := &lockedBuffer{}
	// Ends when the master is closed (the cleanup above) or the CLI's
	// side of the pty goes away.
	go io.Copy(out, ptm)
	return ptm, out, cmd
}

var sttySize = regexp.MustCompile(`(\d+)x(\d+)`)

// bin/docker run -it in a real pty: typed input reaches the shell, the
// terminal's size (at start and after a resize) is the container's,
// ctrl-p ctrl-q detaches and leaves it running, and attach then sees the
// shell's exit code.
func TestCLIRunInteractivePty(t *testing.T) {
	e := runEngine(t)
	ptm, out, cmd := ptyCLI(t, console.WinSize{Height: 30, Width: 90}, "-H", e.Host, "run", "-it", "--name", "tty1", "busybox", "sh")
	io.WriteString(ptm, "echo hello-$((40+2))\r")
	waitFor(t, "the shell's output", func() bool { return strings.Contains(out.String(), "hello-42") })

	// The size: typed again until the container's answer is the new one
	// (the resize travels from SIGWINCH through the engine).
	typed := 0
	sizeIs := func(want string) func() bool {
		return func() bool {
			got := sttySize.FindAllString(out.String(), -1)
			if len(got) > 0 && got[len(got)-1] == want {
				return true
			}
			if len(got) >= typed {
				io.WriteString(ptm, "stty size | tr ' ' x\r")
				typed++
			}
			return false
		}
	}
	waitFor(t, "the initial terminal size 30x90", sizeIs("30x90"))
	if err := ptm.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resized terminal 40x100", sizeIs("40x100"))

	io.WriteString(ptm, "\x10\x11") // ctrl-p ctrl-q
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run -it after the detach keys: %v\n%s", err, out.String())
	}
	if got := strings.TrimSpace(mustDocker(t, e.Host, "inspect", "-f", "{{.State.Running}}", "tty1")); got != "true" {
		t.Fatalf("container after detach: running=%s", got)
	}

	// attach and the detach keys: both CLIs end with their escape error.
	for _, bin := range []string{ourCLI(), dockerCLI} {
		ptm, out, cmd := ptyRun(t, bin, console.WinSize{Height: 30, Width: 90}, "-H", e.Host, "attach", "tty1")
		io.WriteString(ptm, "echo attached-$((3+4))\r")
		waitFor(t, bin+" attach output", func() bool { return strings.Contains(out.String(), "attached-7") })
		io.WriteString(ptm, "\x10\x11")
		if code := exitCode(cmd.Wait()); code != 1 {
			t.Errorf("%s attach, then the detach keys: exit %d\n%s", bin, code, out.String())
		}
		// The pty's output is read by its own goroutine: it may come after the exit.
		waitFor(t, bin+" attach's escape error", func() bool { return strings.Contains(out.String(), "read escape sequence") })
	}

	ptm2, out2, cmd2 := ptyCLI(t, console.WinSize{Height: 30, Width: 90}, "-H", e.Host, "attach", "tty1")
	io.WriteString(ptm2, "echo again-$((1+1))\r")
	waitFor(t, "output after attach", func() bool { return strings.Contains(out2.String(), "again-2") })
	io.WriteString(ptm2, "exit 5\r")
	if code := exitCode(cmd2.Wait()); code != 5 {
		t.Errorf("attach after exit 5: exit code %d\n%s", code, out2.String())
	}

	// exec -it in a running container: the shell's output, its exit code.
	mustDocker(t, e.Host, "run", "-d", "--name", "tty2", "busybox", "sleep", "1000")
	ptm4, out4, cmd4 := ptyCLI(t, console.WinSize{Height: 25, Width: 70}, "-H", e.Host, "exec", "-it", "tty2", "sh")
	io.WriteString(ptm4, "echo exec-$((2+3)); stty size | tr ' ' x\r")
	waitFor(t, "exec -it output", func() bool {
		return strings.Contains(out4.String(), "exec-5") && strings.Contains(out4.String(), "25x70")
	})
	// The detach keys end an exec -it with the escape error, in both CLIs.
	for _, bin := range []string{ourCLI(), dockerCLI} {
		ptm, out, cmd := ptyRun(t, bin, console.WinSize{Height: 25, Width: 70}, "-H", e.Host, "exec", "-it", "tty2", "sh")
		io.WriteString(ptm, "echo in-exec-$((4+4))\r")
		waitFor(t, bin+" exec -it output", func() bool { return strings.Contains(out.String(), "in-exec-8") })
		io.WriteString(ptm, "\x10\x11")
		if code := exitCode(cmd.Wait()); code != 1 {
			t.Errorf("%s exec -it, then the detach keys: exit %d\n%s", bin, code, out.String())
		}
		waitFor(t, bin+" exec's escape error", func() bool { return strings.Contains(out.String(), "read escape sequence") })
	}
	io.WriteString(ptm4, "exit 3\r")
	if code := exitCode(cmd4.Wait()); code != 3 {
		t.Errorf("exec -it; exit 3: exit code %d\n%s", code, out4.String())
	}

	// And run -it straight to an exit code.
	ptm3, out3, cmd3 := ptyCLI(t, console.WinSize{Height: 30, Width: 90}, "-H", e.Host, "run", "--rm", "-it", "busybox", "sh")
	io.WriteString(ptm3, "exit 7\r")
	if code := exitCode(cmd3.Wait()); code != 7 {
		t.Errorf("run -it; exit 7: exit code %d\n%s", code, out3.String())
	}
}

// Every Engine method is reachable through `docker engine`, which is
// built from the service's descriptors: for each method the test takes
// from the descriptors, the engine itself answers (a reply or the
// engine's own error), with no CLI code for the method.
func TestCLIEngineMethods(t *testing.T) {
	e := startEngined(t)
	config := t.TempDir()
	list := runCLI(t, ourCLI(), e.Host, config, "", "engine")
	svc := enginev1.File_engine_v1_engine_proto.Services().ByName("Engine")
	methods := svc.Methods()
	for i := 0; i < methods.Len(); i++ {
		if name := string(methods.Get(i).Name()); !regexp.MustCompile(`(?m)^` + name + ` `).MatchString(list.stdout) {
			t.Errorf("docker engine does not list %s:\n%s", name, list.stdout)
		}
	}

	r := runCLI(t, ourCLI(), e.Host, config, "", "engine", "ContainerList", `{"all":true}`)
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil {
		t.Errorf("engine ContainerList: %+v", r)
	}
	r = runCLI(t, ourCLI(), e.Host, config, "", "engine", "SystemVersion")
	if r.code != 0 || !strings.Contains(r.stdout, `"apiVersion": "1.51"`) || !strings.Contains(r.stdout, "\n  \"") {
		t.Errorf("engine SystemVersion: %+v", r)
	}
	// A server-streaming method prints each message.
	mustDocker(t, e.Host, "network", "create", "engnet")
	r = runCLI(t, ourCLI(), e.Host, config, "", "engine", "--compact", "SystemEvents", `{"since":"`+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)+`","until":"`+time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)+`"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"action":"create"`) {
		t.Errorf("engine SystemEvents: %+v", r)
	}

	// Each method with a minimal request: the engine answers it.
	requests := map[protoreflect.Name]string{
		"SystemEvents": `{"until":"` + time.Now().UTC().Format(time.RFC3339) + `"}`,
		"SystemAuth":   `{"serverAddress":"127.0.0.1:1","username":"u","password":"p"}`,
	}
	for i := 0; i < methods.Len(); i++ {
		m := methods.Get(i)
		req, ok := requests[m.Name()]
		if !ok {
			req = "{}"
		}
		r := runCLI(t, ourCLI(), e.Host, config, "", "engine", string(m.Name()), req)
		answered := r.code == 0 || strings.HasPrefix(r.stderr, "Error response from daemon: ")
		if !answered {
			t.Errorf("engine %s %s: not answered by the engine: %+v", m.Name(), req, r)
		}
	}
	r = runCLI(t, ourCLI(), e.Host, config, "", "engine", "NoSuchMethod")
	if r.code != 1 || !strings.Contains(r.stderr, `unknown Engine method "NoSuchMethod"`) {
		t.Errorf("engine NoSuchMethod: %+v", r)
	}
}

func runCLIEnv(t *testing.T, env []string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(ourCLI(), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	code := exitCode(cmd.Run())
	return cliRun{o.String(), e.String(), code}
}

// Contexts the Docker CLI made (its store under --config), DOCKER_CONTEXT,
// the config's currentContext, TLS from flags, from DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH, and from a context's TLS material.
func TestCLIContextsAndTLS(t *testing.T) {
	certs, err := testtls.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tcpHost := "tcp://127.0.0.1:" + strconv.Itoa(freePort(t))
	e := runEngine(t, "-H", tcpHost, "--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.ServerCert, "--tlskey", certs.ServerKey)
	config := t.TempDir()
	env := []string{"DOCKER_HOST=", "DOCKER_CONTEXT=", "DOCKER_TLS_VERIFY=", "DOCKER_CERT_PATH="}
	real := func(args ...string) {
		t.Helper()
		cmd := exec.Command(dockerCLI, append([]string{"--config", config}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker %v: %v\n%s", args, err, out)
		}
	}
	real("context", "create", "local", "--docker", "host="+e.Host)
	real("context", "create", "secure", "--docker", "host="+tcpHost+",ca="+certs.CA+",cert="+certs.ClientCert+",key="+certs.ClientKey)
	serves := func(what string, r cliRun) {
		t.Helper()
		if r.code != 0 || !strings.Contains(r.stdout, "Server: engined") {
			t.Errorf("%s: %+v", what, r)
		}
	}
	serves("--context local", runCLIEnv(t, env, "--config", config, "--context", "local", "version"))
	serves("--context secure (TLS from the context store)", runCLIEnv(t, env, "--config", config, "-c", "secure", "version"))
	serves("DOCKER_CONTEXT=local", runCLIEnv(t, append(env, "DOCKER_CONTEXT=local"), "--config", config, "version"))
	serves("DOCKER_CONFIG with DOCKER_CONTEXT", runCLIEnv(t, append(env, "DOCKER_CONFIG="+config, "DOCKER_CONTEXT=secure"), "version"))
	serves("--tlsverify flags", runCLIEnv(t, env, "-H", tcpHost, "--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.ClientCert, "--tlskey", certs.ClientKey, "version"))
	certDir := t.TempDir()
	for src, dst := range map[string]string{certs.CA: "ca.pem", certs.ClientCert: "cert.pem", certs.ClientKey: "key.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(certDir, dst), b, 0o600)
	}
	serves("DOCKER_TLS_VERIFY and DOCKER_CERT_PATH", runCLIEnv(t, append(env, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+certDir, "DOCKER_HOST="+tcpHost), "version"))
	if r := runCLIEnv(t, env, "-H", tcpHost, "version"); r.code == 0 {
		t.Errorf("plain gRPC to a TLS listener was served: %+v", r)
	}
	real("context", "use", "local")
	serves("currentContext in config.json", runCLIEnv(t, env, "--config", config, "version"))
	serves("-H wins over currentContext", runCLIEnv(t, env, "--config", config, "-H", e.Host, "version"))
	if r := runCLIEnv(t, env, "--config", config, "-H", e.Host, "--context", "local", "version"); r.code == 0 || !strings.Contains(r.stderr, "conflicting options") {
		t.Errorf("-H with --context: %+v", r)
	}
	if r := runCLIEnv(t, env, "--config", config, "--context", "nosuch", "ps"); r.code == 0 || !strings.Contains(r.stderr, `context "nosuch" does not exist`) {
		t.Errorf("unknown context: %+v", r)
	}

	// context ls, show and use against the Docker CLI's on the same
	// store (the default context's endpoint is each CLI's own default).
	ownDefault := regexp.MustCompile(`unix:///(var/run/docker|run/engined/docker)\.sock *`)
	for _, args := range [][]string{{"context", "ls"}, {"context", "ls", "--format", "json"}, {"context", "ls", "-q"}, {"context", "show"},
		{"context", "use", "secure"}, {"context", "show"}, {"context", "ls"}, {"context", "use", "nosuch"}, {"context", "use", "default"}, {"context", "show"}} {
		ours := runCLIEnv(t, env, append([]string{"--config", config}, args...)...)
		cmd := exec.Command(dockerCLI, append([]string{"--config", config}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var o, se strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &se
		code := exitCode(cmd.Run())
		theirs := cliRun{o.String(), se.String(), code}
		for _, r := range []*cliRun{&ours, &theirs} {
			r.stdout = spaces.ReplaceAllString(ownDefault.ReplaceAllString(r.stdout, "<DEFAULT>"), "  ")
		}
		if ours != theirs {
			t.Errorf("docker %v:\n ours   %+v\n docker %+v", args, ours, theirs)
		}
	}
	real("context", "use", "local")

	// Completion: container names from engined, through cobra's __complete.
	mustDocker(t, e.Host, "create", "--name", "completeme", "busybox")
	r := runCLIEnv(t, append(env, "DOCKER_HOST="+e.Host), "__complete", "rm", "comp")
	if !strings.Contains(r.stdout, "completeme\n") {
		t.Errorf("__complete rm comp: %+v", r)
	}
	if r := runCLIEnv(t, append(env, "DOCKER_HOST="+e.Host), "__complete", "rmi", "bus"); !strings.Contains(r.stdout, "busybox:latest\n") {
		t.Errorf("__complete rmi bus: %+v", r)
	}
	if r := runCLIEnv(t, append(env, "DOCKER_HOST="+e.Host), "__complete", "network", "inspect", "br"); !strings.Contains(r.stdout, "bridge\n") {
		t.Errorf("__complete network inspect br: %+v", r)
	}
	if r := runCLIEnv(t, append(env, "DOCKER_HOST="+e.Host), "__complete", "engine", "ContainerL"); !strings.Contains(r.stdout, "ContainerList\n") {
		t.Errorf("__complete engine ContainerL: %+v", r)
	}
	for _, sh := range []string{"bash", "zsh"} {
		if r := runCLIEnv(t, env, "completion", sh); r.code != 0 || len(r.stdout) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, r.code, len(r.stdout))
		}
	}
}

// An attached run forwards the CLI's signals to the container
// (--sig-proxy, on by default): SIGINT reaches the container's trap.
func TestCLIRunSigProxy(t *testing.T) {
	e := runEngine(t)
	cmd := exec.Command(ourCLI(), "-H", e.Host, "run", "--rm", "busybox", "sh", "-c", `trap "echo got; exit 9" INT; echo ready; while :; do sleep 0.1; done`)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container's trap", func() bool { return strings.Contains(out.String(), "ready\n") })
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(cmd.Wait()); code != 9 || !strings.Contains(out.String(), "got\n") {
		t.Errorf("run after SIGINT: exit %d, output %q", code, out.String())
	}
}

// pull on a terminal: both CLIs render the engine's progress with a line
// per layer and end with the same summary.
func TestCLIPullTerminal(t *testing.T) {
	requireDockerCLI28(t)
	e := runEngine(t)
	var mirrors []string
	if err := json.Unmarshal([]byte(mustDocker(t, e.Host, "info", "-f", "{{json .RegistryConfig.Mirrors}}")), &mirrors); err != nil || len(mirrors) == 0 {
		t.Fatalf("engined's mirror: %v %v", mirrors, err)
	}
	ref := strings.TrimSuffix(strings.TrimPrefix(mirrors[0], "http://"), "/") + "/multi"
	summary := func(out string) []string {
		var keep []string
		for _, l := range strings.Split(ansi.ReplaceAllString(strings.ReplaceAll(out, "\r", "\n"), ""), "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "Digest:") || strings.HasPrefix(l, "Status:") || strings.HasPrefix(l, ref) ||
				strings.HasSuffix(l, "Pull complete") || strings.HasPrefix(l, "latest: Pulling") || strings.HasPrefix(l, "Using default tag") {
				keep = append(keep, l)
			}
		}
		sort.Strings(keep) // layers complete in any order
		return keep
	}
	var got [][]string
	var raw []string
	for _, bin := range []string{ourCLI(), dockerCLI} {
		docker(t, e.Host, "rmi", ref)
		_, out, cmd := ptyRun(t, bin, console.WinSize{Height: 30, Width: 120}, "-H", e.Host, "pull", ref)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s pull: %v\n%s", bin, err, out.String())
		}
		// The line of its own, not the end of the Status line before it.
		waitFor(t, bin+" pull's last line", func() bool { return strings.Contains(out.String(), "\n"+ref+":latest\r\n") })
		s := summary(out.String())
		if len(s) < 4 || !strings.Contains(out.String(), "\x1b[") {
			t.Errorf("%s pull on a terminal: %q\n%q", bin, s, out.String())
		}
		got, raw = append(got, s), append(raw, out.String())
	}
	if strings.Join(got[0], "\n") != strings.Join(got[1], "\n") {
		t.Errorf("pull summaries differ:\n ours   %q\n docker %q\nours, as written:\n%q\ndocker, as written:\n%q", got[0], got[1], raw[0], raw[1])
	}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
