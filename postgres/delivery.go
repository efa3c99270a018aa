package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pimhook/pimhook"
)

// Delivery returns one delivery of a company.
func (s *Store) Delivery(ctx context.Context, companyID, id string) (*pimhook.Delivery, error) {
	d, err := scanDelivery(s.queryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE company_id = $1 AND id = $2`, companyID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, deliveryNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	return d, nil
}

// Attempts lists a delivery's attempts, first first; none for a delivery
// that has none or does not exist.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]*pimhook.Attempt, error) {
	as, err := queryAll(ctx, s, scanAttempt, `SELECT id, delivery_id, number, started_at, duration_ns, status_code,
		succeeded, error, response_body FROM attempts WHERE delivery_id = $1 ORDER BY number, started_at`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	return as, nil
}

func scanAttempt(row pgx.Row) (*pimhook.Attempt, error) {
	var (
		a        pimhook.Attempt
		duration int64
		body     []byte
	)
	if err := row.Scan(&a.ID, &a.DeliveryID, &a.Number, &a.StartedAt, &duration, &a.StatusCode, &a.Succeeded, &a.Error, &body); err != nil {
		return nil, err
	}
	a.Duration, a.ResponseBody = time.Duration(duration), string(body)
	return &a, nil
}

// Deliveries lists deliveries matching f, newest (highest Seq) first. The
// filter must name a company; Limit defaults to pimhook.DefaultDeliveryPage
// and is capped at pimhook.MaxDeliveryPage.
func (s *Store) Deliveries(ctx context.Context, f pimhook.DeliveryFilter) ([]*pimhook.Delivery, error) {
	if f.CompanyID == "" {
		return nil, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery, "deliveries are listed per company")
	}
	var w where
	w.add("company_id = ?", f.CompanyID)
	if f.WebhookID != "" {
		w.add("webhook_id = ?", f.WebhookID)
	}
	if f.AppID != "" {
		w.add("app_id = ?", f.AppID)
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if !f.Since.IsZero() {
		w.add("created_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("created_at < ?", f.Until)
	}
	if f.BeforeSeq > 0 {
		w.add("seq < ?", f.BeforeSeq)
	}
	limit := pimhook.PageLimit(f.Limit)
	query, args := w.query(`SELECT `+deliveryColumns+` FROM deliveries d`, ` ORDER BY seq DESC LIMIT ?`, limit)
	ds, err := queryAll(ctx, s, scanDelivery, query, args...)
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	return ds, nil
}

// where builds the conditions of a listing, numbering the placeholders.
type where struct {
	conds []string
	args  []any
}

// add adds a condition whose one "?" stands for arg.
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1))
}

// query returns head WHERE the conditions, then tail, whose "?" stands
// for last.
func (w *where) query(head, tail string, last any) (string, []any) {
	args := append(w.args, last)
	return head + ` WHERE ` + strings.Join(w.conds, " AND ") + strings.Replace(tail, "?", "$"+strconv.Itoa(len(args)), 1), args
}

// The queue reads, named so that TestQueuePlans checks their plans: both
// read the partial index of pending deliveries only.
const (
	// pendingAppsQuery is a loose index scan: it skips from one app to the
	// next through deliveries_pending, one index probe per app, instead of
	// reading every pending row (SELECT DISTINCT would read the whole
	// backlog). Its cost follows the number of apps with a backlog, not the
	// size of the backlog or of the history.
	pendingAppsQuery = `WITH RECURSIVE pending (app_id) AS (
			(SELECT app_id FROM deliveries WHERE status = 'pending' ORDER BY app_id LIMIT 1)
			UNION ALL
			SELECT (SELECT d.app_id FROM deliveries d WHERE d.status = 'pending' AND d.app_id > p.app_id
				ORDER BY d.app_id LIMIT 1)
			FROM pending p WHERE p.app_id IS NOT NULL
		)
		SELECT app_id FROM pending WHERE app_id IS NOT NULL`
	pendingDeliveriesQuery = `SELECT ` + deliveryColumns + ` FROM deliveries d
		WHERE app_id = $1 AND status = 'pending' AND seq > $2 ORDER BY seq LIMIT $3`
)

// PendingApps lists the apps that have pending deliveries, by ID.
func (s *Store) PendingApps(ctx context.Context) ([]string, error) {
	ids, err := queryAll(ctx, s, scanString, pendingAppsQuery)
	if err != nil {
		return nil, fmt.Errorf("pending apps: %w", err)
	}
	return ids, nil
}

// PendingDeliveries returns up to limit pending deliveries of an app with
// Seq above afterSeq, in queue order. The deliveries of an app commit in
// Seq order (see queueDeliveries), so a reader that moves afterSeq to the
// last Seq it saw misses none.
func (s *Store) PendingDeliveries(ctx context.Context, appID string, afterSeq int64, limit int) ([]*pimhook.Delivery, error) {
	if limit <= 0 {
		return []*pimhook.Delivery{}, nil
	}
	ds, err := queryAll(ctx, s, scanDelivery, pendingDeliveriesQuery, appID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	return ds, nil
}

// recordAttemptSQL stores a delivery's new state and, when $9 is set, its
// attempt, the failing time of its webhook, and, when $17 is set, the
// error-log entry of the failed attempt, in one statement, hence
// atomically. The attempt and the entry name the delivery's company, app,
// webhook and event as stored. A failed attempt starts the webhook's
// failing time unless it has one; a succeeded one clears it; the row is
// written only when that changes it.
//
// When $22 is set, it writes under the lease ($21, $19, $20): only
// while that lease is the app's current one and unexpired, on the
// database's clock. It locks the lease row, so a node that claims the app
// once the lease expired waits for the write to commit: a write under a
// lease is never seen after the next lease was granted.
//
// It returns how many deliveries it updated, and whether the delivery
// exists: 0 and true when the lease did not hold.
const recordAttemptSQL = `WITH l AS (
		SELECT 1 FROM app_leases
		WHERE $22::boolean AND app_id = $21 AND node = $19 AND token = $20 AND expires_at > now()
		FOR SHARE
	), d AS (
		UPDATE deliveries SET status = $2, attempts = $3, next_attempt_at = $4, last_status_code = $5,
			last_error = $6, updated_at = $7, finished_at = $8
		WHERE id = $1 AND (NOT $22 OR app_id = $21 AND EXISTS (SELECT 1 FROM l))
		RETURNING id, company_id, app_id, webhook_id, event_id
	), a AS (
		INSERT INTO attempts (id, delivery_id, company_id, app_id, webhook_id, number, started_at, duration_ns,
			status_code, succeeded, error, response_body)
		SELECT $10, d.id, d.company_id, d.app_id, d.webhook_id, $11, $12, $13, $14, $15, $16, $18 FROM d WHERE $9::boolean
	), w AS (
		UPDATE webhooks w SET failing_since = CASE WHEN $15 THEN NULL ELSE $12 END
		FROM d WHERE $9 AND w.company_id = d.company_id AND w.id = d.webhook_id
			AND (CASE WHEN $15 THEN w.failing_since IS NOT NULL ELSE w.failing_since IS NULL END)
	), e AS (
		INSERT INTO error_log (id, company_id, source, occurred_at, webhook_id, delivery_id, event_id, attempt,
			status_code, error, response_body)
		SELECT $17, d.company_id, 'webhook', $12, d.webhook_id, d.id, d.event_id, $11, $14, $16, $18
		FROM d WHERE $17 <> ''
	)
	SELECT count(*), EXISTS (SELECT 1 FROM deliveries WHERE id = $1) FROM d`

// RecordAttempt stores an attempt of d and d's new state in one statement,
// and for a failed attempt an entry of the error log; it keeps the failing
// time of d's webhook (see pimhook.OperateStore). A nil attempt updates d
// only, for a delivery that ended without a request. Under a lease
// (pimhook.WithLease), it writes nothing once the lease is not the app's
// current, unexpired one, and returns a CodeLeaseLost error.
func (s *Store) RecordAttempt(ctx context.Context, d *pimhook.Delivery, a *pimhook.Attempt) error {
	if a != nil && a.DeliveryID != "" && a.DeliveryID != d.ID {
		return fmt.Errorf("record attempt: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
			"attempt %q belongs to delivery %q, not %q", a.ID, a.DeliveryID, d.ID))
	}
	var (
		attempt = a != nil
		entryID string
		at      pimhook.Attempt
	)
	if attempt {
		at = *a
		if !a.Succeeded {
			entryID = pimhook.NewID(pimhook.PrefixErrorLog, a.StartedAt)
		}
	}
	lease, leased := pimhook.LeaseFrom(ctx)
	var (
		n     int
		found bool
	)
	err := s.queryRow(ctx, recordAttemptSQL,
		d.ID, string(d.Status), d.Attempts, d.NextAttemptAt, d.LastStatusCode, sanitize(d.LastError), d.UpdatedAt,
		timestamptz(d.FinishedAt),
		attempt, at.ID, at.Number, at.StartedAt, int64(at.Duration), at.StatusCode, at.Succeeded, sanitize(at.Error),
		entryID, []byte(at.ResponseBody), lease.Node, lease.Token, lease.AppID, leased).Scan(&n, &found)
	switch {
	case err != nil || n > 0:
	case !found:
		err = deliveryNotFound(d.ID)
	case leased:
		err = pimhook.Errorf(pimhook.KindConflict, pimhook.CodeLeaseLost,
			"the lease of node %q on app %q (token %d) ended", lease.Node, lease.AppID, lease.Token)
	}
	if err != nil {
		return fmt.Errorf("record attempt: %w", storeError(err))
	}
	return nil
}

// lockQueuesSQL locks the queues of apps, in the order given, creating
// the rows missing. As in lockEntitiesSQL, WHERE false locks a row without
// writing a new version of it.
const lockQueuesSQL = `INSERT INTO app_queues AS q (app_id) SELECT unnest($1::text[])
	ON CONFLICT (app_id) DO UPDATE SET app_id = q.app_id WHERE false`

// lockQueues locks the queues of apps, sorted and without repeats, until
// the transaction ends.
func lockQueues(ctx context.Context, q querier, apps []string) error {
	if _, err := q.Exec(ctx, lockQueuesSQL, apps); err != nil {
		return fmt.Errorf("lock app queues: %w", err)
	}
	return nil
}

// insertDeliveriesSQL stores deliveries, taking their seqs from
// delivery_seq in the order given. It is sent right after lockQueuesSQL has
// locked their apps' queues, in the transaction that commits them.
const insertDeliveriesSQL = `INSERT INTO deliveries (seq, id, company_id, app_id, webhook_id, event_id, event_name,
		payload, status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at, finished_at)
	SELECT nextval('delivery_seq'), u.id, u.company_id, u.app_id, u.webhook_id, u.event_id, u.event_name, u.payload,
		u.status, u.attempts, u.next_attempt_at, u.last_status_code, u.last_error, u.created_at, u.updated_at, u.finished_at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::text[],
		$9::int4[], $10::timestamptz[], $11::int4[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[])
		WITH ORDINALITY AS u(id, company_id, app_id, webhook_id, event_id, event_name, payload, status, attempts,
			next_attempt_at, last_status_code, last_error, created_at, updated_at, finished_at, ord)
	ORDER BY u.ord
	RETURNING id, seq`

// queueDeliveries queues on b the enqueue of deliveries, in order, and
// sets their seq once b has run.
//
// Seq order is commit order within an app because the seqs are taken
// while the transaction holds the app's row in app_queues, which it keeps
// until it commits: a transaction that enqueues to the same app later
// waits for the row, so it takes its seqs, and commits, after this one.
// The sequence alone would not do: two transactions could take 7 and 8
// and commit 8 first, and a dispatcher that had read 8 would skip 7.
// Locking the rows in app ID order keeps two transactions from
// deadlocking. The apps that get pending deliveries are signalled on
// workChannel when the transaction commits.
func queueDeliveries(b *pgx.Batch, ds []*placedDelivery) {
	perApp, waiting := map[string]bool{}, map[string]bool{}
	var c struct {
		id, companyID, appID, webhookID, eventID, eventName []string
		payload                                             [][]byte
		status                                              []string
		attempts                                            []int32
		next                                                []time.Time
		code                                                []int32
		lastError                                           []string
		created, updated                                    []time.Time
		finished                                            []pgtype.Timestamptz
	}
	byID := make(map[string]*placedDelivery, len(ds))
	for _, p := range ds {
		d := p.d
		perApp[d.AppID] = true
		if p.status == pimhook.DeliveryPending {
			waiting[d.AppID] = true
		}
		byID[d.ID] = p
		c.id, c.companyID, c.appID = append(c.id, d.ID), append(c.companyID, p.companyID), append(c.appID, d.AppID)
		c.webhookID, c.eventID, c.eventName = append(c.webhookID, d.WebhookID), append(c.eventID, d.EventID), append(c.eventName, d.EventName)
		c.payload, c.status = append(c.payload, orEmpty(d.Payload)), append(c.status, string(p.status))
		c.attempts, c.next = append(c.attempts, int32(d.Attempts)), append(c.next, d.NextAttemptAt)
		c.code, c.lastError = append(c.code, int32(d.LastStatusCode)), append(c.lastError, sanitize(d.LastError))
		c.created, c.updated = append(c.created, d.CreatedAt), append(c.updated, d.UpdatedAt)
		c.finished = append(c.finished, timestamptz(d.FinishedAt))
	}
	apps := make([]string, 0, len(perApp))
	for id := range perApp {
		apps = append(apps, id)
	}
	slices.Sort(apps)
	b.Queue(lockQueuesSQL, apps)
	b.Queue(insertDeliveriesSQL, c.id, c.companyID, c.appID, c.webhookID, c.eventID, c.eventName, c.payload, c.status,
		c.attempts, c.next, c.code, c.lastError, c.created, c.updated, c.finished).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				id  string
				seq int64
			)
			if err := rows.Scan(&id, &seq); err != nil {
				return err
			}
			if p := byID[id]; p != nil {
				p.seq = seq
			}
		}
		return rows.Err()
	})
	if len(waiting) > 0 {
		signal := make([]string, 0, len(waiting))
		for id := range waiting {
			signal = append(signal, id)
		}
		slices.Sort(signal)
		b.Queue(notifyWorkSQL, signal)
	}
}

// timestamptz returns a nullable timestamptz of t.
func timestamptz(t *time.Time) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: *t, Valid: true}
}

// deliveryColumns are read FROM deliveries d. A job delivery has its
// payload in delivery_payloads (see the migration).
const deliveryColumns = `d.seq, d.id, d.company_id, d.app_id, d.webhook_id, d.event_id, d.event_name,
	coalesce(d.payload, (SELECT p.payload FROM delivery_payloads p WHERE p.delivery_id = d.id)),
	d.status, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error, d.created_at, d.updated_at, d.finished_at`

func scanString(row pgx.Row) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}

func scanDelivery(row pgx.Row) (*pimhook.Delivery, error) {
	var (
		d       pimhook.Delivery
		payload []byte
	)
	if err := row.Scan(&d.Seq, &d.ID, &d.CompanyID, &d.AppID, &d.WebhookID, &d.EventID, &d.EventName, &payload,
		&d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastStatusCode, &d.LastError, &d.CreatedAt, &d.UpdatedAt,
		&d.FinishedAt); err != nil {
		return nil, err
	}
	d.Payload = payload
	return &d, nil
}

func deliveryNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeDeliveryNotFound, "delivery %q not found", id)
}
