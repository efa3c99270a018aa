package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/pimhook/pimhook"
)

// ErrorLog lists the entries of a company's error log that f selects,
// newest (highest ID) first. The filter must name a company; Limit defaults
// to pimhook.DefaultPage and is capped at pimhook.MaxPage.
func (s *Store) ErrorLog(ctx context.Context, f pimhook.ErrorLogFilter) ([]*pimhook.ErrorLogEntry, error) {
	if f.CompanyID == "" {
		return nil, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery, "the error log is listed per company")
	}
	query, args := errorLogQuery(f)
	es, err := queryAll(ctx, s.rdb, scanErrorLogEntry, query, args...)
	if err != nil {
		return nil, fmt.Errorf("error log: %w", err)
	}
	return es, nil
}

// errorLogQuery is the listing of f. A filter on an optional reference
// repeats that the reference is set, which lets SQLite use the partial index
// of the entries that have one (see migration 003).
func errorLogQuery(f pimhook.ErrorLogFilter) (string, []any) {
	where := []string{"company_id = ?"}
	args := []any{f.CompanyID}
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.Source != "" {
		add("source = ?", string(f.Source))
	}
	if f.WebhookID != "" {
		add("webhook_id = ? AND webhook_id <> ''", f.WebhookID)
	}
	if f.EventID != "" {
		add("event_id = ? AND event_id <> ''", f.EventID)
	}
	if f.OperationName != "" {
		add("operation_name = ? AND operation_name <> ''", f.OperationName)
	}
	if !f.Since.IsZero() {
		add("occurred_at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("occurred_at < ?", f.Until.UnixNano())
	}
	if f.BeforeID != "" {
		add("id < ?", f.BeforeID)
	}
	args = append(args, pimhook.PageLimit(f.Limit))
	return `SELECT ` + errorLogColumns + ` FROM error_log WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id DESC LIMIT ?`, args
}

// insertErrorLog stores an entry in companyID's error log, whatever company
// e names, so that a write for one company cannot reach another's log.
func insertErrorLog(tx *wtx, companyID string, e *pimhook.ErrorLogEntry) error {
	if err := e.Check(); err != nil {
		return err
	}
	if found, err := exists(tx, `SELECT 1 FROM error_log WHERE id = ?`, e.ID); err != nil || found {
		return orConflict(err, "error-log entry %q already exists", e.ID)
	}
	_, err := tx.exec(`INSERT INTO error_log (`+errorLogColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, companyID, string(e.Source), unixNano(e.OccurredAt), e.WebhookID, e.DeliveryID, e.EventID,
		e.OperationName, e.RunID, e.Attempt, e.StatusCode, e.Error, e.ResponseBody)
	if err != nil {
		return fmt.Errorf("store error-log entry %s: %w", e.ID, err)
	}
	return nil
}

const errorLogColumns = `id, company_id, source, occurred_at, webhook_id, delivery_id, event_id,
	operation_name, run_id, attempt, status_code, error, response_body`

func scanErrorLogEntry(row scanner) (*pimhook.ErrorLogEntry, error) {
	var (
		e        pimhook.ErrorLogEntry
		occurred int64
	)
	if err := row.Scan(&e.ID, &e.CompanyID, &e.Source, &occurred, &e.WebhookID, &e.DeliveryID, &e.EventID,
		&e.OperationName, &e.RunID, &e.Attempt, &e.StatusCode, &e.Error, &e.ResponseBody); err != nil {
		return nil, err
	}
	e.OccurredAt = fromUnixNano(occurred)
	return &e, nil
}
