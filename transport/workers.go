package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a worker goroutine waits for its next task before
// it exits. Long enough to span the gaps between the bursts of a busy
// server, short enough that a quiet server soon holds no worker at all.
const workerIdle = time.Second

// maxIdleWorkers bounds the workers kept waiting after a spike; the excess
// exits at once.
const maxIdleWorkers = 1024

// workerPool runs the short-lived goroutines of the server's connections
// (handlers and writers) on goroutines that outlive their task for a
// moment. A fresh goroutine starts with a small stack and grows it, by
// copying, in every deep call (gorilla's writes, Protobuf's marshalling):
// under load that cost a sixth of the server's CPU. A worker keeps the
// stack it grew, so the next task runs on a warm one.
//
// Idle workers belong to the Server, never to a connection: an idle
// connection still costs no goroutine but its read loop.
type workerPool struct {
	tasks   chan func() // unbuffered: a send succeeds only to a waiting worker
	quit    chan struct{}
	once    sync.Once
	idleFor time.Duration // workerIdle; shorter in tests
	idle    atomic.Int32  // workers waiting for a task
	wg      sync.WaitGroup
}

func newWorkerPool() *workerPool {
	return &workerPool{tasks: make(chan func()), quit: make(chan struct{}), idleFor: workerIdle}
}

// run runs f on an idle worker or, when none waits, on a new one.
func (p *workerPool) run(f func()) {
	select {
	case p.tasks <- f:
	default:
		p.wg.Add(1)
		go p.work(f)
	}
}

func (p *workerPool) work(f func()) {
	// Deferred, so that a task ending its goroutine (runtime.Goexit) is
	// still accounted for.
	defer p.wg.Done()
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		f()
		f = nil
		if p.idle.Add(1) > maxIdleWorkers {
			p.idle.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(p.idleFor)
		} else {
			t.Reset(p.idleFor)
		}
		select {
		case f = <-p.tasks:
			p.idle.Add(-1)
		case <-t.C:
			p.idle.Add(-1)
			return
		case <-p.quit:
			p.idle.Add(-1)
			return
		}
	}
}

// stop makes idle workers exit, and busy ones once their task returns.
// Later tasks still run, each on a goroutine of its own.
func (p *workerPool) stop() {
	p.once.Do(func() { close(p.quit) })
}

// wait waits for every worker to exit; call it after stop, once no task
// can be running any more.
func (p *workerPool) wait() {
	p.wg.Wait()
}
