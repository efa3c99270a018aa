package postgres

import (
	"context"
	"sync"
	"sync/atomic"
)

// Ingest calls made at once share transactions. A call joins a queue; a
// few workers take what has queued and run it as one transaction, the
// calls in queue order. Alone, a call has a transaction of its own; under
// load, one commit, one WAL flush, and one turn at each app's queue lock
// serve many calls. That lock matters most: the deliveries of an app are
// enqueued one transaction at a time, from the lock to the commit, so one
// transaction per call would bound an app's intake by the commit latency.
//
// A call that fails on its own (decide returns an error, an event ID is
// reused) is left out of its transaction. Should the transaction fail, a
// batch of several calls runs again one call per transaction, so that the
// failure of one (a delivery ID that exists, say) is its alone.

// Batch limits.
const (
	// maxBatchEvents is how many events a transaction takes from the queue
	// at most; a call of more events has one of its own.
	maxBatchEvents = 2000
	// ingestAttempts is how many times a transaction that lost a race it
	// can retry (a deadlock, another transaction storing one of its event
	// IDs first) runs. decide is called again each time.
	ingestAttempts = 4
)

// ingestQueue is the queue of Ingest calls waiting for a worker.
type ingestQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	waiting []*ingestRequest
	closed  bool
	workers sync.WaitGroup
}

// startIngest starts n workers.
func (s *Store) startIngest(n int) {
	q := &s.ingestQ
	q.cond = sync.NewCond(&q.mu)
	for range n {
		q.workers.Go(func() {
			for {
				reqs, ok := q.take()
				if !ok {
					return
				}
				s.ingestBatch(reqs)
			}
		})
	}
}

// push queues r; after close it refuses it.
func (q *ingestQueue) push(r *ingestRequest) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errClosed
	}
	q.waiting = append(q.waiting, r)
	q.cond.Signal()
	return nil
}

// withdraw removes r from the queue, and reports whether it was still
// there: if not, a worker has it.
func (q *ingestQueue) withdraw(r *ingestRequest) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.waiting {
		if w == r {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			return true
		}
	}
	return false
}

// take waits for calls and returns those of the next transaction; it
// reports false once the queue is closed and empty.
func (q *ingestQueue) take() ([]*ingestRequest, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.waiting) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.waiting) == 0 {
		return nil, false
	}
	n, events := 1, len(q.waiting[0].events)
	for n < len(q.waiting) && events+len(q.waiting[n].events) <= maxBatchEvents {
		events += len(q.waiting[n].events)
		n++
	}
	reqs := make([]*ingestRequest, n)
	copy(reqs, q.waiting)
	q.waiting = append(q.waiting[:0], q.waiting[n:]...)
	if len(q.waiting) > 0 {
		q.cond.Signal() // another worker takes the rest
	}
	return reqs, true
}

// close refuses new calls and waits until the workers have run the queued
// ones.
func (q *ingestQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	q.workers.Wait()
}

// ingestBatch runs reqs, taken from the queue, and tells each how it went.
func (s *Store) ingestBatch(reqs []*ingestRequest) {
	live := make([]*ingestRequest, 0, len(reqs))
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	err := s.ingestTx(live)
	if err != nil && len(live) > 1 {
		for _, r := range live {
			if err := s.ingestTx([]*ingestRequest{r}); err != nil {
				r.err = err
			}
			close(r.done)
		}
		return
	}
	for _, r := range live {
		if err != nil {
			r.err = err
		}
		close(r.done)
	}
}

// ingestTx runs reqs in one transaction, again if it loses a race it can
// retry, and returns the error of the transaction. It is abandoned when the
// contexts of all of reqs have ended.
func (s *Store) ingestTx(reqs []*ingestRequest) error {
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(reqs)))
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}()
	for attempt := 1; ; attempt++ {
		err := s.runIngest(ctx, reqs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return reqs[0].ctx.Err() // every call's context has ended
		}
		if attempt == ingestAttempts || !retryable(err) {
			return err
		}
	}
}

// retryable reports whether a transaction that failed with err may succeed
// if run again.
func retryable(err error) bool {
	return isViolation(err, sqlDeadlock, "") || isViolation(err, sqlSerialization, "") ||
		isViolation(err, sqlUniqueViolation, "events_pkey")
}
