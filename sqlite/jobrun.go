package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/pimhook/pimhook"
)

// A staging batch goes to the writer once it holds flushRows rows or
// flushBytes bytes: big enough that a million products take a thousand
// write requests, small enough that ingest requests queued behind one wait
// a few milliseconds.
const (
	flushRows  = 1000
	flushBytes = 4 << 20
)

// previousSizes are the numbers of keys a Previous query takes, largest
// first, well below SQLite's limit of bound variables. A lookup of fewer
// keys repeats its last key up to the next size, so that a handful of
// statements, each prepared once, serve every call.
var previousSizes = []int{1000, 100, 10, 1}

// keyChunk is how many keys one write request stores.
const keyChunk = 10_000

// A run writes the keys it has buffered, sorted, once they number
// keyFlushKeys or hold keyFlushBytes bytes, and the rest before Removed and
// Commit. Keeping every key until the end would make a run's memory grow with
// its size (hundreds of MB for a large catalogue); this way a run holds at
// most two buffers of keys, one filling and one being written, whatever its
// size, and each buffer's inserts still fill index pages in key order. Keys
// staged twice in different buffers are refused by job_keys' primary key.
// Variables so that tests can force many buffers.
var (
	keyFlushKeys  = 64 << 10
	keyFlushBytes = 16 << 20
)

// errRunEnded answers calls made after Commit or Abort.
var errRunEnded = errors.New("the job run has ended")

// jobRunTx stages one run of a job as a product set. Put and StageDelivery
// buffer rows and hand them to the writer a batch at a time without waiting
// for it, so the caller prepares the next batch while the writer stores the
// last one; a batch's failure (a duplicate key, say) is returned by the next
// call. Commit and Abort end it, whatever their outcome; a failed Commit
// drops the staged run as Abort would, and Abort after it does nothing.
//
// Its methods may be called from several goroutines, but fn of Removed runs
// without any lock held so that it may stage deliveries.
type jobRunTx struct {
	s                       *Store
	companyID, jobID, runID string
	set                     int64 // the set this run stages
	current                 int64 // the job's state; 0 when it has none
	unlock                  func()

	mu         sync.Mutex
	ended      bool
	err        error // the first failure of a batch, returned from then on
	products   int64 // products staged so far
	deliveries int64 // deliveries staged so far
	apps       map[string]bool
	keys       []stagedKey   // of the products staged since the keys were last written
	keyBytes   int           // the bytes of the keys in keys
	keySpare   []stagedKey   // the buffer written last, reused once written
	peakKeys   int           // the most keys buffered at once, for tests
	pending    *stageBatch   // being filled
	inflight   *writeRequest // storing the batch before pending
	spare      *stageBatch   // that batch, reused once stored
}

// Previous returns the products of the job's state with these keys.
func (t *jobRunTx) Previous(ctx context.Context, keys []string) (map[string]*pimhook.JobProduct, error) {
	out := make(map[string]*pimhook.JobProduct, len(keys))
	if t.current == 0 {
		return out, nil
	}
	args := make([]any, 0, 1+min(len(keys), previousSizes[0]))
	for chunk := range slices.Chunk(keys, previousSizes[0]) {
		size := previousSizes[0]
		for _, n := range previousSizes {
			if n >= len(chunk) {
				size = n
			}
		}
		st, err := t.s.readStmt(ctx, `SELECT p.key, p.pos, p.hash, p.data FROM job_keys k JOIN job_products p ON p.id = k.id
			WHERE k.set_id = ? AND k.key IN (?`+strings.Repeat(", ?", size-1)+`)`)
		if err != nil {
			return nil, fmt.Errorf("previous products: %w", err)
		}
		args = append(args[:0], t.current)
		for i := range size {
			args = append(args, chunk[min(i, len(chunk)-1)])
		}
		if err := t.previous(ctx, st, args, out); err != nil {
			return nil, fmt.Errorf("previous products: %w", err)
		}
	}
	return out, nil
}

func (t *jobRunTx) previous(ctx context.Context, st *sql.Stmt, args []any, out map[string]*pimhook.JobProduct) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanJobProduct(rows)
		if err != nil {
			return err
		}
		out[p.Key] = p
	}
	return rows.Err()
}

func scanJobProduct(row scanner) (*pimhook.JobProduct, error) {
	var p pimhook.JobProduct
	var data []byte
	if err := row.Scan(&p.Key, &p.Pos, &p.Hash, &data); err != nil {
		return nil, err
	}
	p.Data = data
	return &p, nil
}

