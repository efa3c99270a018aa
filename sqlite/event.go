package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pimhook/pimhook"
)

// Ingest applies a company's events in order, in one write request: all of
// them, their entities, their deliveries and their error-log entries commit
// together or not at all. The entries are stored in the company of the
// call, whatever company they name.
// It sets each stored delivery's Seq and CompanyID (and Status to pending
// when empty). decide runs on the writer goroutine, so it should be quick
// and must not write to the Store; it may read from it.
//
// If ctx ends while the call waits in the write queue, nothing is written
// and ctx's error is returned; once the writer has started it, it finishes
// and its real outcome is returned.
func (s *Store) Ingest(ctx context.Context, companyID string, events []*pimhook.Event, decide pimhook.Decider) ([]pimhook.IngestResult, error) {
	for _, ev := range events {
		if ev.ID == "" {
			return nil, fmt.Errorf("ingest: %w", pimhook.FieldError(pimhook.CodeInvalidEvent, "id", "an event needs an ID"))
		}
	}
	if len(events) == 0 {
		return []pimhook.IngestResult{}, nil
	}
	var (
		results []pimhook.IngestResult
		placed  []placedDelivery
	)
	change := func(c *queueCache) {
		for _, p := range placed {
			if p.status == pimhook.DeliveryPending {
				c.queued(asStored(p.d, p.seq, companyID, p.status))
			}
		}
	}
	// Bare for one event, which returns its own errors before its first
	// write (see ingestEvent); in a longer list, a later event's error must
	// undo the earlier events.
	err := s.w.doWith(ctx, func(tx *wtx) error {
		results = make([]pimhook.IngestResult, 0, len(events))
		for _, ev := range events {
			r, err := ingestEvent(tx, companyID, ev, decide, &placed)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		return nil
	}, writeOpts{bare: len(events) == 1, change: change})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	for _, p := range placed {
		p.d.Seq, p.d.CompanyID, p.d.Status = p.seq, companyID, p.status
	}
	return results, nil
}

// placedDelivery is a delivery stored by an Ingest request; its struct is
// updated only once the batch has committed.
type placedDelivery struct {
	d      *pimhook.Delivery
	seq    int64
	status pimhook.DeliveryStatus
}

// ingestEvent stores one event. Its own errors (a reused ID, the decider's,
// an invalid error-log entry) come before its first write.
func ingestEvent(tx *wtx, companyID string, ev *pimhook.Event, decide pimhook.Decider, placed *[]placedDelivery) (pimhook.IngestResult, error) {
	r := pimhook.IngestResult{EventID: ev.ID, Status: pimhook.IngestDuplicate}
	var fingerprint string
	err := tx.queryRow(`SELECT name, revision, deliveries, fingerprint FROM events WHERE company_id = ? AND id = ?`,
		companyID, ev.ID).Scan(&r.Event, &r.Revision, &r.Deliveries, &fingerprint)
	switch {
	case err == nil:
		if ev.Fingerprint != "" && fingerprint != "" && ev.Fingerprint != fingerprint {
			return r, pimhook.Errorf(pimhook.KindConflict, pimhook.CodeIdempotencyReuse,
				"event id %q was already used for a different event", ev.ID)
		}
		return r, nil
	case !errors.Is(err, sql.ErrNoRows):
		return r, fmt.Errorf("find event %s: %w", ev.ID, err)
	}

	stored, err := loadEntity(tx, companyID, ev.EntityType, ev.EntityID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("load entity %s/%s: %w", ev.EntityType, ev.EntityID, err)
	}
	dec, err := decide(ev, stored)
	if err != nil {
		return r, err
	}

	r.Event, r.Revision, r.Deliveries, r.Status = ev.Name(), ev.Revision, len(dec.Deliveries), pimhook.IngestAccepted
	if dec.Unchanged {
		r.Status = pimhook.IngestUnchanged
	}
	changed, err := jsonText(ev.ChangedFields, "[]")
	if err != nil {
		return r, fmt.Errorf("event %s changed fields: %w", ev.ID, err)
	}
	if err := checkDecision(tx, dec); err != nil {
		return r, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	if _, err := tx.exec(`INSERT INTO events (
		company_id, id, entity_type, entity_id, action, effective_action, name, revision,
		changed_fields, status, deliveries, fingerprint, source_app_id, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		companyID, ev.ID, ev.EntityType, ev.EntityID, ev.Action, ev.EffectiveAction, r.Event, r.Revision,
		changed, r.Status, r.Deliveries, ev.Fingerprint, ev.SourceAppID, unixNano(ev.ReceivedAt)); err != nil {
		return r, fmt.Errorf("store event %s: %w", ev.ID, err)
	}

	if e := dec.Entity; e != nil {
		// The state is the event's entity's, whatever e names.
		typ, id := ev.EntityType, ev.EntityID
		if _, err := tx.exec(`INSERT INTO entities (company_id, type, id, data, revision, deleted, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (company_id, type, id) DO UPDATE SET
				data = excluded.data, revision = excluded.revision, deleted = excluded.deleted, updated_at = excluded.updated_at`,
			companyID, typ, id, []byte(e.Data), e.Revision, e.Deleted, unixNano(e.UpdatedAt)); err != nil {
			return r, fmt.Errorf("store entity %s/%s: %w", typ, id, err)
		}
	}

	for _, d := range dec.Deliveries {
		status := d.Status
		if status == "" {
			status = pimhook.DeliveryPending
		}
		payload := []byte(d.Payload)
		if payload == nil {
			payload = []byte{}
		}
		res, err := tx.exec(`INSERT INTO deliveries (
			id, company_id, app_id, webhook_id, event_id, event_name, payload, status, attempts,
			next_attempt_at, last_status_code, last_error, created_at, updated_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, companyID, d.AppID, d.WebhookID, d.EventID, d.EventName, payload, status, d.Attempts,
			unixNano(d.NextAttemptAt), d.LastStatusCode, d.LastError, unixNano(d.CreatedAt), unixNano(d.UpdatedAt),
			nullUnixNano(d.FinishedAt))
		if err != nil {
			return r, fmt.Errorf("store delivery %s: %w", d.ID, err)
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return r, fmt.Errorf("store delivery %s: %w", d.ID, err)
		}
		*placed = append(*placed, placedDelivery{d: d, seq: seq, status: status})
	}

	for _, e := range dec.Errors {
		if e == nil {
			continue
		}
		if err := insertErrorLog(tx, companyID, e); err != nil {
			return r, fmt.Errorf("event %s: %w", ev.ID, err)
		}
	}
	return r, nil
}

// checkDecision refuses, before anything of its event is written, what
// storing dec would refuse later: a delivery status SQLite does not take,
// and error-log entries that are invalid or whose IDs are taken.
func checkDecision(tx *wtx, dec pimhook.Decision) error {
	for _, d := range dec.Deliveries {
		if d.Status != "" {
			if _, err := pimhook.ParseDeliveryStatus(string(d.Status)); err != nil {
				return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
					"delivery %q cannot take the status %q", d.ID, d.Status)
			}
		}
	}
	ids := make(map[string]bool, len(dec.Errors))
	for _, e := range dec.Errors {
		if e == nil {
			continue
		}
		if err := e.Check(); err != nil {
			return err
		}
		found, err := exists(tx, `SELECT 1 FROM error_log WHERE id = ?`, e.ID)
		if err != nil || found || ids[e.ID] {
			return orConflict(err, "error-log entry %q already exists", e.ID)
		}
		ids[e.ID] = true
	}
	return nil
}

// Entity returns an entity's stored state.
func (s *Store) Entity(ctx context.Context, companyID, entityType, id string) (*pimhook.Entity, error) {
	e, err := scanEntity(s.rdb.QueryRowContext(ctx, entityQuery, companyID, entityType, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeNotFound, "%s %q not found", entityType, id)
	}
	if err != nil {
		return nil, fmt.Errorf("entity: %w", err)
	}
	return e, nil
}

func loadEntity(tx *wtx, companyID, entityType, id string) (*pimhook.Entity, error) {
	return scanEntity(tx.queryRow(entityQuery, companyID, entityType, id))
}

const (
	entityColumns = `company_id, type, id, data, revision, deleted, updated_at`
	entityQuery   = `SELECT ` + entityColumns + ` FROM entities WHERE company_id = ? AND type = ? AND id = ?`
)

func scanEntity(row scanner) (*pimhook.Entity, error) {
	var (
		e       pimhook.Entity
		data    []byte
		updated int64
	)
	if err := row.Scan(&e.CompanyID, &e.Type, &e.ID, &data, &e.Revision, &e.Deleted, &updated); err != nil {
		return nil, err
	}
	e.Data, e.UpdatedAt = data, fromUnixNano(updated)
	return &e, nil
}
