package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// CreateWebhook stores a new webhook, without a failing time whatever
// FailingSince says. Its app must belong to its company.
func (s *Store) CreateWebhook(ctx context.Context, w *pimhook.Webhook) error {
	cols, err := webhookJSON(w)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkWebhookApp(ctx, tx, w); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO webhooks (`+webhookWriteColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
			ON CONFLICT (id) DO NOTHING`,
			w.ID, w.CompanyID, w.AppID, w.Name, w.URL, stringList(w.EntityTypes), stringList(w.Events), stringList(w.Fields),
			w.Format, w.JobID, w.BatchSize, w.IncludeEntityData, cols.headers, cols.filterReducers, w.RetryPolicy,
			w.MinimumRetryInterval, w.RetryLimit, w.TimeoutMS, w.Enabled, sanitize(w.DisabledReason), w.Secret,
			w.CreatedAt, w.UpdatedAt)
		if err == nil && tag.RowsAffected() == 0 {
			err = conflictf("webhook %q already exists", w.ID)
		}
		return appGone(err, w)
	})
	if err != nil {
		return fmt.Errorf("create webhook: %w", storeError(err))
	}
	return nil
}

// checkWebhookApp makes sure a webhook's app exists in its company, so a
// webhook can never route one company's events to another's app.
func checkWebhookApp(ctx context.Context, tx pgx.Tx, w *pimhook.Webhook) error {
	found, err := exists(ctx, tx, `SELECT 1 FROM apps WHERE company_id = $1 AND id = $2`, w.CompanyID, w.AppID)
	if err != nil || !found {
		return orError(err, appNotFound(w.AppID))
	}
	return nil
}

// appGone reports the app of a webhook deleted between checkWebhookApp and
// the write as checkWebhookApp would have.
func appGone(err error, w *pimhook.Webhook) error {
	if isViolation(err, sqlForeignKeyViolation, "") {
		return appNotFound(w.AppID)
	}
	return err
}

// Webhook returns a webhook of a company.
func (s *Store) Webhook(ctx context.Context, companyID, id string) (*pimhook.Webhook, error) {
	w, err := scanWebhook(s.queryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE company_id = $1 AND id = $2`, companyID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, webhookNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return w, nil
}

// Webhooks lists a company's webhooks, oldest first.
func (s *Store) Webhooks(ctx context.Context, companyID string) ([]*pimhook.Webhook, error) {
	ws, err := queryAll(ctx, s, scanWebhook, `SELECT `+webhookColumns+` FROM webhooks WHERE company_id = $1 ORDER BY created_at, id`, companyID)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	return ws, nil
}

// UpdateWebhook stores every field of a webhook but its ID, company,
// CreatedAt and FailingSince, which the store keeps: an update that enables
// a disabled webhook clears it. A new app must belong to the same company.
func (s *Store) UpdateWebhook(ctx context.Context, w *pimhook.Webhook) error {
	cols, err := webhookJSON(w)
	if err != nil {
		return fmt.Errorf("update webhook: %w", err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if found, err := exists(ctx, tx, `SELECT 1 FROM webhooks WHERE company_id = $1 AND id = $2`, w.CompanyID, w.ID); err != nil || !found {
			return orError(err, webhookNotFound(w.ID))
		}
		if err := checkWebhookApp(ctx, tx, w); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET
			app_id = $1, name = $2, url = $3, entity_types = $4, events = $5, fields = $6, format = $7,
			job_id = $8, batch_size = $9, include_entity_data = $10, headers = $11, filter_reducers = $12,
			retry_policy = $13, minimum_retry_interval = $14, retry_limit = $15, timeout_ms = $16, enabled = $17,
			disabled_reason = $18, secret = $19, updated_at = $20,
			failing_since = CASE WHEN $17 AND NOT enabled THEN NULL ELSE failing_since END
			WHERE company_id = $21 AND id = $22`,
			w.AppID, w.Name, w.URL, stringList(w.EntityTypes), stringList(w.Events), stringList(w.Fields), w.Format,
			w.JobID, w.BatchSize, w.IncludeEntityData, cols.headers, cols.filterReducers,
			w.RetryPolicy, w.MinimumRetryInterval, w.RetryLimit, w.TimeoutMS, w.Enabled,
			sanitize(w.DisabledReason), w.Secret, w.UpdatedAt,
			w.CompanyID, w.ID)
		return affectedOne(tag, appGone(err, w), webhookNotFound(w.ID))
	})
	if err != nil {
		return fmt.Errorf("update webhook: %w", storeError(err))
	}
	return nil
}