// Put stages products in the order given. They are copied: the caller may
// reuse them once Put returns.
func (t *jobRunTx) Put(ctx context.Context, ps []*pimhook.JobProduct) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(); err != nil {
		return fmt.Errorf("put products: %w", err)
	}
	lo, _ := setRange(t.set)
	for _, p := range ps {
		if t.products == 1<<setShift {
			return fmt.Errorf("put products: a run holds at most %d products", int64(1)<<setShift)
		}
		id := lo + t.products
		t.pending.addProduct(id, p)
		t.keys = append(t.keys, stagedKey{key: p.Key, id: id})
		t.keyBytes += len(p.Key)
		t.peakKeys = max(t.peakKeys, len(t.keys))
		t.products++
		if t.pending.full() {
			if err := t.flush(ctx); err != nil {
				return fmt.Errorf("put products: %w", err)
			}
		}
		if len(t.keys) >= keyFlushKeys || t.keyBytes >= keyFlushBytes {
			if err := t.writeStagedKeys(ctx); err != nil {
				return fmt.Errorf("put products: %w", err)
			}
		}
	}
	return nil
}

// Removed calls fn for the products of the job's state that the run has not
// staged, in the order they were staged by the run that made the state. It
// first stores everything staged, keys included, then reads the products
// from one query: the state's keys and the run's are walked side by side in
// key order to find the dropped ones, which are then read in staging order.
func (t *jobRunTx) Removed(ctx context.Context, fn func(*pimhook.JobProduct) error) error {
	t.mu.Lock()
	err := t.usable()
	if err == nil {
		err = t.store(ctx)
	}
	t.mu.Unlock()
	if err != nil {
		return fmt.Errorf("removed products: %w", err)
	}
	if t.current == 0 {
		return nil
	}
	rows, err := t.s.rdb.QueryContext(ctx, removedQuery, t.current, t.set)
	if err != nil {
		return fmt.Errorf("removed products: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanJobProduct(rows)
		if err != nil {
			return fmt.Errorf("removed products: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("removed products: %w", err)
	}
	return nil
}

// removedQuery finds the products of set ?1 whose key set ?2 lacks. The
// inner query reads only the key index of both sets, in key order; the
// outer one reads the rows it found in id order, which is staging order.
const removedQuery = `SELECT key, pos, hash, data FROM job_products WHERE id IN (
		SELECT o.id FROM job_keys o WHERE o.set_id = ?1 AND NOT EXISTS (
			SELECT 1 FROM job_keys n WHERE n.set_id = ?2 AND n.key = o.key))
	ORDER BY id`

// StageDelivery keeps a delivery of the run until Commit. It is copied: the
// caller may reuse it once StageDelivery returns. Its Seq is assigned by
// Commit, in the store only: d is not updated.
func (t *jobRunTx) StageDelivery(ctx context.Context, d *pimhook.Delivery) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(); err != nil {
		return fmt.Errorf("stage delivery: %w", err)
	}
	if d.ID == "" || d.AppID == "" {
		return fmt.Errorf("stage delivery: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
			"a delivery needs an ID and an app"))
	}
	if t.deliveries == 1<<setShift {
		return fmt.Errorf("stage delivery: a run holds at most %d deliveries", int64(1)<<setShift)
	}
	lo, _ := setRange(t.set)
	t.pending.addDelivery(lo+t.deliveries, d, t.companyID)
	t.deliveries++
	t.apps[d.AppID] = true
	if t.pending.full() {
		if err := t.flush(ctx); err != nil {
			return fmt.Errorf("stage delivery: %w", err)
		}
	}
	return nil
}

// Commit stores what is still staged, then in one write request records
// the run as accepted, appends the staged deliveries to their apps' queues
// in staging order and points the job at the run's set. The previous state
// is swept in the background. It fills run's empty ID, CompanyID and JobID
// and sets its Status.
func (t *jobRunTx) Commit(ctx context.Context, run *pimhook.JobRun) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return nil, fmt.Errorf("commit job run %s: %w", t.runID, errRunEnded)
	}
	rec := *run
	rec.ID, rec.CompanyID, rec.JobID = cmp.Or(rec.ID, t.runID), cmp.Or(rec.CompanyID, t.companyID), cmp.Or(rec.JobID, t.jobID)
	err := t.store(ctx)
	if err == nil && (rec.ID != t.runID || rec.CompanyID != t.companyID || rec.JobID != t.jobID) {
		err = pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun,
			"the record names run %q of job %q, not the run being committed", rec.ID, rec.JobID)
	}
	if err == nil {
		err = t.s.w.do(ctx, func(tx *wtx) error { return t.commit(tx, &rec) })
	}
	if err != nil {
		t.end(false)
		return nil, fmt.Errorf("commit job run %s: %w", t.runID, err)
	}
	rec.Status = pimhook.JobRunAccepted
	*run = rec
	apps := make([]string, 0, len(t.apps))
	for id := range t.apps {
		apps = append(apps, id)
	}
	slices.Sort(apps)
	t.end(true)
	return apps, nil
}

