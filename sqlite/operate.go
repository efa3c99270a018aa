package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pimhook/pimhook"
)

// RequeueDeliveries puts a company's deliveries back at the tail of their
// apps' queues, in the order given, in one write: each that is not pending
// becomes pending with a new Seq, NextAttemptAt and UpdatedAt now, no
// FinishedAt, and the rest of its state kept. A pending one stays where it
// is. An ID of no delivery of the company is a KindNotFound, and then
// nothing is re-queued. It returns the deliveries in the order given.
func (s *Store) RequeueDeliveries(ctx context.Context, companyID string, ids []string, now time.Time) ([]*pimhook.Delivery, error) {
	var out []*pimhook.Delivery
	err := s.w.do(ctx, func(tx *wtx) error {
		out = make([]*pimhook.Delivery, 0, len(ids))
		var seq int64 // the last Seq given out; 0 until the first is
		for _, id := range ids {
			d, err := scanDelivery(tx.queryRow(`SELECT `+deliveryColumns+` FROM deliveries WHERE company_id = ? AND id = ?`, companyID, id))
			if errors.Is(err, sql.ErrNoRows) {
				return deliveryNotFound(id)
			}
			if err != nil {
				return fmt.Errorf("read delivery %s: %w", id, err)
			}
			if d.Status != pimhook.DeliveryPending {
				if seq == 0 {
					if seq, err = lastSeq(tx); err != nil {
						return err
					}
				}
				seq++
				if _, err := tx.exec(`UPDATE deliveries SET seq = ?, status = 'pending', next_attempt_at = ?, updated_at = ?,
					finished_at = NULL WHERE id = ?`, seq, unixNano(now), unixNano(now), id); err != nil {
					return fmt.Errorf("requeue delivery %s: %w", id, err)
				}
				d.Seq, d.Status, d.NextAttemptAt, d.UpdatedAt, d.FinishedAt = seq, pimhook.DeliveryPending, now, now, nil
			}
			out = append(out, d)
		}
		if seq == 0 {
			return nil
		}
		// Moving a row to a higher seq does not advance AUTOINCREMENT's
		// counter; advance it, so that no seq is ever given out twice.
		if _, err := tx.exec(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'deliveries'`, seq); err != nil {
			return fmt.Errorf("advance the delivery sequence: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("requeue deliveries: %w", err)
	}
	return out, nil
}

// lastSeq is the highest Seq any delivery has had: the counter of
// AUTOINCREMENT, which Ingest and job commits take their Seqs from.
func lastSeq(tx *wtx) (int64, error) {
	var seq int64
	err := tx.queryRow(`SELECT MAX(IFNULL((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0),
		IFNULL((SELECT MAX(seq) FROM deliveries), 0))`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("read the delivery sequence: %w", err)
	}
	return seq, nil
}

// DisableFailingWebhook disables a webhook that has failed since at least
// failingFor before now, and logs why, in one write. It reports whether it
// disabled the webhook: one that is healthy, failing for less long, already
// disabled or gone is left alone. Like DisableWebhook, it sets UpdatedAt.
func (s *Store) DisableFailingWebhook(ctx context.Context, companyID, id string, failingFor time.Duration, now time.Time, reason string) (bool, error) {
	var disabled bool
	err := s.w.do(ctx, func(tx *wtx) error {
		disabled = false
		res, err := tx.exec(`UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ?
			WHERE company_id = ? AND id = ? AND enabled AND failing_since <= ?`,
			reason, unixNano(now), companyID, id, now.Add(-failingFor).UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err // healthy, failing for less long, disabled or gone
		}
		disabled = true
		return insertErrorLog(tx, companyID, &pimhook.ErrorLogEntry{
			ID: pimhook.NewID(pimhook.PrefixErrorLog, now), Source: pimhook.ErrorSourceHealth,
			OccurredAt: now, WebhookID: id, Error: reason,
		})
	})
	if err != nil {
		return false, fmt.Errorf("disable failing webhook: %w", err)
	}
	return disabled, nil
}

// attemptsPage is how many attempts AttemptsBetween reads per query.
const attemptsPage = 1000

// The pages of AttemptsBetween, from the attempt (started_at, id) on, named
// so that TestOperatePlans checks their plans: a company's pages read
// attempts_company; a webhook's read attempts_webhook, the unary plus
// keeping SQLite from taking attempts_company for its company_id instead.
const (
	attemptsSelect         = `SELECT id, delivery_id, app_id, webhook_id, number, started_at, duration_ns, status_code, succeeded FROM attempts `
	attemptsOfCompanyQuery = attemptsSelect + `WHERE company_id = ?1 AND (?2 = '' OR app_id = ?2)
		AND (started_at, id) > (?3, ?4) AND started_at < ?5 ORDER BY started_at, id LIMIT ?6`
	attemptsOfWebhookQuery = attemptsSelect + `WHERE webhook_id = ?7 AND +company_id = ?1 AND (?2 = '' OR app_id = ?2)
		AND (started_at, id) > (?3, ?4) AND started_at < ?5 ORDER BY started_at, id LIMIT ?6`
)

// AttemptsBetween calls fn with every attempt of the company started in
// [f.Start, f.End), of f.AppID's and f.WebhookID's deliveries when they are
// set, in StartedAt order (then ID), until fn returns an error, which it
// returns as it is. A zero End leaves the range open. It reads the attempts
// a page at a time, each page in a read transaction of its own, so that fn
// may take its time without holding a snapshot.
func (s *Store) AttemptsBetween(ctx context.Context, f pimhook.AttemptFilter, fn func(pimhook.AttemptRecord) error) error {
	if f.CompanyID == "" {
		return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery, "attempts are listed per company")
	}
	end := int64(math.MaxInt64)
	if !f.End.IsZero() {
		end = f.End.UnixNano()
	}
	// Every attempt ID sorts above "": the first page starts at Start
	// inclusive.
	afterAt, afterID := unixNano(f.Start), ""
	for {
		query, args := attemptsOfCompanyQuery, []any{f.CompanyID, f.AppID, afterAt, afterID, end, attemptsPage}
		if f.WebhookID != "" {
			query, args = attemptsOfWebhookQuery, append(args, f.WebhookID)
		}
		page, err := queryAll(ctx, s.rdb, scanAttemptRecord, query, args...)
		if err != nil {
			return fmt.Errorf("attempts between: %w", err)
		}
		for _, a := range page {
			if err := fn(a.r); err != nil {
				return err
			}
		}
		if len(page) < attemptsPage {
			return nil
		}
		last := page[len(page)-1]
		afterAt, afterID = unixNano(last.r.StartedAt), last.id
	}
}

// attemptRecord is an AttemptRecord with the attempt's ID, the cursor of
// the next page.
type attemptRecord struct {
	id string
	r  pimhook.AttemptRecord
}

func scanAttemptRecord(row scanner) (attemptRecord, error) {
	var (
		a                 attemptRecord
		started, duration int64
	)
	err := row.Scan(&a.id, &a.r.DeliveryID, &a.r.AppID, &a.r.WebhookID, &a.r.Number, &started, &duration,
		&a.r.StatusCode, &a.r.Succeeded)
	a.r.StartedAt, a.r.Duration = fromUnixNano(started), time.Duration(duration)
	return a, err
}

// queueStatsQuery reads the pending deliveries through deliveries_pending
// alone, in app order: it covers created_at (see migration 004).
const queueStatsQuery = `SELECT app_id, COUNT(*), MIN(created_at) FROM deliveries
	WHERE status = 'pending' GROUP BY app_id ORDER BY app_id`

// QueueStats returns, for every app with pending deliveries, how many there
// are and when the oldest of them was created, by app ID.
func (s *Store) QueueStats(ctx context.Context) ([]pimhook.AppQueue, error) {
	qs, err := queryAll(ctx, s.rdb, func(row scanner) (pimhook.AppQueue, error) {
		var (
			q      pimhook.AppQueue
			oldest int64
		)
		err := row.Scan(&q.AppID, &q.Pending, &oldest)
		q.Oldest = fromUnixNano(oldest)
		return q, err
	}, queueStatsQuery)
	if err != nil {
		return nil, fmt.Errorf("queue stats: %w", err)
	}
	return qs, nil
}

// pruneBatch is how many deliveries, or error-log entries, Prune deletes
// per write.
const pruneBatch = 5000

// Prune deletes the final deliveries that finished before before, with
// their attempts and payloads, and the error-log entries that occurred
// before it, and returns how many deliveries it deleted. Pending
// deliveries stay. Each write deletes up to pruneBatch rows, so the other
// writes go on between them.
//
// No index orders the history by time: each kind of row is walked once in
// rowid order, each write going on from where the last one stopped, so a
// call reads the history once, whatever it deletes.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	cutoff := unixNano(before)
	total := 0
	for after := int64(0); ; {
		var n int
		err := s.w.do(ctx, func(tx *wtx) error {
			var last sql.NullInt64
			if err := tx.queryRow(`SELECT MAX(seq), COUNT(*) FROM (SELECT seq FROM deliveries
				WHERE seq > ?1 AND status <> 'pending' AND finished_at < ?2 ORDER BY seq LIMIT ?3)`,
				after, cutoff, pruneBatch).Scan(&last, &n); err != nil || n == 0 {
				return err
			}
			// A job delivery's payload is in delivery_payloads, under the
			// ID of the staged delivery it came from: no other delivery
			// shares it.
			for _, q := range []string{
				`DELETE FROM delivery_payloads WHERE id IN (SELECT payload_id FROM deliveries
					WHERE seq > ?1 AND seq <= ?2 AND status <> 'pending' AND finished_at < ?3 AND payload_id IS NOT NULL)`,
				`DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries
					WHERE seq > ?1 AND seq <= ?2 AND status <> 'pending' AND finished_at < ?3)`,
				`DELETE FROM deliveries WHERE seq > ?1 AND seq <= ?2 AND status <> 'pending' AND finished_at < ?3`,
			} {
				if _, err := tx.exec(q, after, last.Int64, cutoff); err != nil {
					return err
				}
			}
			after = last.Int64
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune deliveries: %w", err)
		}
		total += n
		if n < pruneBatch {
			break
		}
	}
	for after := int64(0); ; {
		var n int
		err := s.w.do(ctx, func(tx *wtx) error {
			var last sql.NullInt64
			if err := tx.queryRow(`SELECT MAX(rowid), COUNT(*) FROM (SELECT rowid FROM error_log
				WHERE rowid > ?1 AND occurred_at < ?2 ORDER BY rowid LIMIT ?3)`,
				after, cutoff, pruneBatch).Scan(&last, &n); err != nil || n == 0 {
				return err
			}
			if _, err := tx.exec(`DELETE FROM error_log WHERE rowid > ?1 AND rowid <= ?2 AND occurred_at < ?3`,
				after, last.Int64, cutoff); err != nil {
				return err
			}
			after = last.Int64
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune error log: %w", err)
		}
		if n < pruneBatch {
			break
		}
	}
	return total, nil
}
