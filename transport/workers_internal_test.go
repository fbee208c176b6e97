package transport

import (
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in synctest bubbles: synctest.Wait returns once every
// worker has reached its receive, so the idle count is exact, and the
// idle timer runs on the bubble's clock.

// wantIdle checks, once every goroutine of the bubble waits, that n workers
// of p wait for a task.
func wantIdle(t *testing.T, p *workerPool, n int32) {
	t.Helper()
	synctest.Wait()
	if got := p.idle.Load(); got != n {
		t.Fatalf("%d idle workers, want %d", got, n)
	}
}

func TestWorkerPool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, p *workerPool)
	}{
		{"a finished worker takes the next task", func(t *testing.T, p *workerPool) {
			done := make(chan struct{})
			p.run(func() { close(done) })
			<-done
			wantIdle(t, p, 1)
			release := make(chan struct{})
			running := make(chan struct{})
			p.run(func() { close(running); <-release })
			<-running
			// A new goroutine would have left the idle one waiting.
			wantIdle(t, p, 0)
			close(release)
			wantIdle(t, p, 1)
		}},
		{"busy workers leave new tasks to new goroutines", func(t *testing.T, p *workerPool) {
			release := make(chan struct{})
			started := make(chan struct{}, 3)
			for range 3 {
				p.run(func() { started <- struct{}{}; <-release })
			}
			for range 3 {
				<-started // all three run at once: none waited for another
			}
			close(release)
			wantIdle(t, p, 3)
		}},
		{"an idle worker exits after its idle time", func(t *testing.T, p *workerPool) {
			p.idleFor = 10 * time.Millisecond
			p.run(func() {})
			time.Sleep(p.idleFor - time.Nanosecond)
			wantIdle(t, p, 1)
			time.Sleep(time.Nanosecond)
			wantIdle(t, p, 0)
			p.wait() // returns without stop: the worker is gone
		}},
		{"a task that ends its goroutine is accounted for", func(t *testing.T, p *workerPool) {
			done := make(chan struct{})
			p.run(func() { defer close(done); runtime.Goexit() })
			<-done
		}},
		{"tasks run after stop", func(t *testing.T, p *workerPool) {
			p.stop()
			done := make(chan struct{})
			p.run(func() { close(done) })
			<-done
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newWorkerPool()
				tt.run(t, p)
				p.stop()
				p.stop() // idempotent
				stopped := make(chan struct{})
				go func() { p.wait(); close(stopped) }()
				select {
				case <-stopped:
				case <-time.After(5 * time.Second):
					t.Fatal("workers still running after stop")
				}
				if n := p.idle.Load(); n != 0 {
					t.Fatalf("%d idle workers after stop", n)
				}
			})
		})
	}
}

// BenchmarkWorkerPool measures the hand-off of a task to a worker as a
// room broadcast does it: the writers of 256 connections started one
// after the other, on workers left idle by the previous round.
func BenchmarkWorkerPool(b *testing.B) {
	const tasks = 256
	p := newWorkerPool()
	defer func() { p.stop(); p.wait() }()
	var wg sync.WaitGroup
	task := func() { wg.Done() }
	b.ReportAllocs()
	for b.Loop() {
		wg.Add(tasks)
		for range tasks {
			p.run(task)
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tasks), "ns/task")
}