func (t *jobRunTx) commit(tx *wtx, run *pimhook.JobRun) error {
	current, err := jobState(tx, t.companyID, t.jobID)
	if err != nil {
		return err
	}
	if current != t.current {
		// Runs of a job are serialized; this is another process at work.
		return fmt.Errorf("the state of job %s changed during the run", t.jobID)
	}
	if err := insertJobRun(tx, run, pimhook.JobRunAccepted); err != nil {
		return err
	}
	lo, hi := setRange(t.set)
	if _, err := tx.exec(`INSERT INTO deliveries (id, `+queuedColumns+`, payload, payload_id)
		SELECT delivery_id, `+queuedColumns+`, x'', id FROM staged_deliveries WHERE id >= ? AND id < ? ORDER BY id`, lo, hi); err != nil {
		return fmt.Errorf("queue deliveries: %w", err)
	}
	if _, err := tx.exec(`DELETE FROM staged_deliveries WHERE id >= ? AND id < ?`, lo, hi); err != nil {
		return fmt.Errorf("drop staged deliveries: %w", err)
	}
	if _, err := tx.exec(`UPDATE job_sets SET committed = 1 WHERE id = ?`, t.set); err != nil {
		return fmt.Errorf("store job state: %w", err)
	}
	if _, err := tx.exec(`INSERT INTO jobs (company_id, job_id, current_set, run_id) VALUES (?, ?, ?, ?)
		ON CONFLICT (company_id, job_id) DO UPDATE SET current_set = excluded.current_set, run_id = excluded.run_id`,
		t.companyID, t.jobID, t.set, t.runID); err != nil {
		return fmt.Errorf("store job state: %w", err)
	}
	return nil
}

// queuedColumns are the columns of deliveries that Commit fills from
// staged_deliveries, which names the delivery's ID delivery_id. The payload
// stays where it was staged.
const queuedColumns = `company_id, app_id, webhook_id, event_id, event_name, status, attempts,
	next_attempt_at, last_status_code, last_error, created_at, updated_at, finished_at`

// jobState returns the job's current set, 0 if it has none.
func jobState(tx *wtx, companyID, jobID string) (int64, error) {
	var current int64
	err := tx.queryRow(`SELECT current_set FROM jobs WHERE company_id = ? AND job_id = ?`, companyID, jobID).Scan(&current)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read job state: %w", err)
	}
	return current, nil
}

// Abort drops the staged run. After Commit or Abort it does nothing.
func (t *jobRunTx) Abort(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return nil
	}
	_ = t.wait() // the batch's outcome no longer matters, only that it is over
	t.end(false)
	return nil
}

// end releases the job to its next run and sweeps the set that is no one's
// state now: the previous one after a commit, else the run's own.
func (t *jobRunTx) end(committed bool) {
	t.ended = true
	t.pending, t.spare = nil, nil
	t.keys, t.keySpare = nil, nil
	t.unlock()
	switch {
	case !committed:
		t.s.sweep(t.set)
	case t.current != 0:
		t.s.sweep(t.current)
	}
}

// usable returns why the run takes no more calls, if it does not.
func (t *jobRunTx) usable() error {
	if t.ended {
		return errRunEnded
	}
	return t.err
}

// flush hands the pending batch to the writer once the batch before it is
// stored, and returns without waiting for it.
func (t *jobRunTx) flush(ctx context.Context) error {
	if err := t.wait(); err != nil {
		return err
	}
	b := t.pending
	if b.empty() {
		return nil
	}
	if err := t.submit(ctx, b.write); err != nil {
		return err
	}
	next := t.spare
	if next == nil {
		next = &stageBatch{}
	}
	next.reset()
	t.pending, t.spare = next, b
	return nil
}

// submit hands fn to the writer once the request in flight is over, and
// returns without waiting for fn.
func (t *jobRunTx) submit(ctx context.Context, fn writeFunc) error {
	if err := t.wait(); err != nil {
		return err
	}
	r, err := t.s.w.submit(ctx, fn)
	if err != nil {
		t.err = err
		return err
	}
	t.inflight = r
	return nil
}

// wait waits until the batch in flight is stored.
func (t *jobRunTx) wait() error {
	if t.inflight != nil {
		if err := t.inflight.wait(); err != nil && t.err == nil {
			t.err = err
		}
		t.inflight = nil
	}
	return t.err
}

// store stores everything staged so far, keys included, and waits until
// it is stored.
func (t *jobRunTx) store(ctx context.Context) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	if err := t.writeStagedKeys(ctx); err != nil {
		return err
	}
	return t.wait()
}

// writeStagedKeys hands the buffered keys to the writer, sorted, a keyChunk
// per write request, and returns without waiting for the last request. Keys
// staged twice within the buffer are found by the sort, or, against keys of
// an earlier buffer, by the writer.
func (t *jobRunTx) writeStagedKeys(ctx context.Context) error {
	keys := t.keys
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, compareKeys)
	for i := 1; i < len(keys); i++ {
		if keys[i].key == keys[i-1].key {
			t.err = duplicateKey(keys[i].key, keys[i-1].id, keys[i].id)
			return t.err
		}
	}
	set := t.set
	for chunk := range slices.Chunk(keys, keyChunk) {
		if err := t.submit(ctx, func(tx *wtx) error { return writeKeys(tx, set, chunk) }); err != nil {
			return err
		}
	}
	// The request in flight reads keys: go on in the other buffer, whose
	// requests are over, since submit waited for them.
	next := t.keySpare
	clear(next) // let go of its keys
	t.keys, t.keySpare, t.keyBytes = next[:0], keys, 0
	return nil
}
