package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
	es, err := queryAll(ctx, s, scanErrorLogEntry, query, args...)
	if err != nil {
		return nil, fmt.Errorf("error log: %w", err)
	}
	return es, nil
}

// errorLogQuery is the listing of f. A filter on an optional reference
// repeats that the reference is set, which lets PostgreSQL use the partial
// index of the entries that have one (see the migration).
func errorLogQuery(f pimhook.ErrorLogFilter) (string, []any) {
	var w where
	w.add("company_id = ?", f.CompanyID)
	if f.Source != "" {
		w.add("source = ?", string(f.Source))
	}
	if f.WebhookID != "" {
		w.add("webhook_id = ? AND webhook_id <> ''", f.WebhookID)
	}
	if f.EventID != "" {
		w.add("event_id = ? AND event_id <> ''", f.EventID)
	}
	if f.OperationName != "" {
		w.add("operation_name = ? AND operation_name <> ''", f.OperationName)
	}
	if !f.Since.IsZero() {
		w.add("occurred_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("occurred_at < ?", f.Until)
	}
	if f.BeforeID != "" {
		w.add("id < ?", f.BeforeID)
	}
	return w.query(`SELECT `+errorLogColumnList+` FROM error_log`, ` ORDER BY id DESC LIMIT ?`, pimhook.PageLimit(f.Limit))
}

// errorLogColumns are entries to insert, column by column.
type errorLogColumns struct {
	companyID, id, source                            []string
	occurredAt                                       []time.Time
	webhookID, deliveryID, eventID, operation, runID []string
	attempt, statusCode                              []int32
	errorText                                        []string
	body                                             [][]byte
}

// add checks e and adds it to companyID's error log, whatever company e
// names, so that a write for one company cannot reach another's log.
func (c *errorLogColumns) add(companyID string, e *pimhook.ErrorLogEntry) error {
	if err := e.Check(); err != nil {
		return err
	}
	c.companyID, c.id, c.source = append(c.companyID, companyID), append(c.id, e.ID), append(c.source, string(e.Source))
	c.occurredAt = append(c.occurredAt, e.OccurredAt)
	c.webhookID, c.deliveryID, c.eventID = append(c.webhookID, e.WebhookID), append(c.deliveryID, e.DeliveryID), append(c.eventID, e.EventID)
	c.operation, c.runID = append(c.operation, e.OperationName), append(c.runID, e.RunID)
	c.attempt, c.statusCode = append(c.attempt, int32(e.Attempt)), append(c.statusCode, int32(e.StatusCode))
	c.errorText, c.body = append(c.errorText, sanitize(e.Error)), append(c.body, []byte(e.ResponseBody))
	return nil
}

// merge adds o's entries.
func (c *errorLogColumns) merge(o *errorLogColumns) {
	c.companyID, c.id, c.source = append(c.companyID, o.companyID...), append(c.id, o.id...), append(c.source, o.source...)
	c.occurredAt = append(c.occurredAt, o.occurredAt...)
	c.webhookID, c.deliveryID, c.eventID = append(c.webhookID, o.webhookID...), append(c.deliveryID, o.deliveryID...), append(c.eventID, o.eventID...)
	c.operation, c.runID = append(c.operation, o.operation...), append(c.runID, o.runID...)
	c.attempt, c.statusCode = append(c.attempt, o.attempt...), append(c.statusCode, o.statusCode...)
	c.errorText, c.body = append(c.errorText, o.errorText...), append(c.body, o.body...)
}

// insertErrorLogSQL stores entries in the error log.
const insertErrorLogSQL = `INSERT INTO error_log (company_id, id, source, occurred_at, webhook_id, delivery_id, event_id,
		operation_name, run_id, attempt, status_code, error, response_body)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::int4[], $11::int4[], $12::text[], $13::bytea[])`

// args returns the arguments of insertErrorLogSQL.
func (c *errorLogColumns) args() []any {
	return []any{c.companyID, c.id, c.source, c.occurredAt, c.webhookID, c.deliveryID, c.eventID, c.operation, c.runID,
		c.attempt, c.statusCode, c.errorText, c.body}
}

const errorLogColumnList = `id, company_id, source, occurred_at, webhook_id, delivery_id, event_id,
	operation_name, run_id, attempt, status_code, error, response_body`

func scanErrorLogEntry(row pgx.Row) (*pimhook.ErrorLogEntry, error) {
	var (
		e    pimhook.ErrorLogEntry
		body []byte
	)
	if err := row.Scan(&e.ID, &e.CompanyID, &e.Source, &e.OccurredAt, &e.WebhookID, &e.DeliveryID, &e.EventID,
		&e.OperationName, &e.RunID, &e.Attempt, &e.StatusCode, &e.Error, &body); err != nil {
		return nil, err
	}
	e.ResponseBody = string(body)
	return &e, nil
}
