// A TCP proxy for fault injection between the daemon and a real server.

package integration

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a TCP proxy on loopback for fault injection between the daemon
// and a real server: it can pass traffic, delay every chunk, or blackhole
// new connections (accept them and never answer), and cut every open one.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mode       atomic.Int32 // proxyPass, proxyBlackhole
	delayUp    atomic.Int64 // client -> server, per chunk, nanoseconds
	delayDown  atomic.Int64 // server -> client, per chunk, nanoseconds
	downChunks atomic.Int64 // chunks forwarded server -> client
	upChunks   atomic.Int64 // chunks forwarded client -> server

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

const (
	proxyPass int32 = iota
	proxyBlackhole
	// proxyRefuse closes every new connection at once: a server gone.
	proxyRefuse
)

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) port() string {
	_, port, _ := net.SplitHostPort(p.addr())
	return port
}

func (p *proxy) setDelay(up, down time.Duration) {
	p.delayUp.Store(int64(up))
	p.delayDown.Store(int64(down))
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

// cut closes every open connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.mode.Load() == proxyRefuse {
			_ = c.Close()
			continue
		}
		p.track(c)
		if p.mode.Load() == proxyBlackhole {
			// Hold the connection open and never answer: a server that hangs.
			go func() { _, _ = io.Copy(io.Discard, c) }()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(up)
		go p.pipe(c, up, &p.delayUp, &p.upChunks)
		go p.pipe(up, c, &p.delayDown, &p.downChunks)
	}
}

func (p *proxy) pipe(from, to net.Conn, delay, count *atomic.Int64) {
	p.pipeThrough(from, to, delay, count, nil)
}

// pipeThrough copies from to to, passing each chunk through transform
// (nil: as it is).
func (p *proxy) pipeThrough(from, to net.Conn, delay, count *atomic.Int64, transform func([]byte) []byte) {
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if d := time.Duration(delay.Load()); d > 0 {
				time.Sleep(d)
			}
			chunk := buf[:n]
			if transform != nil {
				chunk = transform(chunk)
			}
			if _, werr := to.Write(chunk); werr != nil {
				return
			}
			count.Add(1)
		}
		if err != nil {
			return
		}
	}
}