// DisableWebhook turns a webhook off with a reason and touches nothing else.
func (s *Store) DisableWebhook(ctx context.Context, companyID, id, reason string, at time.Time) error {
	tag, err := s.exec(ctx, `UPDATE webhooks SET enabled = false, disabled_reason = $1, updated_at = $2 WHERE company_id = $3 AND id = $4`,
		sanitize(reason), at, companyID, id)
	if err := affectedOne(tag, err, webhookNotFound(id)); err != nil {
		return fmt.Errorf("disable webhook: %w", storeError(err))
	}
	return nil
}

// DeleteWebhook removes a webhook. Its deliveries stay.
func (s *Store) DeleteWebhook(ctx context.Context, companyID, id string) error {
	tag, err := s.exec(ctx, `DELETE FROM webhooks WHERE company_id = $1 AND id = $2`, companyID, id)
	if err := affectedOne(tag, err, webhookNotFound(id)); err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	return nil
}

// webhookWriteColumns are the columns of a webhook that CreateWebhook
// writes; webhookColumns add failing_since, which only the store writes.
const (
	webhookWriteColumns = `id, company_id, app_id, name, url, entity_types, events, fields, format, job_id, batch_size,
	include_entity_data, headers, filter_reducers, retry_policy, minimum_retry_interval, retry_limit, timeout_ms,
	enabled, disabled_reason, secret, created_at, updated_at`
	webhookColumns = webhookWriteColumns + `, failing_since`
)

// webhookColumnsJSON are a webhook's JSON columns, encoded.
type webhookColumnsJSON struct {
	headers, filterReducers []byte
}

func webhookJSON(w *pimhook.Webhook) (c webhookColumnsJSON, err error) {
	if c.headers, err = jsonBytes(w.Headers, "{}"); err != nil {
		return c, err
	}
	if c.filterReducers, err = pimhook.EncodeFilterReducers(w.FilterReducers); err != nil {
		return c, err
	}
	return c, nil
}

func scanWebhook(row pgx.Row) (*pimhook.Webhook, error) {
	var (
		w                       pimhook.Webhook
		events                  []string
		headers, filterReducers []byte
	)
	if err := row.Scan(&w.ID, &w.CompanyID, &w.AppID, &w.Name, &w.URL, &w.EntityTypes, &events, &w.Fields, &w.Format,
		&w.JobID, &w.BatchSize, &w.IncludeEntityData, &headers, &filterReducers, &w.RetryPolicy, &w.MinimumRetryInterval,
		&w.RetryLimit, &w.TimeoutMS, &w.Enabled, &w.DisabledReason, &w.Secret, &w.CreatedAt, &w.UpdatedAt,
		&w.FailingSince); err != nil {
		return nil, err
	}
	w.EntityTypes, w.Fields = orEmptyList(w.EntityTypes), orEmptyList(w.Fields)
	w.Events = make([]pimhook.Action, len(events))
	for i, e := range events {
		w.Events[i] = pimhook.Action(e)
	}
	w.Headers, w.FilterReducers = map[string]string{}, []pimhook.FilterReducer{}
	if err := json.Unmarshal(headers, &w.Headers); err != nil {
		return nil, fmt.Errorf("webhook %s headers: %w", w.ID, err)
	}
	if err := json.Unmarshal(filterReducers, &w.FilterReducers); err != nil {
		return nil, fmt.Errorf("webhook %s filter_reducers: %w", w.ID, err)
	}
	return &w, nil
}

// orEmptyList returns l, or an empty list for nil.
func orEmptyList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func webhookNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeWebhookNotFound, "webhook %q not found", id)
}
