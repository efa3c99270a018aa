package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// tracker follows the deliveries of one scenario: how many the ingest
// answers promised, which have arrived (once each, whatever the retries),
// and when. Event keys are handed out in increasing order over the whole
// run, so a scenario's deliveries are those whose key is at least base.
type tracker struct {
	base uint64
	// width is how many deliveries one event causes, each to its own app
	// index in [0, width); 1 means one delivery per event, whatever its app.
	width int

	mu         sync.Mutex
	expected   int64
	seen       []uint64 // bit per (key-base)*width + app
	arrivals   []arrival
	duplicates int64
	stray      int64     // arrivals outside the scenario's keys or apps
	last       time.Time // of the latest arrival, as the harness saw it
	progress   chan struct{}
}

// newTracker follows deliveries of keys from base on, width per event.
func newTracker(base uint64, width int) *tracker {
	return &tracker{base: base, width: width, progress: make(chan struct{}), last: time.Now()}
}

// expect adds n deliveries that the ingest answers promised.
func (t *tracker) expect(n int) {
	t.mu.Lock()
	t.expected += int64(n)
	t.signalLocked()
	t.mu.Unlock()
}

// add takes a batch of arrivals from the receivers.
func (t *tracker) add(batch []arrival) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range batch {
		if a.key < t.base || t.width > 1 && int(a.app) >= t.width {
			t.stray++
			continue
		}
		i := a.key - t.base
		if t.width > 1 {
			i = i*uint64(t.width) + uint64(a.app)
		}
		w := int(i / 64)
		if w >= len(t.seen) {
			t.seen = slices.Grow(t.seen, w+1-len(t.seen))[:w+1]
		}
		if t.seen[w]&(1<<(i%64)) != 0 {
			t.duplicates++
			continue
		}
		t.seen[w] |= 1 << (i % 64)
		t.arrivals = append(t.arrivals, a)
	}
	t.last = time.Now()
	t.signalLocked()
}

// signalLocked wakes everyone waiting for progress.
func (t *tracker) signalLocked() {
	close(t.progress)
	t.progress = make(chan struct{})
}

// outstanding returns how many promised deliveries have not arrived, and a
// channel closed at the next change.
func (t *tracker) outstanding() (int64, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expected - int64(len(t.arrivals)), t.progress
}

// waitBelow waits until fewer than limit deliveries are outstanding, or
// until deadline: a load that ends need not wait for pimhook.
func (t *tracker) waitBelow(ctx context.Context, limit int, deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		n, changed := t.outstanding()
		if n < int64(limit) {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitAll waits until every promised delivery has arrived. It gives up when
// none arrived for stall: pimhook has stopped delivering them.
func (t *tracker) waitAll(ctx context.Context, stall time.Duration) error {
	tick := time.NewTicker(stall / 10)
	defer tick.Stop()
	begin := time.Now()
	for {
		t.mu.Lock()
		missing, last, changed := t.expected-int64(len(t.arrivals)), t.last, t.progress
		t.mu.Unlock()
		if missing <= 0 {
			return nil
		}
		if last.Before(begin) {
			last = begin
		}
		if time.Since(last) > stall {
			return fmt.Errorf("%d of %d deliveries did not arrive: none arrived for %v", missing, t.expected, stall)
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// snapshot returns the figures so far: a copy of the arrivals.
func (t *tracker) snapshot() trackerSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackerSnapshot{
		expected:   t.expected,
		arrivals:   slices.Clone(t.arrivals),
		duplicates: t.duplicates,
		stray:      t.stray,
	}
}

// trackerSnapshot is a tracker's state at one moment.
type trackerSnapshot struct {
	expected   int64
	arrivals   []arrival
	duplicates int64
	stray      int64
}

// lastArrival returns the time of the latest arrival.
func (s trackerSnapshot) lastArrival() time.Time {
	var last int64
	for _, a := range s.arrivals {
		last = max(last, a.arrived)
	}
	return time.Unix(0, last)
}

// latencies returns the latencies, sorted, of the arrivals whose event was
// sent in [from, to) and that keep accepts (nil: all).
func (s trackerSnapshot) latencies(from, to time.Time, keep func(arrival) bool) []time.Duration {
	var out []time.Duration
	for _, a := range s.arrivals {
		if a.sent < from.UnixNano() || a.sent >= to.UnixNano() || keep != nil && !keep(a) {
			continue
		}
		out = append(out, time.Duration(a.arrived-a.sent))
	}
	slices.Sort(out)
	return out
}

// percentile returns the q-quantile (0..1) of sorted, nearest rank; 0 for
// none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
