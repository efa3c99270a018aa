package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// requeueSQL puts deliveries $1 back at the tail of their queues, taking
// their new seqs in the order given: the innermost subquery, which OFFSET
// 0 keeps apart, hands the IDs over in order, and nextval runs on each as
// it comes. It is run with their apps' queues locked, as every enqueue.
const requeueSQL = `UPDATE deliveries d
	SET seq = r.seq, status = 'pending', next_attempt_at = $2, finished_at = NULL, updated_at = $2
	FROM (SELECT o.id, nextval('delivery_seq') AS seq
		FROM (SELECT u.id FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord) ORDER BY u.ord OFFSET 0) AS o) AS r
	WHERE d.id = r.id`

// RequeueDeliveries puts a company's deliveries back at the tail of their
// apps' queues, in the order given, in one transaction: each that is not
// pending becomes pending with a new Seq, NextAttemptAt and UpdatedAt now,
// no FinishedAt, and the rest of its state kept. A pending one stays where
// it is. An ID of no delivery of the company is a KindNotFound, and then
// nothing is re-queued. It returns the deliveries in the order given.
func (s *Store) RequeueDeliveries(ctx context.Context, companyID string, ids []string, now time.Time) ([]*pimhook.Delivery, error) {
	var out []*pimhook.Delivery
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock the deliveries, in ID order as every caller does, so that an
		// attempt recorded meanwhile waits and is not undone.
		unique := slices.Clone(ids)
		slices.Sort(unique)
		unique = slices.Compact(unique)
		ds, err := collect(ctx, tx, scanDelivery, `SELECT `+deliveryColumns+` FROM unnest($2::text[]) AS u(id), LATERAL (
			SELECT * FROM deliveries d WHERE d.id = u.id AND d.company_id = $1 OFFSET 0 FOR UPDATE) AS d`, companyID, unique)
		if err != nil {
			return err
		}
		byID := make(map[string]*pimhook.Delivery, len(ds))
		for _, d := range ds {
			byID[d.ID] = d
		}
		var (
			requeue, apps []string
			queued        = map[string]bool{}
		)
		for _, id := range ids {
			d := byID[id]
			if d == nil {
				return deliveryNotFound(id)
			}
			if d.Status != pimhook.DeliveryPending && !queued[id] {
				queued[id] = true
				requeue, apps = append(requeue, id), append(apps, d.AppID)
			}
		}
		if len(requeue) > 0 {
			slices.Sort(apps)
			apps = slices.Compact(apps)
			if err := lockQueues(ctx, tx, apps); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, requeueSQL, requeue, now); err != nil {
				return fmt.Errorf("requeue: %w", err)
			}
			if _, err := tx.Exec(ctx, notifyWorkSQL, apps); err != nil {
				return fmt.Errorf("signal work: %w", err)
			}
			requeued, err := collect(ctx, tx, scanDelivery, `SELECT `+deliveryColumns+` FROM unnest($1::text[]) AS u(id),
				LATERAL (SELECT * FROM deliveries d WHERE d.id = u.id OFFSET 0) AS d`, requeue)
			if err != nil {
				return err
			}
			for _, d := range requeued {
				byID[d.ID] = d
			}
		}
		out = make([]*pimhook.Delivery, len(ids))
		for i, id := range ids {
			d := *byID[id]
			out[i] = &d
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("requeue deliveries: %w", storeError(err))
	}
	return out, nil
}

