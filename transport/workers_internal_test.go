package transport

import (
	"runtime"
	"testing"
	"time"
)

// waitIdle waits until n workers of p wait for a task.
func waitIdle(t *testing.T, p *workerPool, n int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.idle.Load() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers, want %d", p.idle.Load(), n)
		}
		runtime.Gosched()
	}
}

func TestWorkerPool(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, p *workerPool)
	}{
		{"a finished worker takes the next task", func(t *testing.T, p *workerPool) {
			done := make(chan struct{})
			p.run(func() { close(done) })
			<-done
			// The idle count rises just before the worker reaches its
			// receive, so a task sent in that instant goes to a new
			// goroutine (correctly). Try a few times: an idle worker must
			// take one of the tasks.
			atLeast := func(n int32) {
				for deadline := time.Now().Add(5 * time.Second); p.idle.Load() < n; {
					if time.Now().After(deadline) {
						t.Fatalf("%d idle workers, want at least %d", p.idle.Load(), n)
					}
					runtime.Gosched()
				}
			}
			reused := false
			for attempt := 0; attempt < 50 && !reused; attempt++ {
				atLeast(1)
				time.Sleep(time.Millisecond)
				before := p.idle.Load()
				release := make(chan struct{})
				running := make(chan struct{})
				p.run(func() { close(running); <-release })
				<-running
				// A new goroutine would have left the idle ones waiting.
				reused = p.idle.Load() == before-1
				close(release)
				atLeast(before)
			}
			if !reused {
				t.Error("an idle worker never took the next task")
			}
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
			waitIdle(t, p, 3)
		}},
		{"an idle worker exits after its idle time", func(t *testing.T, p *workerPool) {
			p.idleFor = 10 * time.Millisecond
			p.run(func() {})
			waitIdle(t, p, 1)
			waitIdle(t, p, 0)
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
	}
}
