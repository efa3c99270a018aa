package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// A run's staged rows go to the database a batch at a time, one COPY per
// batch: products once they number flushRows, deliveries once they number
// flushDeliveryRows, or either once they hold flushBytes bytes.
const (
	flushRows         = 1000
	flushDeliveryRows = 100
	flushBytes        = 4 << 20
)

// removedPage is how many removed products Removed reads per query.
const removedPage = 1000

// errRunEnded answers calls made after Commit or Abort.
var errRunEnded = errors.New("the job run has ended")

// jobRunTx stages one run of a job as a product set. Put and StageDelivery
// buffer rows and COPY them a batch at a time, each batch committed on its
// own: staged rows belong to the run's set, which is no job's state until
// Commit. The first failure (a duplicate key, say) is returned from then
// on. Commit and Abort end the run, whatever their outcome; a failed Commit
// drops the staged run as Abort would, and Abort after it does nothing.
//
// Its methods may be called from several goroutines, but fn of Removed runs
// without any lock or connection held so that it may stage deliveries.
type jobRunTx struct {
	s                       *Store
	companyID, jobID, runID string
	set                     int64 // the set this run stages
	current                 int64 // the job's state; 0 when it has none
	unlock                  func()

	mu          sync.Mutex
	ended       bool
	err         error // the first failure, returned from then on
	products    int64 // products staged so far; the next one's n
	deliveries  int64 // deliveries staged so far; the next one's n
	apps        map[string]bool
	pending     [][]any          // products not yet written
	pendingKeys map[string]int64 // their keys, with their n
	pendingSize int
	staged      [][]any // staged_deliveries rows not yet written
	payloads    [][]any // their delivery_payloads rows
	stagedSize  int
}

// Previous returns the products of the job's state with these keys.
func (t *jobRunTx) Previous(ctx context.Context, keys []string) (map[string]*pimhook.JobProduct, error) {
	out := make(map[string]*pimhook.JobProduct, len(keys))
	if t.current == 0 || len(keys) == 0 {
		return out, nil
	}
	ps, err := queryAll(ctx, t.s, scanJobProduct, previousQuery, t.current, keys)
	if err != nil {
		return nil, fmt.Errorf("previous products: %w", err)
	}
	for _, p := range ps {
		out[p.Key] = p
	}
	return out, nil
}

// previousQuery reads the products of set $1 with the keys $2, each
// through the key index: as key = ANY($2), PostgreSQL may plan a scan of
// the whole set, filtered, which a run repeats for every batch.
const previousQuery = `SELECT p.key, p.pos, p.hash, p.data
	FROM unnest($2::text[]) AS u(key), LATERAL (
		SELECT * FROM job_products p WHERE p.set_id = $1 AND p.key = u.key OFFSET 0) AS p`

func scanJobProduct(row pgx.Row) (*pimhook.JobProduct, error) {
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
	for _, p := range ps {
		n := t.products
		if first, ok := t.pendingKeys[p.Key]; ok {
			t.err = duplicateKey(p.Key, first, n)
			return fmt.Errorf("put products: %w", t.err)
		}
		t.pendingKeys[p.Key] = n
		t.pending = append(t.pending, []any{t.set, n, p.Key, p.Pos, slices.Clone(orEmpty(p.Hash)), slices.Clone(orEmpty(p.Data))})
		t.pendingSize += len(p.Key) + len(p.Hash) + len(p.Data)
		t.products++
		if len(t.pending) >= flushRows || t.pendingSize >= flushBytes {
			if err := t.flushProducts(ctx); err != nil {
				return fmt.Errorf("put products: %w", err)
			}
		}
	}
	return nil
}

// flushProducts writes the pending products. A key the set already has,
// from an earlier batch, is a duplicate: the unique key refuses the batch,
// and the row that holds it names the first product with that key.
func (t *jobRunTx) flushProducts(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	err := t.s.live()
	if err == nil {
		_, err = t.s.pool.CopyFrom(ctx, pgx.Identifier{"job_products"},
			[]string{"set_id", "n", "key", "pos", "hash", "data"}, pgx.CopyFromRows(t.pending))
	}
	if isViolation(err, sqlUniqueViolation, "job_products_set_id_key_key") {
		err = t.findDuplicate(ctx)
	}
	if err != nil {
		t.err = storeError(err)
		return t.err
	}
	clear(t.pending) // let go of the data
	t.pending, t.pendingSize = t.pending[:0], 0
	clear(t.pendingKeys)
	return nil
}

