package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlitedriver "modernc.org/sqlite"
)

// writeFunc is the work of one write request. It runs in the writer
// goroutine, inside the batch's transaction and its own savepoint: an error
// undoes its writes and no one else's. It must not call the Store's write
// methods, which would wait for the writer it is running on.
//
// A bare request (writeOpts.bare) runs without a savepoint, which saves
// SQLite copying every page it touches into the savepoint's journal. Its fn
// must return its own errors before its first write: an error after a
// write, or any error of SQLite's, aborts the whole batch.
type writeFunc func(tx *wtx) error

// wtx is the batch transaction as a write request sees it. Its statements
// run under the writer's context, never cancelled, because interrupting a
// statement would roll back the whole batch. Each query is prepared once
// and reused by every later batch, so queries must be constant text, with
// their variable parts as arguments.
type wtx struct {
	ctx   context.Context
	tx    *sql.Tx
	w     *writer
	stmts map[string]*sql.Stmt // bound to tx
	wrote bool                 // the current request may have written
}

// stmt returns query prepared for this transaction.
func (t *wtx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if ps, ok := t.w.stmts[query]; ok {
		st = t.tx.StmtContext(t.ctx, ps)
	} else {
		// The connection is busy with this transaction: prepare it here
		// for now, and for good once the batch is over.
		var err error
		if st, err = t.tx.PrepareContext(t.ctx, query); err != nil {
			return nil, err
		}
		t.w.unprepared = append(t.w.unprepared, query)
	}
	t.stmts[query] = st
	return st, nil
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	t.wrote = true
	return st.ExecContext(t.ctx, args...)
}

