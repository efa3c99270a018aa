package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pimhook/pimhook"
)

// CreateWebhook stores a new webhook. Its app must belong to its company.
func (s *Store) CreateWebhook(ctx context.Context, w *pimhook.Webhook) error {
	cols, err := webhookJSON(w)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		if err := checkWebhookApp(tx, w); err != nil {
			return err
		}
		if found, err := exists(tx, `SELECT 1 FROM webhooks WHERE id = ?`, w.ID); err != nil || found {
			return orConflict(err, "webhook %q already exists", w.ID)
		}
		_, err := tx.exec(`INSERT INTO webhooks (`+webhookColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.CompanyID, w.AppID, w.Name, w.URL, cols.entityTypes, cols.events, cols.fields, w.Format, w.JobID, w.BatchSize, w.IncludeEntityData,
			cols.headers, cols.filterReducers, w.RetryPolicy, w.MinimumRetryInterval, w.RetryLimit, w.TimeoutMS, w.Enabled, w.DisabledReason,
			w.Secret, unixNano(w.CreatedAt), unixNano(w.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	return nil
}

// checkWebhookApp makes sure a webhook's app exists in its company, so a
// webhook can never route one company's events to another's app.
func checkWebhookApp(tx *wtx, w *pimhook.Webhook) error {
	found, err := exists(tx, `SELECT 1 FROM apps WHERE company_id = ? AND id = ?`, w.CompanyID, w.AppID)
	if err != nil || !found {
		return orError(err, appNotFound(w.AppID))
	}
	return nil
}

// Webhook returns a webhook of a company.
func (s *Store) Webhook(ctx context.Context, companyID, id string) (*pimhook.Webhook, error) {
	w, err := scanWebhook(s.rdb.QueryRowContext(ctx, `SELECT `+webhookReadColumns+` FROM webhooks WHERE company_id = ? AND id = ?`, companyID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhookNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return w, nil
}

// Webhooks lists a company's webhooks, oldest first.
func (s *Store) Webhooks(ctx context.Context, companyID string) ([]*pimhook.Webhook, error) {
	ws, err := queryAll(ctx, s.rdb, scanWebhook, `SELECT `+webhookReadColumns+` FROM webhooks WHERE company_id = ? ORDER BY created_at, id`, companyID)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	return ws, nil
}

// UpdateWebhook stores every field of a webhook but its ID, company,
// CreatedAt and FailingSince, which the store keeps: enabling a disabled
// webhook clears it, anything else leaves it. A new app must belong to the
// same company.
func (s *Store) UpdateWebhook(ctx context.Context, w *pimhook.Webhook) error {
	cols, err := webhookJSON(w)
	if err != nil {
		return fmt.Errorf("update webhook: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM webhooks WHERE company_id = ? AND id = ?`, w.CompanyID, w.ID); err != nil || !found {
			return orError(err, webhookNotFound(w.ID))
		}
		if err := checkWebhookApp(tx, w); err != nil {
			return err
		}
		res, err := tx.exec(`UPDATE webhooks SET
			app_id = ?, name = ?, url = ?, entity_types = ?, events = ?, fields = ?, format = ?,
			job_id = ?, batch_size = ?, include_entity_data = ?, headers = ?, filter_reducers = ?, retry_policy = ?, minimum_retry_interval = ?, retry_limit = ?,
			timeout_ms = ?, enabled = ?, disabled_reason = ?, secret = ?, updated_at = ?,
			failing_since = CASE WHEN ? AND NOT enabled THEN NULL ELSE failing_since END
			WHERE company_id = ? AND id = ?`,
			w.AppID, w.Name, w.URL, cols.entityTypes, cols.events, cols.fields, w.Format,
			w.JobID, w.BatchSize, w.IncludeEntityData, cols.headers, cols.filterReducers, w.RetryPolicy, w.MinimumRetryInterval, w.RetryLimit,
			w.TimeoutMS, w.Enabled, w.DisabledReason, w.Secret, unixNano(w.UpdatedAt),
			w.Enabled, w.CompanyID, w.ID)
		return affectedOne(res, err, webhookNotFound(w.ID))
	})
	if err != nil {
		return fmt.Errorf("update webhook: %w", err)
	}
	return nil
}

// DisableWebhook turns a webhook off with a reason and touches nothing else.
func (s *Store) DisableWebhook(ctx context.Context, companyID, id, reason string, at time.Time) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE company_id = ? AND id = ?`,
			reason, unixNano(at), companyID, id)
		return affectedOne(res, err, webhookNotFound(id))
	})
	if err != nil {
		return fmt.Errorf("disable webhook: %w", err)
	}
	return nil
}

// DeleteWebhook removes a webhook. Its deliveries stay.
func (s *Store) DeleteWebhook(ctx context.Context, companyID, id string) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM webhooks WHERE company_id = ? AND id = ?`, companyID, id)
		return affectedOne(res, err, webhookNotFound(id))
	})
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	return nil
}

