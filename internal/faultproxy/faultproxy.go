// Package faultproxy is a TCP proxy for tests that breaks connections on
// purpose: it drops the next bytes a server sends (a reply lost after the
// handler ran), cuts connections at random moments, and moves new
// connections to another backend (a failover). It listens on loopback only.
package faultproxy

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from its address to a backend.
type Proxy struct {
	ln net.Listener

	mu        sync.Mutex
	target    string
	dropReply bool          // the next server bytes are dropped and the link cut
	maxLife   time.Duration // > 0: each connection is cut after a random time below it
	rnd       *rand.Rand
	links     map[*link]struct{}
	closed    bool

	accepted atomic.Int64
	dropped  atomic.Int64 // connections cut by the proxy
	wg       sync.WaitGroup
}

type link struct {
	client, server net.Conn
	once           sync.Once
}

func (l *link) cut() {
	l.once.Do(func() {
		// A reset, not a FIN: the peers see a dead link at once, as after
		// a crash or a lost network.
		if tc, ok := l.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		l.client.Close()
		l.server.Close()
	})
}

// New starts a proxy on a free loopback port that forwards to target
// (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{}), rnd: rand.New(rand.NewPCG(1, 2))}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns a ws:// URL of path on the proxy.
func (p *Proxy) URL(path string) string { return "ws://" + p.Addr() + path }

// Retarget sends new connections to target; open ones stay where they are.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// DropNextReply makes the proxy discard the next bytes any server sends
// and cut that connection: a request forwarded before is answered by the
// server, but the answer never reaches the client.
func (p *Proxy) DropNextReply() {
	p.mu.Lock()
	p.dropReply = true
	p.mu.Unlock()
}

// RandomDrops cuts each connection opened from now on after a random time
// below maxLife, drawn from a generator seeded with seed; zero stops the
// drops for new connections.
func (p *Proxy) RandomDrops(maxLife time.Duration, seed uint64) {
	p.mu.Lock()
	p.maxLife = maxLife
	p.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p.mu.Unlock()
}

// CutAll cuts every open connection.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		p.dropped.Add(1)
		l.cut()
	}
}

// Accepted returns the number of connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Dropped returns the number of connections the proxy cut.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Close stops accepting, cuts every connection and waits for the proxy's
// goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		target, closed, maxLife := p.target, p.closed, p.maxLife
		var life time.Duration
		if maxLife > 0 {
			life = time.Duration(p.rnd.Int64N(int64(maxLife))) + 1
		}
		p.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		s, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		p.links[l] = struct{}{}
		p.mu.Unlock()
		var timer *time.Timer
		if life > 0 {
			timer = time.AfterFunc(life, func() {
				p.dropped.Add(1)
				l.cut()
			})
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(s, c)
			l.cut()
		}()
		go func() {
			defer p.wg.Done()
			p.serverToClient(l)
			l.cut()
			if timer != nil {
				timer.Stop()
			}
			p.mu.Lock()
			delete(p.links, l)
			p.mu.Unlock()
		}()
	}
}

// serverToClient copies the server's bytes to the client, unless a drop
// is armed when they arrive.
func (p *Proxy) serverToClient(l *link) {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.dropReply
			p.dropReply = false
			p.mu.Unlock()
			if drop {
				p.dropped.Add(1)
				return
			}
			if _, werr := l.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