// findDuplicate returns the error of the first pending product whose key
// the set already has.
func (t *jobRunTx) findDuplicate(ctx context.Context) error {
	keys := make([]string, 0, len(t.pendingKeys))
	for k := range t.pendingKeys {
		keys = append(keys, k)
	}
	rows, err := queryAll(ctx, t.s, func(row pgx.Row) (stagedKey, error) {
		var k stagedKey
		err := row.Scan(&k.key, &k.n)
		return k, err
	}, `SELECT p.key, p.n FROM unnest($2::text[]) AS u(key), LATERAL (
		SELECT * FROM job_products p WHERE p.set_id = $1 AND p.key = u.key OFFSET 0) AS p`, t.set, keys)
	if err != nil {
		return fmt.Errorf("find the duplicate key: %w", err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("a key of the batch is staged twice, but none is found")
	}
	again := slices.MinFunc(rows, func(a, b stagedKey) int { return cmp.Compare(t.pendingKeys[a.key], t.pendingKeys[b.key]) })
	return duplicateKey(again.key, again.n, t.pendingKeys[again.key])
}

// stagedKey is a staged product's key and staging order.
type stagedKey struct {
	key string
	n   int64
}

// duplicateKey returns the error of key staged twice, as products first
// and again (staging orders from 0), whichever order they are given in.
func duplicateKey(key string, first, again int64) error {
	first, again = min(first, again), max(first, again)
	return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeDuplicateKey,
		"product key %q appears again at product %d (first at product %d)", key, again+1, first+1)
}

// Removed calls fn for the products of the job's state that the run has not
// staged, in the order they were staged by the run that made the state. It
// first writes everything staged, then reads the removed products a page
// at a time, in staging order: the state's products are read through the
// primary key, each looked up in the run's by key.
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
	for after := int64(-1); ; {
		var page []*pimhook.JobProduct
		page, after, err = t.removedPage(ctx, after)
		if err != nil {
			return fmt.Errorf("removed products: %w", err)
		}
		for _, p := range page {
			if err := fn(p); err != nil {
				return err
			}
		}
		if len(page) < removedPage {
			return nil
		}
	}
}

// removedQuery reads a page of the products of set $1 that set $2 lacks,
// those after the $3rd staged, in staging order: the state's products are
// read through the primary key, and each is looked up in the run's by key.
// OFFSET 0 keeps the NOT EXISTS a lookup per product: as an anti-join,
// PostgreSQL could hash the whole of the run's products first.
const removedQuery = `SELECT o.n, o.key, o.pos, o.hash, o.data FROM job_products o
	WHERE o.set_id = $1 AND o.n > $3
		AND NOT EXISTS (SELECT 1 FROM job_products x WHERE x.set_id = $2 AND x.key = o.key OFFSET 0)
	ORDER BY o.n LIMIT $4`

// removedPage reads the page of removed products after the product staged
// after-th, and returns the staging order of its last one.
func (t *jobRunTx) removedPage(ctx context.Context, after int64) ([]*pimhook.JobProduct, int64, error) {
	page, err := queryAll(ctx, t.s, func(row pgx.Row) (*pimhook.JobProduct, error) {
		var (
			p    pimhook.JobProduct
			data []byte
		)
		if err := row.Scan(&after, &p.Key, &p.Pos, &p.Hash, &data); err != nil {
			return nil, err
		}
		p.Data = data
		return &p, nil
	}, removedQuery, t.current, t.set, after, removedPage)
	return page, after, err
}

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
	status := d.Status
	if status == "" {
		status = pimhook.DeliveryPending
	}
	t.staged = append(t.staged, []any{t.set, t.deliveries, d.ID, t.companyID, d.AppID, d.WebhookID, d.EventID,
		d.EventName, string(status), int32(d.Attempts), d.NextAttemptAt, int32(d.LastStatusCode), sanitize(d.LastError),
		d.CreatedAt, d.UpdatedAt, timestamptz(d.FinishedAt)})
	t.payloads = append(t.payloads, []any{d.ID, slices.Clone(orEmpty(d.Payload))})
	t.stagedSize += len(d.Payload)
	t.deliveries++
	t.apps[d.AppID] = true
	if len(t.staged) >= flushDeliveryRows || t.stagedSize >= flushBytes {
		if err := t.flushDeliveries(ctx); err != nil {
			return fmt.Errorf("stage delivery: %w", err)
		}
	}
	return nil
}

// flushDeliveries writes the pending staged deliveries and their payloads
// in one transaction, so that a payload is never left without the row that
// lets a sweep find it.
func (t *jobRunTx) flushDeliveries(ctx context.Context) error {
	if len(t.staged) == 0 {
		return nil
	}
	err := t.s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"delivery_payloads"}, []string{"delivery_id", "payload"},
			pgx.CopyFromRows(t.payloads)); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"staged_deliveries"}, []string{"set_id", "n", "delivery_id",
			"company_id", "app_id", "webhook_id", "event_id", "event_name", "status", "attempts", "next_attempt_at",
			"last_status_code", "last_error", "created_at", "updated_at", "finished_at"}, pgx.CopyFromRows(t.staged))
		return err
	})
	if err != nil {
		t.err = storeError(err)
		return t.err
	}
	clear(t.staged)
	clear(t.payloads)
	t.staged, t.payloads, t.stagedSize = t.staged[:0], t.payloads[:0], 0
	return nil
}

// store writes everything staged so far.
func (t *jobRunTx) store(ctx context.Context) error {
	if err := t.flushProducts(ctx); err != nil {
		return err
	}
	return t.flushDeliveries(ctx)
}