// webhookColumns are the columns of a webhook that CreateWebhook writes;
// webhookReadColumns add failing_since, which only the store writes.
const (
	webhookColumns = `id, company_id, app_id, name, url, entity_types, events, fields, format, job_id, batch_size, include_entity_data,
	headers, filter_reducers, retry_policy, minimum_retry_interval, retry_limit, timeout_ms, enabled, disabled_reason,
	secret, created_at, updated_at`
	webhookReadColumns = webhookColumns + `, failing_since`
)

// webhookColumnsJSON are a webhook's JSON columns, encoded.
type webhookColumnsJSON struct {
	entityTypes, events, fields, headers, filterReducers string
}

func webhookJSON(w *pimhook.Webhook) (c webhookColumnsJSON, err error) {
	for _, f := range []struct {
		dst    *string
		v      any
		ifNull string
	}{
		{&c.entityTypes, w.EntityTypes, "[]"},
		{&c.events, w.Events, "[]"},
		{&c.fields, w.Fields, "[]"},
		{&c.headers, w.Headers, "{}"},
	} {
		if *f.dst, err = jsonText(f.v, f.ifNull); err != nil {
			return c, err
		}
	}
	frs, err := pimhook.EncodeFilterReducers(w.FilterReducers)
	if err != nil {
		return c, err
	}
	c.filterReducers = string(frs)
	return c, nil
}

func scanWebhook(row scanner) (*pimhook.Webhook, error) {
	var (
		w                                                    pimhook.Webhook
		entityTypes, events, fields, headers, filterReducers string
		created, updated                                     int64
		failingSince                                         sql.NullInt64
	)
	if err := row.Scan(&w.ID, &w.CompanyID, &w.AppID, &w.Name, &w.URL, &entityTypes, &events, &fields, &w.Format,
		&w.JobID, &w.BatchSize, &w.IncludeEntityData, &headers, &filterReducers, &w.RetryPolicy, &w.MinimumRetryInterval, &w.RetryLimit, &w.TimeoutMS,
		&w.Enabled, &w.DisabledReason, &w.Secret, &created, &updated, &failingSince); err != nil {
		return nil, err
	}
	w.EntityTypes, w.Events, w.Fields, w.Headers = []string{}, []pimhook.Action{}, []string{}, map[string]string{}
	w.FilterReducers = []pimhook.FilterReducer{}
	for _, f := range []struct {
		src string
		dst any
	}{
		{entityTypes, &w.EntityTypes}, {events, &w.Events}, {fields, &w.Fields}, {headers, &w.Headers},
		{filterReducers, &w.FilterReducers},
	} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return nil, fmt.Errorf("webhook %s: %w", w.ID, err)
		}
	}
	w.CreatedAt, w.UpdatedAt = fromUnixNano(created), fromUnixNano(updated)
	w.FailingSince = fromNullUnixNano(failingSince)
	return &w, nil
}

func webhookNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeWebhookNotFound, "webhook %q not found", id)
}
