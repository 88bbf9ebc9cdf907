package dns

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openNetns opens the namespace at path and checks it is the one with
// inode ino (0: not checked): a /proc/PID path whose process died names
// another namespace if the pid is reused.
func openNetns(path string, ino uint64) (netns.NsHandle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		ns.Close()
		return netns.None(), fmt.Errorf("stat network namespace %s: %w", path, err)
	}
	if ino != 0 && st.Ino != ino {
		ns.Close()
		return netns.None(), fmt.Errorf("network namespace %s is not the container's any more (inode %d, want %d)", path, st.Ino, ino)
	}
	return ns, nil
}

// inNetns runs fn on an OS thread that is in the namespace ns. The
// thread is locked and never unlocked, so Go ends it with the goroutine
// instead of giving a thread in another namespace back to its pool.
// Sockets made in fn stay in ns, wherever they are used later; a
// process fn starts is in ns too.
func inNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// dnatTable is the nftables table the resolver keeps in each container's
// namespace: queries to 127.0.0.11:53 go to the resolver's sockets,
// which are on ports of their own so that the container's processes
// can still bind port 53; replies are sent back from port 53. It lives
// in the kernel: nothing of it needs the resolver to run.
const dnatTable = "engined_dns"

func dnatRules(udpPort, tcpPort int) string {
	return fmt.Sprintf(`add table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr %[2]s udp dport 53 dnat to %[2]s:%[3]d
		ip daddr %[2]s tcp dport 53 dnat to %[2]s:%[4]d
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr %[2]s udp sport %[3]d snat to %[2]s:53
		ip saddr %[2]s tcp sport %[4]d snat to %[2]s:53
	}
}
`, dnatTable, ListenAddr, udpPort, tcpPort)
}

// ListenAddr is the embedded resolver's address in every container.
const ListenAddr = "127.0.0.11"

// listenIn opens the resolver's UDP and TCP sockets on 127.0.0.11 with
// kernel-chosen ports in ns, and points 127.0.0.11:53 at them (nft runs
// in ns: one transaction, so a query never sees half the rules).
func listenIn(ctx context.Context, ns netns.NsHandle) (net.PacketConn, net.Listener, error) {
	var pc net.PacketConn
	var l net.Listener
	err := inNetns(ns, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", ListenAddr+":0"); err != nil {
			return fmt.Errorf("listen udp: %w", err)
		}
		if l, err = net.Listen("tcp4", ListenAddr+":0"); err != nil {
			return fmt.Errorf("listen tcp: %w", err)
		}
		cmd := exec.CommandContext(ctx, "nft", "-f", "-")
		cmd.Stdin = bytes.NewBufferString(dnatRules(pc.LocalAddr().(*net.UDPAddr).Port, l.Addr().(*net.TCPAddr).Port))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft in the container: %w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	})
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		if l != nil {
			l.Close()
		}
		return nil, nil, err
	}
	return pc, l, nil
}

// dialIn connects to addr from inside ns (for --dns upstreams, which
// dockerd queries from the container's namespace).
func dialIn(ctx context.Context, ns netns.NsHandle, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
