package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Our CLI (bin/docker, gRPC) against the Docker CLI (REST) on the same
// engined: each scene runs once per CLI, on objects of its own (names end
// in the CLI's suffix), and every command's stdout, stderr and exit code
// must be equal after masking what differs by nature (IDs, times, the
// suffix).

type cliRun struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, bin, host, config, stdin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-H", host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := exitCode(err)
	if code < 0 {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return cliRun{o.String(), e.String(), code}
}

func ourCLI() string { return filepath.Join(binDir, "docker") }

var (
	longID   = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	shortID  = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	timeWord = regexp.MustCompile(`(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes?|hours?))( ago)?`)
	stamp    = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?( ?[+-]\d\d:?\d\d( [A-Z]+)?|Z)?`)
	unixTime = regexp.MustCompile(`("(time|timeNano|Created)"):\d+`)
	spaces   = regexp.MustCompile(`  +`)
	digits   = regexp.MustCompile(`\d+`)
)

// mask hides what legitimately differs between two runs.
func mask(s, suffix string, maskDigits bool) string {
	s = strings.ReplaceAll(s, suffix, "SFX")
	s = longID.ReplaceAllString(s, "<ID>")
	s = shortID.ReplaceAllString(s, "<ID>")
	s = stamp.ReplaceAllString(s, "<TIME>")
	s = unixTime.ReplaceAllString(s, "$1:<N>")
	timed := timeWord.MatchString(s)
	s = timeWord.ReplaceAllString(s, "<AGO>")
	if maskDigits {
		s = digits.ReplaceAllString(s, "N")
	}
	if timed || maskDigits {
		// Masked values have other widths than the ones the table was
		// padded for: compare the cells, not the padding.
		s = spaces.ReplaceAllString(s, "  ")
	}
	return s
}

type cliCase struct {
	args       []string // {s} is the CLI's suffix
	stdin      string
	maskDigits bool
	// hide is what differs by design (the client's own version), masked
	// in both outputs.
	hide *regexp.Regexp
}

type cliScene struct {
	name    string
	files   map[string]string // written under {tmp} before the scene
	setup   [][]string        // run with the Docker CLI before the cases
	cases   []cliCase
	cleanup [][]string
}

func c(args ...string) cliCase { return cliCase{args: args} }

func cliScenes(t *testing.T) []cliScene {
	return []cliScene{
		{name: "run", cases: []cliCase{
			c("run", "--rm", "busybox", "echo", "hi"),
			c("run", "--name", "r{s}", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"),
			c("run", "--rm", "busybox", "nosuchcmd"),
			c("run", "--rm", "busybox", "/etc"),
			c("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "busybox", "sh", "-c", "echo $A; pwd; id -u"),
			c("run", "--rm", "--entrypoint", "echo", "busybox", "hi", "there"),
			c("run", "--rm", "-l", "a=b", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "busybox", "cat", "/sys/fs/cgroup/pids/pids.max"),
			c("run", "--rm", "--bogus", "busybox"),
			c("run", "--rm", "nosuchimage:x"),
			c("run", "-d", "--rm", "--name", "d{s}", "busybox", "true"),
			{args: []string{"run", "-i", "--rm", "busybox", "cat"}, stdin: "piped in\n"},
			c("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link", "show", "lo"),
			{args: []string{"run", "--rm", "-it", "busybox", "true"}, stdin: "\n"},
			c("run", "--rm", "-t", "busybox", "echo", "tty"),
			c("run", "--name", "r{s}", "busybox", "true"),
			c("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo out; echo err >&2"),
			c("run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2"),
			c("run", "--rm", "-a", "bogus", "busybox", "true"),
			c("run", "-d", "-a", "stdout", "busybox", "true"),
			c("run", "--rm", "-w", "/made/here", "busybox", "pwd"),
			c("run", "--rm", "-u", "nosuchuser", "busybox", "true"),
			c("run", "--rm", "--entrypoint", "nosuch", "busybox"),
			c("start", "nosuch"),
			c("start", "nosuch1", "nosuch2"),
			c("start", "-a", "nosuch1", "nosuch2"),
			c("stop", "nosuch1", "nosuch2"),
			c("ps", "-a"),
			c("ps", "-a", "--format", "{{.Names}}\t{{.Status}}\t{{.Command}}"),
			c("ps", "-a", "--format", "json"),
			c("ps", "-a", "-q", "--no-trunc"),
			c("ps", "-a", "--filter", "name=r{s}", "--format", "table {{.Names}}\t{{.Image}}\t{{.State}}"),
			c("ps", "-l"),
			c("ps", "-a", "-n", "1", "-s"),
			c("ps", "-a", "--filter", "exited=3", "--format", "{{.Names}} {{.Label \"a\"}}"),
			c("ps", "-a", "--filter", "status=exited", "--filter", "ancestor=busybox", "--format", "{{.Names}}"),
			c("ps", "-a", "--filter", "bogus=1"),
			c("ps", "-a", "--filter", "bad"),
			c("rm", "nosuch1", "r{s}x", "nosuch2"),
			c("wait", "r{s}", "nosuch"),
			c("logs", "r{s}"),
			c("logs", "-t", "r{s}"),
			c("inspect", "r{s}"),
			c("inspect", "-f", "{{.State.ExitCode}} {{.Name}} {{json .Config.Cmd}}", "r{s}"),
			c("container", "inspect", "--format", "{{.HostConfig.Memory}}", "r{s}"),
			c("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "r{s}"),
			c("inspect", "--type", "network", "-f", "{{.Name}}", "bridge", "r{s}"),
			c("inspect", "-f", "{{.Bogus}}", "r{s}"),
			c("inspect", "-f", "{{", "r{s}"),
			c("inspect", "nosuch"),
			c("inspect", "--type", "image", "-f", "{{.RepoTags}} {{.Config.Cmd}}", "busybox"),
			c("wait", "r{s}"),
			c("rm", "r{s}"),
			c("rm", "nosuch"),
			c("ps", "-a"),
		}},
		{name: "lifecycle",
			setup: [][]string{{"run", "-d", "--name", "w{s}", "--expose", "80", "busybox", "sleep", "1000"}},
			cases: []cliCase{
				c("ps"),
				c("exec", "w{s}", "sh", "-c", "echo x; exit 4"),
				c("exec", "w{s}", "nosuch"),
				c("exec", "nosuch", "true"),
				c("exec", "w{s}"),
				c("exec", "-w", "/nonexist", "w{s}", "pwd"),
				c("diff", "nosuch"),
				c("port", "nosuch"),
				c("top", "nosuch"),
				c("logs", "nosuch"),
				c("wait", "nosuch"),
				c("update", "--memory", "1m", "w{s}"),
				c("inspect", "-f", "{{json .State.Status}} {{.State.Running}} {{.RestartCount}} {{len .Config.Env}}", "w{s}"),
				c("exec", "-e", "A=2", "-w", "/tmp", "-u", "nobody", "w{s}", "sh", "-c", "echo $A; pwd; id -u"),
				{args: []string{"exec", "-i", "w{s}", "cat"}, stdin: "to exec\n"},
				{args: []string{"exec", "-it", "w{s}", "true"}, stdin: "\n"},
				c("exec", "-t", "w{s}", "echo", "tty"),
				c("port", "w{s}"),
				c("port", "w{s}", "80"),
				{args: []string{"top", "w{s}"}, maskDigits: true},
				// After top: a detached exec may still be starting when exec -d returns.
				c("exec", "-d", "w{s}", "true"),
				c("pause", "w{s}"),
				c("pause", "w{s}"),
				c("ps", "--format", "{{.Status}}"),
				c("ps", "--format", "table {{.Names}}\t{{.Label \"nosuch\"}}\t{{.Networks}}\t{{.Mounts}}\t{{.LocalVolumes}}"),
				c("unpause", "w{s}"),
				c("unpause", "w{s}"),
				{args: []string{"top", "w{s}", "-o", "pid,comm"}, maskDigits: true},
				c("exec", "-u", "0:0", "--privileged", "w{s}", "id", "-u"),
				c("kill", "-s", "WINCH", "w{s}"),
				c("kill", "-s", "NOSUCHSIG", "w{s}"),
				c("ps", "--format", "{{.Names}} {{.Size}}"),
				c("rename", "w{s}", "v{s}"),
				c("rename", "nosuch", "x{s}"),
				c("diff", "v{s}"),
				c("exec", "v{s}", "touch", "/new"),
				c("diff", "v{s}"),
				c("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "v{s}"),
				c("restart", "-t", "0", "v{s}"),
				c("kill", "v{s}"),
				c("kill", "v{s}"),
				c("wait", "v{s}"),
				c("start", "v{s}"),
				c("stop", "-t", "0", "v{s}"),
				c("stop", "nosuch"),
				c("exec", "v{s}", "true"),
				c("start", "-a", "v{s}", "nosuch"),
				c("rm", "-f", "v{s}"),
			}},
		{name: "options",
			files: map[string]string{"env": "# comment\nA=from-file\nB\n\nC=c d\n", "labels": "l1=x\nl2=y\n", "data": "bound\n"},
			cases: []cliCase{
				c("run", "--rm", "--env-file", "{tmp}/env", "-e", "HOME", "-e", "NOSUCHVAR", "busybox", "sh", "-c", "echo $A,$B,$C,$HOME,${NOSUCHVAR-unset}"),
				c("run", "--rm", "-v", "{tmp}:/data:ro", "busybox", "sh", "-c", "cat /data/data; touch /data/x"),
				c("run", "--rm", "--mount", "type=bind,source={tmp},target=/data,readonly", "busybox", "cat", "/data/data"),
				c("run", "--rm", "--mount", "type=bind,src={tmp},dst=/data", "busybox", "sh", "-c", "grep /data /proc/mounts | cut -d' ' -f4 | cut -d, -f1"),
				c("run", "--rm", "--mount", "target=/x,bogus=1", "busybox", "true"),
				c("run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "sh", "-c", "grep /t /proc/mounts | cut -d' ' -f1,3"),
				c("run", "--rm", "--read-only", "busybox", "touch", "/x"),
				c("run", "--rm", "--cap-drop", "ALL", "busybox", "chown", "nobody", "/tmp"),
				c("run", "--rm", "--add-host", "h1:10.1.2.3", "-h", "myhost", "busybox", "sh", "-c", "grep h1 /etc/hosts; hostname"),
				c("run", "--rm", "--dns", "10.9.9.9", "--dns-search", "example.org", "busybox", "sh", "-c", "grep -v '^#' /etc/resolv.conf"),
				c("run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n"),
				c("run", "--rm", "--label-file", "{tmp}/labels", "--name", "lf{s}", "busybox", "true"),
				c("run", "--rm", "-p", "bad:port", "busybox", "true"),
				c("run", "--rm", "--memory", "lots", "busybox", "true"),
				c("run", "--rm", "--restart", "always", "busybox", "true"),
				c("run", "--rm", "--cpus", "100", "busybox", "true"),
				c("run", "--rm", "--health-cmd", "true", "busybox", "true"),
				c("run", "--rm", "--link", "x:y", "busybox", "true"),
				c("run", "--rm", "-v", "named:/x", "busybox", "true"),
				c("run", "--rm", "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "busybox", "true"),
				c("create", "--name", "o{s}", "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--init", "--entrypoint", "", "-w", "/tmp", "busybox", "sh"),
				c("inspect", "-f", "{{.Config.StopSignal}} {{.Config.StopTimeout}} {{.HostConfig.Init}} {{json .Config.Entrypoint}} {{.Config.WorkingDir}}", "o{s}"),
				c("rm", "o{s}"),
			}},
		{name: "ports",
			setup: [][]string{{"run", "-d", "--name", "pp{s}", "-p", "127.0.0.1::80", "-p", "127.0.0.1::53/udp", "--expose", "7000-7001", "busybox", "sleep", "1000"}},
			cases: []cliCase{
				{args: []string{"ps", "--filter", "name=pp{s}"}, maskDigits: true},
				{args: []string{"ps", "--filter", "name=pp{s}", "--format", "{{.Ports}}"}, maskDigits: true},
				{args: []string{"port", "pp{s}"}, maskDigits: true},
				{args: []string{"port", "pp{s}", "53/udp"}, maskDigits: true},
				c("port", "pp{s}", "9999"),
				{args: []string{"inspect", "-f", "{{json .NetworkSettings.Ports}}", "pp{s}"}, maskDigits: true},
				c("rm", "-f", "pp{s}"),
			}},
		{name: "create",
			setup: [][]string{{"run", "-d", "--name", "lf{s}", "busybox", "sh", "-c", "echo a; echo e >&2; sleep 1; echo b"}},
			cases: []cliCase{
				c("logs", "-f", "lf{s}"),
				c("logs", "-f", "--tail", "1", "lf{s}"),
				c("rm", "lf{s}"),
				c("create", "--name", "k{s}", "--restart", "on-failure:2", "-e", "X=y", "busybox", "echo", "created"),
				c("inspect", "-f", "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}", "k{s}"),
				c("start", "-a", "k{s}"),
				c("start", "k{s}"),
				c("wait", "k{s}"),
				c("logs", "k{s}"),
				c("logs", "--tail", "1", "k{s}"),
				c("logs", "-n", "0", "k{s}"),
				c("logs", "--since", "1h", "k{s}"),
				c("logs", "--until", "1h", "k{s}"),
				c("logs", "--since", "yesterday", "k{s}"),
				c("create", "--name", "bad name{s}", "busybox"),
				c("create", "--name", "k{s}", "busybox"),
				c("rm", "k{s}"),
			}},
		{name: "images",
			cases: []cliCase{
				c("images"),
				c("images", "-q"),
				c("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"),
				c("images", "--digests"),
				c("images", "-a"),
				c("images", "--filter", "dangling=true"),
				c("images", "--filter", "before=busybox"),
				c("images", "--no-trunc", "--format", "{{.ID}}"),
				c("images", "--filter", "reference=busybox", "--format", "json"),
				c("tag", "busybox", "t{s}:1"),
				c("images", "t{s}"),
				c("image", "ls", "t{s}", "--format", "table {{.Repository}}\t{{.Tag}}"),
				c("image", "inspect", "-f", "{{.RepoTags}}", "t{s}:1"),
				c("rmi", "t{s}:1"),
				c("rmi", "nosuch"),
				c("tag", "nosuch", "x{s}"),
				c("tag", "busybox", "UPPER{s}"),
				c("images", "busybox:latest", "--format", "{{.Repository}}:{{.Tag}}"),
				c("images", "nosuch"),
				c("history", "busybox"),
				c("history", "-q", "busybox"),
				c("history", "--no-trunc", "--format", "json", "busybox"),
				c("history", "-H=false", "busybox"),
				c("pull", "busybox"),
				c("pull", "-q", "busybox:latest"),
			}},
		{name: "networks",
			setup: [][]string{{"run", "-d", "--name", "nc{s}", "busybox", "sleep", "1000"}},
			cases: []cliCase{
				c("network", "create", "--label", "k=v", "n{s}"),
				c("network", "create", "n{s}"),
				c("network", "ls", "--filter", "name=n{s}"),
				c("network", "ls", "--filter", "name=n{s}", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}"),
				c("network", "ls", "--filter", "name=n{s}", "--format", "json"),
				c("network", "ls", "--filter", "label=k=v", "-q"),
				c("network", "ls", "--no-trunc", "--filter", "name=n{s}", "--format", "{{.ID}} {{.Label \"k\"}}"),
				c("network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Internal}} {{.Labels}}", "n{s}"),
				c("network", "connect", "n{s}", "nc{s}"),
				c("inspect", "-f", "{{len .NetworkSettings.Networks}}", "nc{s}"),
				c("network", "disconnect", "n{s}", "nc{s}"),
				c("network", "rm", "n{s}"),
				c("network", "rm", "n{s}"),
				c("network", "rm", "bridge"),
				c("network", "connect", "nosuch", "nc{s}"),
				c("network", "create", "--internal", "--label", "a=b", "ni{s}"),
				c("network", "inspect", "-f", "{{.Internal}} {{.Labels}} {{.Scope}} {{.EnableIPv4}}", "ni{s}"),
				c("network", "create", "--ipv6", "n6{s}"),
				c("network", "create", "-d", "overlay", "no{s}"),
				c("network", "rm", "ni{s}"),
				c("rm", "-f", "nc{s}"),
			}},
		{name: "volumes",
			setup: [][]string{{"volume", "create", "--label", "k=v", "v{s}"}, {"run", "--name", "vc{s}", "-v", "v{s}:/d", "busybox", "sh", "-c", "echo hi > /d/f"}},
			cases: []cliCase{
				c("volume", "create", "v{s}"),
				c("volume", "create", "--label", "a=b", "-o", "type=tmpfs", "-o", "device=tmpfs", "vt{s}"),
				c("volume", "ls", "--filter", "name=v{s}"),
				c("volume", "ls", "--filter", "label=k=v", "-q"),
				c("volume", "ls", "--filter", "name=vt{s}", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Label \"a\"}}"),
				c("volume", "ls", "--filter", "name=v{s}", "--format", "json"),
				c("volume", "ls", "--filter", "bogus=1"),
				c("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}} {{.Options}} {{.Scope}}", "v{s}", "vt{s}"),
				c("volume", "inspect", "nosuch{s}"),
				c("inspect", "-f", "{{.Name}} {{.Driver}}", "vt{s}"),
				c("inspect", "--type", "volume", "-f", "{{.Name}}", "v{s}"),
				c("volume", "rm", "v{s}"),
				c("volume", "rm", "nosuch{s}", "vt{s}"),
				c("volume", "create", "bad/name{s}"),
				c("system", "df", "--format", "{{.Type}} {{.TotalCount}}"),
				{args: []string{"system", "df"}, maskDigits: true},
				{args: []string{"system", "df", "-v"}, maskDigits: true},
				c("system", "df", "--format", "json"),
				c("rm", "vc{s}"),
				c("volume", "prune", "-f", "--filter", "label=k=v"),
				c("volume", "prune", "-a", "-f", "--filter", "label=k=v"),
				c("volume", "ls", "-q", "--filter", "name=v{s}"),
				{args: []string{"volume", "prune"}, stdin: "n\n"},
			}},
		{name: "files",
			setup: [][]string{{"run", "-d", "--name", "f{s}", "busybox", "sh", "-c", "echo content > /file; mkdir -p /dir/sub; echo deep > /dir/sub/x; exec sleep 1000"},
				{"exec", "f{s}", "true"}},
			cases: []cliCase{
				c("cp", "f{s}:/dir", "{tmp}"),
				c("cp", "f{s}:/file", "{tmp}/file"),
				c("cp", "{tmp}", "f{s}:/back"),
				c("exec", "f{s}", "find", "/back"),
				c("cp", "{tmp}/file", "f{s}:/back/sub/renamed"),
				c("exec", "f{s}", "cat", "/back/sub/renamed"),
				c("cp", "f{s}:/nosuch", "/tmp"),
				c("cp", "nosuch:/file", "/tmp"),
				c("cp", "f{s}:/file", "f{s}:/x"),
				c("cp", "/etc/hostname", "/tmp/x"),
				c("cp", "f{s}:/file"),
				{args: []string{"cp", "-", "f{s}:/tmp"}, stdin: string(tarOf(t, "in.txt", "from stdin\n"))},
				c("exec", "f{s}", "cat", "/tmp/in.txt"),
				c("export", "nosuch"),
				c("save", "nosuch"),
				c("update", "--memory", "64m", "--memory-swap", "128m", "f{s}"),
				c("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", "f{s}"),
				c("update", "--restart", "always", "f{s}"),
				c("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "f{s}"),
				c("update", "nosuch"),
				c("rm", "-f", "f{s}"),
			}},
		{name: "transfer",
			setup: [][]string{{"create", "--name", "x{s}", "busybox"}},
			cases: []cliCase{
				c("save", "-o", "{tmp}/img.tar", "busybox"),
				c("load", "-i", "{tmp}/img.tar"),
				c("load", "-q", "-i", "{tmp}/img.tar"),
				c("export", "-o", "{tmp}/fs.tar", "x{s}"),
				c("import", "-c", "CMD [\"sh\"]", "-m", "imported", "{tmp}/fs.tar", "imp{s}:1"),
				c("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", "imp{s}"),
				c("history", "--format", "{{.CreatedBy}}|{{.Comment}}", "imp{s}:1"),
				c("image", "inspect", "imp{s}:1"),
				c("rmi", "imp{s}:1"),
				c("tag", "busybox", "{reg}/push{s}:v1"),
				c("push", "{reg}/push{s}:v1"),
				c("push", "-q", "{reg}/push{s}:v1"),
				c("rmi", "{reg}/push{s}:v1"),
				c("pull", "{reg}/push{s}:v1"),
				c("pull", "{reg}/nosuch{s}:v1"),
				c("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", "{reg}/push{s}"),
				c("rmi", "{reg}/push{s}:v1"),
				c("network", "inspect", "bridge"),
				c("rm", "x{s}"),
			}},
		{name: "prune",
			setup: [][]string{{"create", "--name", "p{s}", "busybox"}, {"network", "create", "pn{s}"}},
			cases: []cliCase{
				c("container", "prune", "-f"),
				c("container", "prune", "-f"),
				c("network", "prune", "-f"),
				c("image", "prune", "-f"),
				{args: []string{"container", "prune"}, stdin: "n\n"},
				// The create scene's events, seconds old by now: "--until 0s"
				// is a whole second, so the last second's events are not in it.
				c("events", "--since", "10m", "--until", "0s", "--filter", "container=k{s}", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"),
				c("events", "--since", "10m", "--until", "0s", "--filter", "container=k{s}", "--filter", "event=die"),
				c("events", "--since", "10m", "--until", "0s", "--filter", "container=k{s}", "--filter", "event=start", "--format", "json"),
				c("events", "--since", "10m", "--until", "0s", "--filter", "network=n{s}", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"),
				c("events", "--since", "10m", "--until", "0s", "--filter", "bogus=1"),
				c("pull", "bad::ref"),
				c("push", "nosuch{s}"),
			}},
		{name: "login",
			cases: []cliCase{
				c("logout", "127.0.0.1:1"),
				c("login", "-u", "x", "-p", "y", "127.0.0.1:1"),
			}},
		{name: "usage",
			cases: []cliCase{
				c("rm"),
				c("rename", "a"),
				c("ps", "x"),
				c("nosuchcommand"),
				c("ps", "--bogus"),
				c("ps", "--help"),
				c("container", "ls", "--help"),
				c("rm", "--help"),
				c("stop", "--help"),
				c("exec", "--help"),
				c("logs", "--help"),
				c("images", "--help"),
				c("rmi", "--help"),
				c("pull", "--help"),
				c("tag", "--help"),
				c("inspect", "--help"),
				c("network", "--help"),
				c("network", "ls", "--help"),
				c("wait", "--help"),
				c("kill", "--help"),
				c("run", "--help"),
				c("create", "--help"),
				c("network", "create", "--help"),
				c("network", "connect", "--help"),
				c("cp", "--help"),
				c("update", "--help"),
				c("push", "--help"),
				c("events", "--help"),
				c("version", "--help"),
				c("info", "--help"),
				c("start", "--help"),
				c("version", "-f", "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}"),
				// The client sections are each CLI's own; the rest is equal.
				{args: []string{"version"}, hide: regexp.MustCompile(`(?s)^Client:.*?\n\n`)},
				{args: []string{"info"}, hide: regexp.MustCompile(`(?m)^ Version: .*$`), maskDigits: true}, // goroutines, file descriptors
				c("info", "-f", "{{.Name}} {{.NCPU}} {{.OSType}} {{json .RegistryConfig.Mirrors}}"),
			}},
	}
}

// requireDockerCLI28 skips comparisons with a Docker CLI other than the
// 28.x these machines have (make deps falls back to Debian's 20.10, whose
// texts differ): our CLI follows 28.x.
func requireDockerCLI28(t *testing.T) {
	t.Helper()
	out, err := exec.Command(dockerCLI, "version", "--format", "{{.Client.Version}}").Output()
	if v := strings.TrimSpace(string(out)); !strings.HasPrefix(v, "28.") {
		t.Skipf("the Docker CLI at %s is %q (%v), not 28.x: nothing to compare with", dockerCLI, v, err)
	}
}

func TestCLICompare(t *testing.T) {
	requireDockerCLI28(t)
	e := runEngine(t)
	suffixes := map[string]string{ourCLI(): "aaaa", dockerCLI: "bbbb"}
	// The test registry, engined's mirror: push and pull go there by name.
	var mirrors []string
	if err := json.Unmarshal([]byte(mustDocker(t, e.Host, "info", "-f", "{{json .RegistryConfig.Mirrors}}")), &mirrors); err != nil || len(mirrors) == 0 {
		t.Fatalf("engined's mirror: %v %v", mirrors, err)
	}
	reg := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(mirrors[0], "http://"), "https://"), "/")
	for _, sc := range cliScenes(t) {
		t.Run(sc.name, func(t *testing.T) {
			results := map[string][]cliRun{}
			for _, bin := range []string{ourCLI(), dockerCLI} {
				sfx := suffixes[bin]
				config := t.TempDir()
				sub := func(args []string) []string {
					out := make([]string, len(args))
					for i, a := range args {
						a = strings.ReplaceAll(a, "{reg}", reg)
						out[i] = strings.ReplaceAll(strings.ReplaceAll(a, "{tmp}", "/tmp/clitest-{s}"), "{s}", sfx)
					}
					return out
				}
				os.RemoveAll("/tmp/clitest-" + sfx)
				os.MkdirAll("/tmp/clitest-"+sfx, 0o755)
				for name, content := range sc.files {
					if err := os.WriteFile(filepath.Join("/tmp/clitest-"+sfx, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				t.Cleanup(func() { os.RemoveAll("/tmp/clitest-" + sfx) })
				for _, s := range sc.setup {
					if r := runCLI(t, dockerCLI, e.Host, config, "", sub(s)...); r.code != 0 {
						t.Fatalf("setup %v: %+v", s, r)
					}
				}
				for _, cs := range sc.cases {
					r := runCLI(t, bin, e.Host, config, cs.stdin, sub(cs.args)...)
					if cs.hide != nil {
						r.stdout = cs.hide.ReplaceAllString(r.stdout, "<HIDDEN>")
					}
					r.stdout, r.stderr = mask(r.stdout, sfx, cs.maskDigits), mask(r.stderr, sfx, cs.maskDigits)
					results[bin] = append(results[bin], r)
				}
			}
			for i, cs := range sc.cases {
				ours, theirs := results[ourCLI()][i], results[dockerCLI][i]
				if ours != theirs {
					t.Errorf("docker %s:\n ours: exit %d\n stdout %q\n stderr %q\n docker: exit %d\n stdout %q\n stderr %q",
						strings.Join(cs.args, " "), ours.code, ours.stdout, ours.stderr, theirs.code, theirs.stdout, theirs.stderr)
				}
			}
		})
	}
}
