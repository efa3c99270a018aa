package postgres

import (
	"context"
	"fmt"
	"time"
)

// pruneBatch is how many rows Prune deletes per transaction.
const pruneBatch = 5000

// pruneDeliveriesSQL deletes up to $2 final deliveries that finished
// before $1, found through deliveries_finished, with their attempts (ON
// DELETE CASCADE) and their payloads in delivery_payloads, each of which
// belongs to one delivery. The rows are locked with SKIP LOCKED and checked
// again, so a delivery requeued meanwhile stays; it returns how many it
// deleted.
const pruneDeliveriesSQL = `WITH d AS (
		DELETE FROM deliveries WHERE seq IN (
			SELECT seq FROM deliveries WHERE status <> 'pending' AND finished_at < $1
			LIMIT $2 FOR UPDATE SKIP LOCKED)
		AND status <> 'pending'
		RETURNING id
	), p AS (
		DELETE FROM delivery_payloads WHERE delivery_id IN (SELECT id FROM d)
	)
	SELECT count(*) FROM d`

// pruneErrorLogSQL deletes up to $2 error-log entries that occurred before
// $1, found through error_log_occurred.
const pruneErrorLogSQL = `DELETE FROM error_log WHERE id IN (
		SELECT id FROM error_log WHERE occurred_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`

// Prune deletes the final deliveries that finished before before, with
// their attempts and payloads, and the error-log entries that occurred
// before it, pruneBatch rows per transaction, and returns how many
// deliveries it deleted. Pending deliveries stay.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int
		if err := s.queryRow(ctx, pruneDeliveriesSQL, before, pruneBatch).Scan(&n); err != nil {
			return total, fmt.Errorf("prune deliveries: %w", err)
		}
		total += n
		if n < pruneBatch {
			break
		}
	}
	for {
		tag, err := s.exec(ctx, pruneErrorLogSQL, before, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune error log: %w", err)
		}
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	return total, nil
}
