//go:build bench

package bench

import (
	"net"
	"net/url"
	"testing"
	"time"
)

// latencyProxy forwards TCP connections to the server of dsn, delaying every chunk of bytes sent
// to the server by rtt without limiting throughput: a database across a network, to a client that
// waits for each answer. The whole delay is on the way there because this machine's timers wake
// about 1.1 ms late whatever they are set to (measured): split over both ways, 1 ms would become
// 2.5. It returns dsn rewritten to go through it.
func latencyProxy(t *testing.T, dsn string, rtt time.Duration) string {
	t.Helper()
	u, err := url.Parse(dsn)
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	target := u.Host
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			// Either side hanging up ends both.
			go func() { delayed(s, c, rtt); s.Close(); c.Close() }()
			go func() { delayed(c, s, 0); s.Close(); c.Close() }()
		}
	}()
	u.Host = ln.Addr().String()
	return u.String()
}

// delayed copies src to dst until either fails, each chunk written d after it was read, in order.
func delayed(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		if d > 0 {
			time.Sleep(time.Until(c.due))
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}
