package h2

import (
	"sync"
	"time"
)

// Handlers run on a pool of worker goroutines shared by all connections:
// a request costs no goroutine creation, and a worker's stack, once grown by
// a handler, stays grown for the next one. A worker idle for workerIdle
// exits, so a burst leaves no lasting goroutines.
var (
	workerMu   sync.Mutex
	idleWorker []*worker // guarded by workerMu; LIFO keeps hot stacks busy
	workerIdle = 30 * time.Second
)

type worker struct{ work chan func() }

// goWork runs f on an idle worker, or on a new one.
func goWork(f func()) {
	workerMu.Lock()
	if n := len(idleWorker); n > 0 {
		w := idleWorker[n-1]
		idleWorker[n-1] = nil
		idleWorker = idleWorker[:n-1]
		workerMu.Unlock()
		w.work <- f
		return
	}
	workerMu.Unlock()
	w := &worker{work: make(chan func(), 1)}
	go w.run(f)
}

func (w *worker) run(f func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		f()
		f = nil
		workerMu.Lock()
		idleWorker = append(idleWorker, w)
		workerMu.Unlock()
		t.Reset(workerIdle)
		select {
		case f = <-w.work:
			continue
		case <-t.C:
		}
		workerMu.Lock()
		for i, x := range idleWorker {
			if x == w {
				idleWorker = append(idleWorker[:i], idleWorker[i+1:]...)
				workerMu.Unlock()
				return
			}
		}
		workerMu.Unlock()
		// Taken from the idle list just as the timer fired: work is coming.
		f = <-w.work
	}
}
