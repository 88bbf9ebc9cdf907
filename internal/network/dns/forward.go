package dns

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// upstreamTimeout bounds one exchange with one upstream server (dockerd
// waits 4 s too); the next server is tried after it.
const upstreamTimeout = 4 * time.Second

// forward sends q to the scope's upstream servers in turn over proto
// (the query's own: a client that got a truncated UDP answer asks again
// over TCP, and so does the resolver) and returns the first answer that
// is not SERVFAIL or REFUSED, or the last one there was.
func forward(ctx context.Context, s *scope, ns netns.NsHandle, proto string, q *dns.Msg) (*dns.Msg, error) {
	if len(s.upstreams) == 0 {
		return nil, errors.New("no upstream servers")
	}
	size := uint16(dns.MinMsgSize)
	if o := q.IsEdns0(); o != nil && o.UDPSize() > size {
		size = o.UDPSize()
	}
	var last *dns.Msg
	var errs []error
	for _, u := range s.upstreams {
		c := &dns.Client{Net: proto, UDPSize: size, Timeout: upstreamTimeout}
		ectx, cancel := context.WithTimeout(ctx, upstreamTimeout)
		var m *dns.Msg
		var err error
		if u.HostNS {
			m, _, err = c.ExchangeContext(ectx, q, u.Addr)
		} else {
			m, err = exchangeIn(ectx, c, ns, proto, q, u.Addr)
		}
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.Addr, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		last = m
		if m.Rcode != dns.RcodeServerFailure && m.Rcode != dns.RcodeRefused {
			return m, nil
		}
	}
	if last != nil {
		return last, nil
	}
	return nil, errors.Join(errs...)
}

// exchangeIn is one exchange over a socket made in the container's
// namespace.
func exchangeIn(ctx context.Context, c *dns.Client, ns netns.NsHandle, proto string, q *dns.Msg, addr string) (*dns.Msg, error) {
	conn, err := dialIn(ctx, ns, proto, addr)
	if err != nil {
		return nil, err
	}
	dc := &dns.Conn{Conn: conn, UDPSize: c.UDPSize}
	defer dc.Close()
	m, _, err := c.ExchangeWithConnContext(ctx, q, dc)
	return m, err
}
