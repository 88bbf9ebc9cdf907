// Package dns is the embedded DNS of user-defined networks, as dockerd's:
// in a container on such a network, 127.0.0.11 answers the names of the
// containers it shares a network with (container name, --network-alias
// aliases, the 12-character short id, the hostname: dockerd's DNSNames,
// in that order) with their addresses on the shared networks, PTR for
// those addresses (first name + "." + network), an empty NOERROR for
// AAAA and other types of a known name, TTL 600, and forwards every
// other query to upstream servers: the host resolv.conf's, queried from
// the host's network namespace (so 127.0.0.53-style servers work), or
// the container's --dns servers, queried from its own namespace, as
// dockerd does. Queries are forwarded over the transport they came on,
// and a UDP answer too big for the client is cut with TC set, so the
// client asks again over TCP.
//
// # It answers while engined is down
//
// The resolver is a process of its own, one per engined (engined's
// hidden dns-resolver subcommand; a binary of its own would run in 8 MB
// instead of about 19, but engined ships three binaries only), started by engined detached in a session of
// its own, like the shims, so engined's stop, SIGKILL or restart does
// not touch it. Its whole state is a records file under engined's exec
// root (<exec-root>/dns/records.json: networks, endpoints with their
// names and addresses, and one sandbox per container with an endpoint on
// a user-defined network: the path and inode of its network namespace
// and its upstreams). engined's network manager writes it atomically
// (temporary file, rename) from the endpoints it stores, after every
// attach, detach and network removal, then sends "reload" on the
// resolver's control socket (<exec-root>/dns/control.sock) and waits
// for the ack before the container starts: a container's peers resolve
// from its first query. The resolver also reads the file when it starts.
//
// For each sandbox the resolver opens a UDP and a TCP socket on
// 127.0.0.11 with ports the kernel picks, inside the container's network
// namespace (a thread locked to the goroutine enters it with setns and
// is discarded after), and serves them with miekg/dns servers; the
// socket says which container asks, so answers are scoped to that
// container's networks and never cross to others. An nftables table in
// the container's namespace, written over netlink in one batch, DNATs
// 127.0.0.11:53 to those ports and SNATs the replies back, as dockerd's
// iptables rules do: the container's own processes can still bind port
// 53, and the rules are in the kernel. Sockets of a sandbox that leaves
// the file are closed at once, with the namespace handle the resolver
// holds: a socket keeps its namespace alive.
//
// What happens when:
//
//   - engined is stopped, killed or restarting: nothing changes for the
//     containers; the resolver serves from its last records. engined
//     finds it again at its start by its control socket (a live resolver
//     is kept, and reloaded) and watches it through an idle connection
//     on that socket.
//   - the resolver dies while engined runs: the watching connection
//     ends and engined starts a new resolver within a second; it reads
//     the records file and binds, in each container, the ports that
//     container's DNAT names (new ones, and a rewritten DNAT, only if a
//     process there took them meanwhile). Meanwhile queries reach a
//     closed port and fail at once (ICMP port unreachable), they do not
//     hang.
//   - both are down: the same fast failures until engined starts, which
//     starts a resolver if the records have sandboxes. A container that
//     exited meanwhile has its sandbox skipped (its namespace path is
//     gone, or names another namespace: the inode is checked) and its
//     records removed when engined releases its endpoints.
//   - a resolver hangs: a reload that takes longer than 10 s gets it
//     killed and replaced.
//
// The pid file (<exec-root>/dns/resolver.pid) is locked for the
// resolver's life: one resolver per root, so parallel engineds on other
// roots (the tests') each have their own. SIGTERM stops it cleanly.
//
// # Why this design, and what it costs
//
// One process per engined rather than a resolver in each shim: the
// shim's imports must stay small (its package inits run again in every
// container start) and a shim would need every peer's records anyway;
// one process serves 51 sandboxes in about 12.5 MB, less than two shims.
// A process of its own rather than goroutines in engined: engined's
// memory is gone when engined is. A binary of its own rather than only
// engined's subcommand: without engined's packages (gRPC, protobuf
// registries, images, the gateway) it idles at 8.5 MB RSS instead of
// 19-20 MB (measured, one sandbox). DNAT over netlink rather than
// running nft: nft takes about 20 ms a run here, the netlink batch well
// under 1 ms; the table is emptied and refilled rather than deleted and
// made anew, since deleting it waits for an RCU grace period (about
// 10 ms).
//
// Measured on the development VM (2 vCPUs; TestDNSMeasure in
// internal/e2e, ENGINED_DNS_MEASURE=1):
//
//   - RSS: 8.2-8.5 MB with one sandbox; 11.3-11.6 MB after 6,000
//     queries; 12.2-12.5 MB with 51 sandboxes (GC at 50%).
//   - per query, sequential, a new client socket each, from a container's
//     namespace: A of a container name 0.2-0.3 ms over UDP, 0.35-0.65 ms
//     over TCP (a connection per query); forwarded to an upstream on the
//     host's loopback 0.3-0.5 ms.
//   - opening a sandbox (sockets, DNAT, servers): 0.6-2 ms; engined's
//     whole share of an attach (records from bbolt and the file, 1-2 ms
//     with the test's exec root on disk; reload; ack): 2.5-5 ms, with
//     outliers to 30 ms while other containers start.
//
// # Where it differs from dockerd
//
// An A query is answered with the name's addresses on every network the
// two containers share (dockerd answers with the first such network's).
// A container that is only on --internal networks has no upstreams, so
// its other queries are SERVFAIL. Names are IPv4 only, as engined's
// networks; SRV (swarm services) is not answered.
package dns
