package transport

import (
	"slices"
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
// A room broadcast starts a writer on every member's connection, so a
// task's hand-off is on the path of every delivery: it takes one short
// lock and a send on the worker's own channel. Idle workers wait on
// channels of their own, not on one shared by all (whose lock every
// waiting and every waking worker took, with the pool's quit channel),
// and the last to become idle is the first to work again, on the warmest
// stack; a worker's idle timer is set once per idle time, not per task.
//
// Idle workers belong to the Server, never to a connection: an idle
// connection still costs no goroutine but its read loop.
type workerPool struct {
	mu      sync.Mutex
	idlers  []*worker // waiting for a task, the most recent last
	stopped bool
	idleFor time.Duration // workerIdle; shorter in tests
	idle    atomic.Int32  // len(idlers), for tests
	wg      sync.WaitGroup
}

// worker is an idle worker's mailbox.
type worker struct {
	// task takes the worker's next task (nil: exit). It holds one: a
	// task is sent only to a worker taken off the idle list, once.
	task chan task
	// since is when the worker last became idle, and timer its idle
	// timer (expire), made when it first became idle; under workerPool.mu.
	since time.Time
	timer *time.Timer
}

func newWorkerPool() *workerPool {
	return &workerPool{idleFor: workerIdle}
}

// task is what a worker runs. It is an interface, not a func, so that the
// server's own tasks, a call to run (*Call) and a connection's writer
// (*connWriter), are handed over as the pointers they are, where a closure
// or a method value would cost an allocation for every call.
type task interface{ runTask() }

// taskFunc is a function as a task.
type taskFunc func()

func (f taskFunc) runTask() { f() }

// run runs f on an idle worker or, when none waits, on a new one.
func (p *workerPool) run(f func()) { p.runTask(taskFunc(f)) }

// runTask runs f on an idle worker or, when none waits, on a new one.
func (p *workerPool) runTask(f task) {
	p.mu.Lock()
	if n := len(p.idlers); n > 0 {
		w := p.idlers[n-1]
		p.idlers[n-1] = nil
		p.idlers = p.idlers[:n-1]
		p.idle.Add(-1)
		p.mu.Unlock()
		w.task <- f
		return
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.work(f)
}

func (p *workerPool) work(f task) {
	// Deferred, so that a task ending its goroutine (runtime.Goexit) is
	// still accounted for.
	defer p.wg.Done()
	w := &worker{task: make(chan task, 1)}
	defer func() {
		if w.timer != nil {
			w.timer.Stop()
		}
	}()
	for {
		f.runTask()
		f = nil // not kept alive while idle
		p.mu.Lock()
		if p.stopped || len(p.idlers) >= maxIdleWorkers {
			p.mu.Unlock()
			return
		}
		w.since = time.Now()
		p.idlers = append(p.idlers, w)
		p.idle.Add(1)
		if w.timer == nil {
			w.timer = time.AfterFunc(p.idleFor, func() { p.expire(w) })
		}
		p.mu.Unlock()
		// A receive alone, not a select with a timer's channel, which
		// costs a busy worker about twice as much per task: the timer
		// sends nil when the worker has been idle for the idle time.
		if f = <-w.task; f == nil {
			return // stop, or idle too long
		}
	}
}

// expire is the function of w's idle timer: when w has been idle for the
// idle time it takes w off the idle list and tells it to exit; otherwise
// it sets the timer for the rest of it. A worker that a task was just
// handed to is no longer on the list and stays.
func (p *workerPool) expire(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.idlers, w)
	if i < 0 {
		if !p.stopped {
			w.timer.Reset(p.idleFor) // its task is on the way
		}
		return
	}
	if left := p.idleFor - time.Since(w.since); left > 0 {
		w.timer.Reset(left)
		return
	}
	p.idlers = slices.Delete(p.idlers, i, i+1)
	p.idle.Add(-1)
	w.task <- nil // w was idle: its channel is empty
}

// stop makes idle workers exit, and busy ones once their task returns.
// Later tasks still run, each on a goroutine of its own.
func (p *workerPool) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for _, w := range p.idlers {
		w.task <- nil
	}
	clear(p.idlers)
	p.idlers = nil
	p.idle.Store(0)
}

// wait waits for every worker to exit; call it after stop, once no task
// can be running any more.
func (p *workerPool) wait() {
	p.wg.Wait()
}
