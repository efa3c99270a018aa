package filter

import (
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// watchInterval is how often the watchdog looks at the evaluations under
// way: their deadlines and the process's heap allocation.
const watchInterval = time.Millisecond

// Reasons an evaluation was stopped.
const (
	reasonNone int32 = iota
	reasonTimeout
	reasonMemory
)

// watchdog stops evaluations that run past their time or memory budget.
// Its goroutine runs only while evaluations are under way, and is started
// by the first one.
type watchdog struct {
	maxMemory uint64

	mu      sync.Mutex
	active  []*evaluation
	running bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	sample []metrics.Sample // the goroutine's own
}

func newWatchdog(maxMemory int64) *watchdog {
	return &watchdog{
		maxMemory: uint64(maxMemory),
		wake:      make(chan struct{}, 1),
		sample:    []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}},
	}
}

// add registers ev. Its memory baseline is taken at the watchdog's next
// look, so allocation in its first millisecond is not counted: the bound
// is coarse anyway.
func (w *watchdog) add(ev *evaluation) {
	w.mu.Lock()
	ev.idx = len(w.active)
	ev.baseline = 0
	w.active = append(w.active, ev)
	switch {
	case !w.running:
		w.running = true
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.run(w.stop, w.done)
	case len(w.active) == 1:
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// remove unregisters ev. Once it returns the watchdog no longer
// interrupts ev's runtime, which may then be cleared and reused.
func (w *watchdog) remove(ev *evaluation) {
	w.mu.Lock()
	last := len(w.active) - 1
	w.active[ev.idx] = w.active[last]
	w.active[ev.idx].idx = ev.idx
	w.active[last] = nil
	w.active = w.active[:last]
	w.mu.Unlock()
}

// setRuntime records the runtime ev runs JavaScript in, for interrupts.
// When spent is not zero, ev waited that long for a new runtime: its
// deadline moves by as much, and its memory baseline is taken again.
func (w *watchdog) setRuntime(ev *evaluation, rt *jsRuntime, spent time.Duration) {
	w.mu.Lock()
	ev.rt = rt
	if spent > 0 {
		ev.deadline = ev.deadline.Add(spent)
		ev.baseline = 0
		if time.Now().Before(ev.deadline) {
			ev.reason.Store(reasonNone)
		}
	}
	if r := ev.reason.Load(); r != reasonNone {
		rt.vm.Interrupt(r)
	}
	w.mu.Unlock()
}

func (w *watchdog) close() {
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return
	}
	w.running = false
	close(w.stop)
	done := w.done
	w.mu.Unlock()
	<-done
}

func (w *watchdog) run(stop, done chan struct{}) {
	defer close(done)
	for {
		w.mu.Lock()
		idle := len(w.active) == 0
		w.mu.Unlock()
		if idle {
			select {
			case <-w.wake:
			case <-stop:
				return
			}
		}
		t := time.NewTicker(watchInterval)
		busy := true
		for busy {
			select {
			case <-t.C:
				busy = w.check()
			case <-stop:
				t.Stop()
				return
			}
		}
		t.Stop()
	}
}

// check stops the evaluations past their budget and reports whether any
// remain.
func (w *watchdog) check() bool {
	metrics.Read(w.sample)
	allocs := w.sample[0].Value.Uint64()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.active {
		switch {
		case ev.baseline == 0:
			ev.baseline = allocs
		case allocs-ev.baseline > w.maxMemory:
			ev.stop(reasonMemory)
		}
		if now.After(ev.deadline) {
			ev.stop(reasonTimeout)
		}
	}
	return len(w.active) > 0
}

// stop marks ev as stopped for reason and interrupts its JavaScript. The
// caller holds w.mu.
func (ev *evaluation) stop(reason int32) {
	if ev.reason.CompareAndSwap(reasonNone, reason) && ev.rt != nil {
		ev.rt.vm.Interrupt(reason)
	}
}

// evaluation is one Match or Apply under way.
type evaluation struct {
	e        *Engine
	deadline time.Time
	idx      int
	baseline uint64       // guarded by the watchdog's mu
	rt       *jsRuntime   // set under the watchdog's mu, which interrupts it
	broken   bool         // rt must not be reused
	reason   atomic.Int32 // why the watchdog stopped it
	values   int          // JavaScript values conditions may still be given
}