// execCount runs a statement and returns how many rows it changed. One
// that changed none counts as no write.
func (t *wtx) execCount(query string, args ...any) (int64, error) {
	st, err := t.stmt(query)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(t.ctx, args...)
	if err != nil {
		t.wrote = true
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n > 0 {
		t.wrote = true
	}
	return n, err
}

// queryRow runs a query that returns at most one row. A query that is not
// a SELECT (an UPDATE … RETURNING) counts as a write unless it matched no
// row.
func (t *wtx) queryRow(query string, args ...any) scanner {
	st, err := t.stmt(query)
	if err != nil {
		return errScanner{err}
	}
	row := st.QueryRowContext(t.ctx, args...)
	if strings.HasPrefix(strings.TrimLeft(query, " \t\n"), "SELECT") {
		return row
	}
	return writtenRow{row, t}
}

// writtenRow is the row of a statement that writes.
type writtenRow struct {
	row *sql.Row
	tx  *wtx
}

// Scan scans the row, noting the write unless there was no row.
func (r writtenRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if !errors.Is(err, sql.ErrNoRows) {
		r.tx.wrote = true
	}
	return err
}

// errScanner is a row that failed before it was read.
type errScanner struct{ err error }

// Scan returns the error.
func (e errScanner) Scan(...any) error { return e.err }

// writeRequest is one queued writeFunc and where its outcome goes.
type writeRequest struct {
	ctx context.Context
	fn  writeFunc
	writeOpts
	done chan error // buffered: the writer never waits for the caller
	w    *writer
}

// writeOpts are a request's options.
type writeOpts struct {
	bare bool // runs without a savepoint (see writeFunc)
	// lazy is a request nobody waits for until it calls wait: a batch of
	// nothing else may wait up to the writer's delay for more requests to
	// share its commit.
	lazy bool
	// change is what the request did to the app queues, applied to the
	// queue cache once it has committed. A request without one makes the
	// cache forget every app.
	change queueChange
}

// wait returns the request's outcome. It does not give up when the
// caller's context ends: a request the writer has picked up runs to the end,
// and its caller learns the truth (the writer skips it if the context ended
// while it was still queued).
func (r *writeRequest) wait() error {
	if !r.lazy {
		return <-r.done
	}
	select {
	case err := <-r.done:
		return err
	default:
	}
	// Someone waits now: the writer holds no batch back until r is done.
	r.w.waiting.Add(1)
	defer r.w.waiting.Add(-1)
	r.w.poke()
	return <-r.done
}

// writer owns the write connection. One goroutine takes a request, drains
// whatever else is queued (up to maxBatch), runs them all in one
// transaction and commits once, so concurrent writers share one fsync.
//
// A batch of nothing but lazy requests waits up to delay for more, so that
// the records of one app's deliveries, sent one after the other, share a
// commit instead of paying one each. The wait ends early when a request
// that is not lazy arrives, when someone waits for a lazy one, when the
// queue fills, or when the writer closes.
type writer struct {
	db        *sql.DB
	maxBatch  int
	delay     time.Duration
	waiting   atomic.Int64  // callers waiting for lazy requests
	hurry     chan struct{} // a token: see gather
	committed func()        // called after each commit
	queues    *queueCache   // kept after each commit
	reqs      chan *writeRequest
	stopped   chan struct{}

	mu     sync.RWMutex // held for reading while sending on reqs, for writing while closing it
	closed bool

	// Owned by the writer goroutine.
	stmts      map[string]*sql.Stmt // prepared on db's one connection
	unprepared []string             // queries to add to stmts after this batch

	batches  atomic.Int64 // transactions committed or attempted
	requests atomic.Int64 // requests run
}

func startWriter(db *sql.DB, maxBatch int, delay time.Duration, committed func(), queues *queueCache) *writer {
	w := &writer{
		db:        db,
		maxBatch:  maxBatch,
		delay:     delay,
		hurry:     make(chan struct{}, 1),
		committed: committed,
		queues:    queues,
		reqs:      make(chan *writeRequest, maxBatch),
		stopped:   make(chan struct{}),
		stmts:     map[string]*sql.Stmt{},
	}
	go w.run()
	return w
}

// do runs fn in the next batch and returns its outcome once the batch has
// committed. If ctx ends while the request is queued, the request is dropped
// and ctx's error returned; once picked up it runs and may commit even if
// ctx ends meanwhile, and do then reports what happened.
func (w *writer) do(ctx context.Context, fn writeFunc) error {
	return w.doWith(ctx, fn, writeOpts{})
}

// doWith is do with options.
func (w *writer) doWith(ctx context.Context, fn writeFunc, o writeOpts) error {
	r, err := w.submitWith(ctx, fn, o)
	if err != nil {
		return err
	}
	return r.wait()
}

// submit queues fn without waiting for its outcome.
func (w *writer) submit(ctx context.Context, fn writeFunc) (*writeRequest, error) {
	return w.submitWith(ctx, fn, writeOpts{})
}

// submitWith is submit with options.
func (w *writer) submitWith(ctx context.Context, fn writeFunc, o writeOpts) (*writeRequest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &writeRequest{ctx: ctx, fn: fn, writeOpts: o, done: make(chan error, 1), w: w}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return nil, errClosed
	}
	select {
	case w.reqs <- r:
	default:
		// The queue is full: a batch waiting for company has it.
		w.poke()
		select {
		case w.reqs <- r:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !r.lazy {
		w.poke()
	}
	return r, nil
}

// close stops taking requests and returns once the queued ones are done. It
// reports whether this call was the one that closed the writer.
func (w *writer) close() bool {
	w.mu.Lock()
	first := !w.closed
	if first {
		w.closed = true
		close(w.reqs)
		w.poke()
	}
	w.mu.Unlock()
	<-w.stopped
	return first
}

func (w *writer) isClosed() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closed
}

func (w *writer) run() {
	defer close(w.stopped)
	defer func() {
		for _, st := range w.stmts {
			st.Close()
		}
	}()
	batch := make([]*writeRequest, 0, w.maxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for r := range w.reqs {
		batch = w.gather(append(batch[:0], r), linger)
		w.commit(batch)
		clear(batch) // let the requests and their closures go
		w.prepare()
	}
}

// gather adds to batch, which holds one request, whatever else is queued,
// up to maxBatch. While the batch holds only lazy requests and nobody waits
// for one, it waits once, up to delay, for more: lazy requests do not end
// the wait, others do (submitWith pokes hurry for them, and for any request
// that finds the queue full), and so does a caller starting to wait for a
// lazy request, or close.
func (w *writer) gather(batch []*writeRequest, linger *time.Timer) []*writeRequest {
	batch, lazy, open := w.take(batch, batch[0].lazy && w.delay > 0)
	if !open || !lazy || len(batch) == w.maxBatch {
		return batch
	}
	// A token left from before is stale, unless its caller still waits,
	// which the count tells, or its request came since the take, which a
	// second take finds (or finds the queue closed).
	select {
	case <-w.hurry:
	default:
	}
	if w.waiting.Load() > 0 {
		return batch
	}
	n := len(batch)
	if batch, lazy, open = w.take(batch, lazy); !open || !lazy || len(batch) > n {
		return batch
	}
	linger.Reset(w.delay)
	select {
	case <-w.hurry:
	case <-linger.C:
	}
	linger.Stop()
	batch, _, _ = w.take(batch, false)
	return batch
}

// take moves what is queued into batch, up to maxBatch, without waiting. It
// returns batch, whether batch holds only lazy requests (lazy says whether
// it did before), and whether the queue is still open.
func (w *writer) take(batch []*writeRequest, lazy bool) ([]*writeRequest, bool, bool) {
	for len(batch) < w.maxBatch {
		select {
		case r, ok := <-w.reqs:
			if !ok {
				return batch, lazy, false
			}
			batch = append(batch, r)
			lazy = lazy && r.lazy
		default:
			return batch, lazy, true
		}
	}
	return batch, lazy, true
}

// poke ends a wait of gather.
func (w *writer) poke() {
	select {
	case w.hurry <- struct{}{}:
	default:
	}
}

// prepare prepares the queries the last batch was the first to use. One
// that fails is prepared again by the next batch that needs it.
func (w *writer) prepare() {
	for _, q := range w.unprepared {
		if _, ok := w.stmts[q]; ok {
			continue
		}
		if st, err := w.db.PrepareContext(context.Background(), q); err == nil {
			w.stmts[q] = st
		}
	}
	w.unprepared = w.unprepared[:0]
}

// commit runs batch in one transaction and answers every request after the
// single COMMIT. A request alone in its batch needs no savepoint: the
// transaction is its own, and rolling it back undoes its writes.
func (w *writer) commit(batch []*writeRequest) {
	errs := make([]error, len(batch))
	ran := make([]bool, len(batch))
	live := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		ran[i] = true
		live++
	}
	defer func() {
		for i, r := range batch {
			r.done <- errs[i]
		}
	}()
	if live == 0 {
		return
	}
	w.batches.Add(1)
	w.requests.Add(int64(live))

	ctx := context.Background()
	fail := func(err error) {
		for i := range batch {
			if ran[i] && errs[i] == nil {
				errs[i] = err
			}
		}
	}
	sqlTx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin write batch: %w", err))
		return
	}
	tx := &wtx{ctx: ctx, tx: sqlTx, w: w, stmts: map[string]*sql.Stmt{}}
	for i, r := range batch {
		if !ran[i] {
			continue
		}
		if live == 1 {
			if errs[i] = runSafe(tx, r.fn); errs[i] != nil {
				sqlTx.Rollback()
				return
			}
			continue
		}
		var broken error
		if r.bare {
			errs[i], broken = applyBare(tx, r.fn)
		} else {
			errs[i], broken = apply(tx, r.fn)
		}
		if broken != nil {
			// The transaction is gone or in an unknown state: nothing in
			// this batch can be trusted to commit.
			sqlTx.Rollback()
			fail(fmt.Errorf("write batch aborted: %w", broken))
			return
		}
	}
	if err := sqlTx.Commit(); err != nil {
		w.queues.invalidate()
		fail(fmt.Errorf("commit write batch: %w", err))
		return
	}
	changes := make([]queueChange, 0, live)
	for i, r := range batch {
		if ran[i] && errs[i] == nil {
			changes = append(changes, r.change)
		}
	}
	w.queues.apply(changes)
	w.committed()
}