// Commit writes what is still staged, then in one transaction records the
// run as accepted, points the job at the run's set, and appends the staged
// deliveries to their apps' queues in staging order. The previous state is
// swept in the background. It fills run's empty ID, CompanyID and JobID and
// sets its Status.
func (t *jobRunTx) Commit(ctx context.Context, run *pimhook.JobRun) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return nil, fmt.Errorf("commit job run %s: %w", t.runID, errRunEnded)
	}
	rec := *run
	rec.ID, rec.CompanyID, rec.JobID = cmp.Or(rec.ID, t.runID), cmp.Or(rec.CompanyID, t.companyID), cmp.Or(rec.JobID, t.jobID)
	err := t.usable()
	if err == nil {
		err = t.store(ctx)
	}
	if err == nil && (rec.ID != t.runID || rec.CompanyID != t.companyID || rec.JobID != t.jobID) {
		err = pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun,
			"the record names run %q of job %q, not the run being committed", rec.ID, rec.JobID)
	}
	apps := make([]string, 0, len(t.apps))
	for id := range t.apps {
		apps = append(apps, id)
	}
	slices.Sort(apps)
	if err == nil {
		err = t.s.inTx(ctx, func(tx pgx.Tx) error { return t.commit(ctx, tx, &rec, apps) })
	}
	if err != nil {
		t.end(false)
		return nil, fmt.Errorf("commit job run %s: %w", t.runID, storeError(err))
	}
	rec.Status = pimhook.JobRunAccepted
	*run = rec
	t.end(true)
	return apps, nil
}

// queueStagedSQL appends the staged deliveries of set $1 to their apps'
// queues, taking their seqs in staging order: the subquery, which OFFSET 0
// keeps from being merged into the outer query, hands its rows over in
// order, and nextval runs on each as it comes.
const queueStagedSQL = `INSERT INTO deliveries (seq, id, company_id, app_id, webhook_id, event_id, event_name, payload,
		status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at, finished_at)
	SELECT nextval('delivery_seq'), s.delivery_id, s.company_id, s.app_id, s.webhook_id, s.event_id, s.event_name, NULL,
		s.status, s.attempts, s.next_attempt_at, s.last_status_code, s.last_error, s.created_at, s.updated_at, s.finished_at
	FROM (SELECT * FROM staged_deliveries WHERE set_id = $1 ORDER BY n OFFSET 0) AS s`

func (t *jobRunTx) commit(ctx context.Context, tx pgx.Tx, run *pimhook.JobRun, apps []string) error {
	current, err := jobState(ctx, tx, t.companyID, t.jobID, "FOR UPDATE")
	if err != nil {
		return err
	}
	if current != t.current {
		// Runs of a job are serialized: this one lost its lock, and another
		// run committed meanwhile.
		return fmt.Errorf("the state of job %s changed during the run", t.jobID)
	}
	if err := insertJobRun(ctx, tx, run, pimhook.JobRunAccepted); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO jobs (company_id, job_id, current_set, run_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (company_id, job_id) DO UPDATE SET current_set = excluded.current_set, run_id = excluded.run_id`,
		t.companyID, t.jobID, t.set, t.runID); err != nil {
		return fmt.Errorf("store job state: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE job_sets SET state = CASE WHEN id = $1 THEN 'current' ELSE 'dead' END
		WHERE id IN ($1, $2)`, t.set, t.current); err != nil {
		return fmt.Errorf("store job state: %w", err)
	}
	if len(apps) == 0 {
		return nil
	}
	// The apps' queues are locked last, so that they are held no longer
	// than the enqueue and the commit take.
	if err := lockQueues(ctx, tx, apps); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, queueStagedSQL, t.set); err != nil {
		return fmt.Errorf("queue deliveries: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('`+workChannel+`', app_id) FROM (
		SELECT DISTINCT app_id FROM staged_deliveries WHERE set_id = $1 AND status = 'pending' ORDER BY app_id) AS a`,
		t.set); err != nil {
		return fmt.Errorf("signal work: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM staged_deliveries WHERE set_id = $1`, t.set); err != nil {
		return fmt.Errorf("drop staged deliveries: %w", err)
	}
	return nil
}

// Abort drops the staged run. After Commit or Abort it does nothing.
func (t *jobRunTx) Abort(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return nil
	}
	t.end(false)
	return nil
}

// end marks the set that is no one's state now dead (the previous one after
// a commit, else the run's own), releases the job to its next run, and
// sweeps that set. Should marking the run's own set fail, the job's next
// run finds it still staging and marks it then.
func (t *jobRunTx) end(committed bool) {
	t.ended = true
	t.pending, t.staged, t.payloads, t.pendingKeys = nil, nil, nil, nil
	dead := t.current
	if !committed {
		dead = t.set
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := t.s.exec(ctx, `UPDATE job_sets SET state = 'dead' WHERE id = $1 AND state = 'staging'`, t.set)
		cancel()
		if err != nil && !errors.Is(err, errClosed) {
			t.s.log.Warn("drop job product set", attrSet, t.set, attrError, err)
		}
	}
	t.unlock()
	if dead != 0 {
		t.s.sweep(dead)
	}
}

// usable returns why the run takes no more calls, if it does not.
func (t *jobRunTx) usable() error {
	if t.ended {
		return errRunEnded
	}
	return t.err
}
