package dns

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
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
// in the kernel: nothing of it needs the resolver to run. As nft would
// list it:
//
//	table ip engined_dns {
//	  chain output { type nat hook output priority dstnat; policy accept;
//	    ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:UDPPORT
//	    ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:TCPPORT }
//	  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//	    ip saddr 127.0.0.11 udp sport UDPPORT snat to 127.0.0.11:53
//	    ip saddr 127.0.0.11 tcp sport TCPPORT snat to 127.0.0.11:53 }
//	}
//
// It is written over netlink (google/nftables), in one batch that
// replaces the rules of any previous resolver: running nft costs about
// 20 ms a time, netlink well under one.
const dnatTable = "engined_dns"

func setDNAT(ns netns.NsHandle, udpPort, tcpPort int) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables in the container: %w", err)
	}
	// Added if missing, its chains emptied and filled, in one batch.
	// Not deleted and made anew: deleting a table unregisters its hooks,
	// which waits for an RCU grace period (about 10 ms here).
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: dnatTable})
	policy := nftables.ChainPolicyAccept
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityNATDest, Policy: &policy})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource, Policy: &policy})
	c.FlushChain(out)
	c.FlushChain(post)
	addr := net.ParseIP(ListenAddr).To4()
	for _, p := range []struct {
		proto byte
		port  int
	}{{unix.IPPROTO_UDP, udpPort}, {unix.IPPROTO_TCP, tcpPort}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: natRule(16, addr, p.proto, 2, 53, expr.NATTypeDestNAT, p.port)})
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: natRule(12, addr, p.proto, 0, p.port, expr.NATTypeSourceNAT, 53)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables in the container: %w", err)
	}
	return nil
}

// natRule: "ip [s|d]addr ADDR PROTO [s|d]port PORT [s|d]nat to ADDR:TO";
// addrOff and portOff are the offsets of the address in the IPv4
// header (12 source, 16 destination) and of the port in the transport
// header (0 source, 2 destination).
func natRule(addrOff uint32, addr net.IP, proto byte, portOff uint32, port int, nat expr.NATType, to int) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
		&expr.Immediate{Register: 1, Data: addr},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(to))},
		&expr.NAT{Type: nat, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true},
	}
}

// ListenAddr is the embedded resolver's address in every container.
const ListenAddr = "127.0.0.11"

// dnatPorts are the ports the DNAT in ns sends 127.0.0.11:53 to, if a
// resolver before this one left it (0: none).
func dnatPorts(ns netns.NsHandle) (udpPort, tcpPort int) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return 0, 0
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: dnatTable}
	rules, err := c.GetRules(t, &nftables.Chain{Name: "output", Table: t})
	if err != nil {
		return 0, 0
	}
	for _, r := range rules {
		var proto byte
		var port int
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Cmp:
				if len(e.Data) == 1 {
					proto = e.Data[0]
				}
			case *expr.Immediate:
				if e.Register == 2 && len(e.Data) == 2 {
					port = int(binaryutil.BigEndian.Uint16(e.Data))
				}
			}
		}
		switch proto {
		case unix.IPPROTO_UDP:
			udpPort = port
		case unix.IPPROTO_TCP:
			tcpPort = port
		}
	}
	return udpPort, tcpPort
}

// listenIn opens the resolver's UDP and TCP sockets on 127.0.0.11 in ns
// and points 127.0.0.11:53 at them (one transaction, so a query never
// sees half the rules). A new resolver takes the ports the DNAT a
// previous one left already names, if they are free, and then leaves
// the rules alone (rewriting them costs about 10 ms a container, as
// the old rules' release waits for RCU); else the kernel picks ports.
func listenIn(ns netns.NsHandle) (net.PacketConn, net.Listener, error) {
	var pc net.PacketConn
	var l net.Listener
	oldUDP, oldTCP := dnatPorts(ns)
	err := inNetns(ns, func() error {
		var err error
		if oldUDP != 0 && oldTCP != 0 {
			if pc, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", ListenAddr, oldUDP)); err == nil {
				if l, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", ListenAddr, oldTCP)); err == nil {
					return nil
				}
				pc.Close()
			}
		}
		if pc, err = net.ListenPacket("udp4", ListenAddr+":0"); err != nil {
			return fmt.Errorf("listen udp: %w", err)
		}
		if l, err = net.Listen("tcp4", ListenAddr+":0"); err != nil {
			return fmt.Errorf("listen tcp: %w", err)
		}
		return nil
	})
	if err == nil {
		udpPort, tcpPort := pc.LocalAddr().(*net.UDPAddr).Port, l.Addr().(*net.TCPAddr).Port
		if udpPort != oldUDP || tcpPort != oldTCP {
			err = setDNAT(ns, udpPort, tcpPort)
		}
	}
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