// apply runs fn inside a savepoint. err is fn's own failure, after which its
// writes are undone; broken is a failure of the transaction itself.
func apply(tx *wtx, fn writeFunc) (err, broken error) {
	if _, err := tx.exec("SAVEPOINT request"); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	err = runSafe(tx, fn)
	if err != nil {
		if _, rerr := tx.exec("ROLLBACK TO request"); rerr != nil {
			return err, fmt.Errorf("roll back to savepoint: %w", rerr)
		}
	}
	if _, rerr := tx.exec("RELEASE request"); rerr != nil {
		return err, fmt.Errorf("release savepoint: %w", rerr)
	}
	return err, nil
}

// applyBare runs fn without a savepoint. An error after fn may have written,
// or one of SQLite's, breaks the transaction: it cannot be undone alone.
func applyBare(tx *wtx, fn writeFunc) (err, broken error) {
	tx.wrote = false
	err = runSafe(tx, fn)
	var serr *sqlitedriver.Error
	if err != nil && (tx.wrote || errors.As(err, &serr)) {
		return err, fmt.Errorf("request failed after writing: %w", err)
	}
	return err, nil
}

// runSafe runs fn, turning a panic (in a caller's Decider, say) into the
// request's error so that the writer and the other requests carry on.
func runSafe(tx *wtx, fn writeFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write request panicked: %v", p)
		}
	}()
	return fn(tx)
}
