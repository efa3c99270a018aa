package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pimhook/pimhook"
)

// Delivery returns one delivery of a company.
func (s *Store) Delivery(ctx context.Context, companyID, id string) (*pimhook.Delivery, error) {
	d, err := scanDelivery(s.rdb.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE company_id = ? AND id = ?`, companyID, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	as, err := queryAll(ctx, s.rdb, scanAttempt, `SELECT id, delivery_id, number, started_at, duration_ns, status_code, succeeded, error, response_body
		FROM attempts WHERE delivery_id = ? ORDER BY number, started_at`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	return as, nil
}

func scanAttempt(row scanner) (*pimhook.Attempt, error) {
	var (
		a                 pimhook.Attempt
		started, duration int64
	)
	if err := row.Scan(&a.ID, &a.DeliveryID, &a.Number, &started, &duration, &a.StatusCode, &a.Succeeded, &a.Error, &a.ResponseBody); err != nil {
		return nil, err
	}
	a.StartedAt, a.Duration = fromUnixNano(started), time.Duration(duration)
	return &a, nil
}

// Deliveries lists deliveries matching f, newest (highest Seq) first. The
// filter must name a company; Limit defaults to pimhook.DefaultDeliveryPage
// and is capped at pimhook.MaxDeliveryPage.
func (s *Store) Deliveries(ctx context.Context, f pimhook.DeliveryFilter) ([]*pimhook.Delivery, error) {
	if f.CompanyID == "" {
		return nil, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery, "deliveries are listed per company")
	}
	where := []string{"company_id = ?"}
	args := []any{f.CompanyID}
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.WebhookID != "" {
		add("webhook_id = ?", f.WebhookID)
	}
	if f.AppID != "" {
		add("app_id = ?", f.AppID)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("created_at < ?", f.Until.UnixNano())
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	limit := pimhook.PageLimit(f.Limit)
	args = append(args, limit)
	ds, err := s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	return ds, nil
}

// The queue reads, named so that TestQueuePlans checks the plans of the
// queries that run.
const (
	pendingAppsQuery = `WITH RECURSIVE pending (app_id) AS (
			SELECT MIN(app_id) FROM deliveries WHERE status = 'pending'
			UNION ALL
			SELECT (SELECT MIN(d.app_id) FROM deliveries d WHERE d.status = 'pending' AND d.app_id > p.app_id)
			FROM pending p WHERE p.app_id IS NOT NULL
		)
		SELECT app_id FROM pending WHERE app_id IS NOT NULL`
	pendingDeliveriesQuery = `SELECT ` + deliveryColumns + ` FROM deliveries
		WHERE app_id = ? AND status = 'pending' AND seq > ? ORDER BY seq LIMIT ?`
)

// PendingApps lists the apps that have pending deliveries, by ID.
func (s *Store) PendingApps(ctx context.Context) ([]string, error) {
	// Skip from one app to the next through the pending index instead of
	// reading every pending row: the cost follows the number of apps, not
	// the size of the backlog.
	ids, err := queryAll(ctx, s.rdb, scanString, pendingAppsQuery)
	if err != nil {
		return nil, fmt.Errorf("pending apps: %w", err)
	}
	return ids, nil
}

// PendingDeliveries returns up to limit pending deliveries of an app with
// Seq above afterSeq, in queue order.
func (s *Store) PendingDeliveries(ctx context.Context, appID string, afterSeq int64, limit int) ([]*pimhook.Delivery, error) {
	if limit <= 0 {
		return []*pimhook.Delivery{}, nil
	}
	if ds, ok := s.queues.read(appID, afterSeq, limit); ok {
		return ds, nil
	}
	epoch := s.queues.now()
	// The queue head is read before every few attempts: parsing its SQL
	// each time cost a fifth of the dispatcher's CPU.
	stmt, err := s.readStmt(ctx, pendingDeliveriesQuery)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	ds, err := queryAllStmt(ctx, stmt, scanDelivery, appID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	if len(ds) < limit {
		s.queues.fill(appID, afterSeq, ds, epoch)
	}
	return ds, nil
}

// RecordAttempt stores an attempt of d and d's new state in one write, with
// the failing time of d's webhook, and for a failed attempt an entry of the
// error log. A nil attempt updates d only, for a delivery that ended
// without a request. It ignores a lease in ctx (pimhook.WithLease): one
// process serves a SQLite store, so no other node can have taken the app.
func (s *Store) RecordAttempt(ctx context.Context, d *pimhook.Delivery, a *pimhook.Attempt) error {
	return s.SubmitAttempt(ctx, d, a)()
}

// SubmitAttempt queues RecordAttempt(ctx, d, a) on the writer and returns at
// once; wait reports its outcome once its batch has committed. The writer
// applies requests in the order they were queued.
func (s *Store) SubmitAttempt(ctx context.Context, d *pimhook.Delivery, a *pimhook.Attempt) (wait func() error) {
	if a != nil && a.DeliveryID != "" && a.DeliveryID != d.ID {
		err := fmt.Errorf("record attempt: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
			"attempt %q belongs to delivery %q, not %q", a.ID, a.DeliveryID, d.ID))
		return func() error { return err }
	}
	if _, err := pimhook.ParseDeliveryStatus(string(d.Status)); err != nil {
		err = fmt.Errorf("record attempt: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
			"delivery %q cannot take the status %q", d.ID, d.Status))
		return func() error { return err }
	}
	// What the writer stores, and what the queue cache learns, is d and a
	// as they are now.
	var (
		state                                = stateOf(d)
		args                                 = state.updateArgs()
		companyID, appID, webhookID, eventID = d.CompanyID, d.AppID, d.WebhookID, d.EventID // as stored, once the request has run
	)
	if a != nil {
		a = new(*a)
	}
	change := func(c *queueCache) { c.recorded(appID, state) }
	// A record of a success (or of no attempt) is a bare request: its one
	// error of its own, a missing delivery, comes before its first write. A
	// failure's error-log entry could still be refused after it.
	bare := a == nil || a.Succeeded
	r, err := s.w.submitWith(ctx, func(tx *wtx) error {
		// The attempt, the webhook's failing time and the entry go by the
		// delivery's company, app, webhook and event as stored, whatever d
		// says. They are d's as a rule: the update then needs no RETURNING,
		// which SQLite answers through a temporary table.
		n, err := tx.execCount(updateDelivery+` AND company_id = ? AND app_id = ? AND webhook_id = ? AND event_id = ?`,
			append(args, companyID, appID, webhookID, eventID)...)
		if err != nil {
			return err
		}
		if n == 0 {
			err = tx.queryRow(updateDelivery+` RETURNING company_id, app_id, webhook_id, event_id`, args...).
				Scan(&companyID, &appID, &webhookID, &eventID)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return deliveryNotFound(state.id)
		}
		if err != nil || a == nil {
			return err
		}
		_, err = tx.exec(`INSERT INTO attempts (id, delivery_id, company_id, app_id, webhook_id, number, started_at, duration_ns,
			status_code, succeeded, error, response_body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, state.id, companyID, appID, webhookID, a.Number, unixNano(a.StartedAt), int64(a.Duration),
			a.StatusCode, a.Succeeded, a.Error, a.ResponseBody)
		if err != nil {
			return err
		}
		if a.Succeeded {
			_, err := tx.exec(`UPDATE webhooks SET failing_since = NULL
				WHERE company_id = ? AND id = ? AND failing_since IS NOT NULL`, companyID, webhookID)
			return err
		}
		if _, err := tx.exec(`UPDATE webhooks SET failing_since = ?
			WHERE company_id = ? AND id = ? AND failing_since IS NULL`, unixNano(a.StartedAt), companyID, webhookID); err != nil {
			return err
		}
		e := attemptErrorLogEntry(state.id, a)
		e.WebhookID, e.EventID = webhookID, eventID
		return insertErrorLog(tx, companyID, e)
	}, writeOpts{bare: bare, lazy: true, change: change})
	return sync.OnceValue(func() error {
		if err == nil {
			err = r.wait()
		}
		if err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		return nil
	})
}