// DisableFailingWebhook disables a webhook that has failed since at least
// failingFor before now, and logs why, in one transaction. It reports
// whether it disabled the webhook: one that is healthy, failing for less
// long, already disabled or gone is left alone. Like DisableWebhook, it
// sets UpdatedAt.
func (s *Store) DisableFailingWebhook(ctx context.Context, companyID, id string, failingFor time.Duration, now time.Time, reason string) (bool, error) {
	var disabled bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET enabled = false, disabled_reason = $1, updated_at = $2
			WHERE company_id = $3 AND id = $4 AND enabled AND failing_since <= $5`,
			sanitize(reason), now, companyID, id, now.Add(-failingFor))
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		disabled = true
		var entry errorLogColumns
		if err := entry.add(companyID, &pimhook.ErrorLogEntry{
			ID: pimhook.NewID(pimhook.PrefixErrorLog, now), Source: pimhook.ErrorSourceHealth,
			OccurredAt: now, WebhookID: id, Error: reason,
		}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, insertErrorLogSQL, entry.args()...)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("disable failing webhook: %w", storeError(err))
	}
	return disabled, nil
}

// attemptsPage is how many attempts AttemptsBetween reads per query.
const attemptsPage = 1000

// The pages of AttemptsBetween, from the attempt ($3, $4) on, named so that
// TestOperatePlans checks their plans: a company's pages read
// attempts_company, a webhook's attempts_webhook.
const (
	attemptsSelect = `SELECT id, delivery_id, app_id, webhook_id, number, started_at, duration_ns, status_code, succeeded
		FROM attempts `
	attemptsOfCompanyQuery = attemptsSelect + `WHERE company_id = $1 AND ($2 = '' OR app_id = $2)
		AND (started_at, id) > ($3, $4) AND started_at < $5 ORDER BY started_at, id LIMIT $6`
	attemptsOfWebhookQuery = attemptsSelect + `WHERE webhook_id = $7 AND company_id = $1 AND ($2 = '' OR app_id = $2)
		AND (started_at, id) > ($3, $4) AND started_at < $5 ORDER BY started_at, id LIMIT $6`
)

// AttemptsBetween calls fn with every attempt of the company started in
// [f.Start, f.End), of f.AppID's and f.WebhookID's deliveries when they are
// set, in StartedAt order (then ID), until fn returns an error, which it
// returns as it is. A zero End leaves the range open. It reads the
// attempts a page at a time, each page a query of its own, so that fn may
// take its time without holding a connection or a snapshot.
func (s *Store) AttemptsBetween(ctx context.Context, f pimhook.AttemptFilter, fn func(pimhook.AttemptRecord) error) error {
	if f.CompanyID == "" {
		return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery, "attempts are listed per company")
	}
	end := f.End
	if end.IsZero() {
		end = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	// Every attempt ID sorts above "": the first page starts at Start
	// inclusive.
	afterAt, afterID := f.Start, ""
	for {
		query, args := attemptsOfCompanyQuery, []any{f.CompanyID, f.AppID, afterAt, afterID, end, attemptsPage}
		if f.WebhookID != "" {
			query, args = attemptsOfWebhookQuery, append(args, f.WebhookID)
		}
		page, err := queryAll(ctx, s, scanAttemptRecord, query, args...)
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
		afterAt, afterID = last.r.StartedAt, last.id
	}
}

// attemptRecord is an AttemptRecord with the attempt's ID, the cursor of
// the next page.
type attemptRecord struct {
	id string
	r  pimhook.AttemptRecord
}

func scanAttemptRecord(row pgx.Row) (attemptRecord, error) {
	var (
		a        attemptRecord
		duration int64
	)
	err := row.Scan(&a.id, &a.r.DeliveryID, &a.r.AppID, &a.r.WebhookID, &a.r.Number, &a.r.StartedAt, &duration,
		&a.r.StatusCode, &a.r.Succeeded)
	a.r.Duration = time.Duration(duration)
	return a, err
}

// queueStatsQuery reads the pending deliveries through deliveries_pending,
// in app order.
const queueStatsQuery = `SELECT app_id, count(*), min(created_at) FROM deliveries
	WHERE status = 'pending' GROUP BY app_id ORDER BY app_id`

// QueueStats returns, for every app with pending deliveries, how many
// there are and when the oldest of them was created, by app ID.
func (s *Store) QueueStats(ctx context.Context) ([]pimhook.AppQueue, error) {
	qs, err := queryAll(ctx, s, func(row pgx.Row) (pimhook.AppQueue, error) {
		var q pimhook.AppQueue
		err := row.Scan(&q.AppID, &q.Pending, &q.Oldest)
		return q, err
	}, queueStatsQuery)
	if err != nil {
		return nil, fmt.Errorf("queue stats: %w", err)
	}
	return qs, nil
}