// updateDelivery stores what an attempt changed of a delivery, with the
// arguments of deliveryState.updateArgs.
const updateDelivery = `UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?,
	last_status_code = ?, last_error = ?, updated_at = ?, finished_at = ? WHERE id = ?`

var _ pimhook.AttemptSubmitter = (*Store)(nil)

// attemptErrorLogEntry is the error-log entry of a failed attempt of a
// delivery, without the delivery's company, webhook and event.
func attemptErrorLogEntry(deliveryID string, a *pimhook.Attempt) *pimhook.ErrorLogEntry {
	return &pimhook.ErrorLogEntry{
		ID:           pimhook.NewID(pimhook.PrefixErrorLog, a.StartedAt),
		Source:       pimhook.ErrorSourceWebhook,
		OccurredAt:   a.StartedAt,
		DeliveryID:   deliveryID,
		Attempt:      a.Number,
		StatusCode:   a.StatusCode,
		Error:        a.Error,
		ResponseBody: a.ResponseBody,
	}
}

// deliveryColumns are read FROM deliveries. Job deliveries have their
// payload in delivery_payloads (see migration 002).
const deliveryColumns = `seq, id, company_id, app_id, webhook_id, event_id, event_name,
	IFNULL((SELECT p.payload FROM delivery_payloads p WHERE p.id = deliveries.payload_id), deliveries.payload),
	status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at, finished_at`

func (s *Store) queryDeliveries(ctx context.Context, query string, args ...any) ([]*pimhook.Delivery, error) {
	return queryAll(ctx, s.rdb, scanDelivery, query, args...)
}

func scanString(row scanner) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}

func scanDelivery(row scanner) (*pimhook.Delivery, error) {
	var (
		d                      pimhook.Delivery
		payload                []byte
		next, created, updated int64
		finished               sql.NullInt64
	)
	if err := row.Scan(&d.Seq, &d.ID, &d.CompanyID, &d.AppID, &d.WebhookID, &d.EventID, &d.EventName, &payload,
		&d.Status, &d.Attempts, &next, &d.LastStatusCode, &d.LastError, &created, &updated, &finished); err != nil {
		return nil, err
	}
	d.Payload = payload
	d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = fromUnixNano(next), fromUnixNano(created), fromUnixNano(updated)
	d.FinishedAt = fromNullUnixNano(finished)
	return &d, nil
}

func deliveryNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeDeliveryNotFound, "delivery %q not found", id)
}
