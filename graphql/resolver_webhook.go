package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/model"
)

// saveWebhookFields names saveWebhook's arguments as the domain names the
// webhook fields they set.
var saveWebhookFields = map[string]string{"callback_url": "url", "events": "event", "job_id": "jobID"}

// GetWebhooks lists the company's job webhooks, oldest first. Webhooks of
// entity events are not job webhooks and have no place in document 2's
// WebhookSchema; webhooks lists every kind.
func (q queryResolver) GetWebhooks(ctx context.Context) ([]*model.WebhookSchema, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	hooks, err := q.cfg.Store.Webhooks(ctx, co.ID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	out := []*model.WebhookSchema{}
	for _, w := range hooks {
		if w.JobID != "" {
			out = append(out, toWebhookSchema(w))
		}
	}
	return out, nil
}

// SaveWebhook creates or updates a job webhook. The arguments are vetted as
// a new webhook's would be (Normalize, then the callback URL's target),
// whichever happens. A webhook of the company with the same job, URL and
// single event is then updated: its monitored fields become fields, and
// nothing else changes. Otherwise a webhook is created on the default app,
// with REST's defaults, enabled.
func (m mutationResolver) SaveWebhook(ctx context.Context, url string, event pimhook.Action, fields []*string, jobID string) (string, error) {
	co, err := company(ctx)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(jobID) == "" {
		return "", pimhook.FieldError(pimhook.CodeValidation, "jobID", "jobID is required")
	}
	monitored := make([]string, 0, len(fields))
	for _, f := range fields {
		if f == nil {
			return "", pimhook.FieldError(pimhook.CodeValidation, "fields", "a monitored field cannot be null")
		}
		monitored = append(monitored, *f)
	}
	now := m.cfg.Clock.Now().UTC()
	hook := &pimhook.Webhook{
		CompanyID: co.ID, URL: url, Events: []pimhook.Action{event}, Fields: monitored,
		JobID: jobID, Format: pimhook.FormatJob,
		MinimumRetryInterval: pimhook.DefaultMinimumRetryInterval, RetryLimit: pimhook.DefaultRetryLimit,
		Enabled: true,
	}
	if err := pimhook.CheckWebhook(ctx, m.cfg.Targets, m.cfg.Filters, hook, true); err != nil {
		return "", renameFields(err, saveWebhookFields)
	}

	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	hooks, err := m.cfg.Store.Webhooks(ctx, co.ID)
	if err != nil {
		return "", fmt.Errorf("save webhook: %w", err)
	}
	for _, w := range hooks { // oldest first: of duplicates made over REST, the first wins
		if w.JobID == hook.JobID && w.URL == hook.URL && slices.Equal(w.Events, hook.Events) {
			w.Fields = hook.Fields
			w.UpdatedAt = now
			if err := m.cfg.Store.UpdateWebhook(ctx, w); err != nil {
				return "", fmt.Errorf("save webhook: %w", err)
			}
			return w.ID, nil
		}
	}
	if err := pimhook.AssignApp(ctx, m.cfg.Store, hook, nil, now); err != nil {
		return "", err
	}
	if err := m.create(ctx, hook, now); err != nil {
		return "", err
	}
	return hook.ID, nil
}

// DeleteWebhook deletes a webhook of any kind; false if there is none.
func (m mutationResolver) DeleteWebhook(ctx context.Context, id string) (bool, error) {
	co, err := company(ctx)
	if err != nil {
		return false, err
	}
	if err := m.cfg.Store.DeleteWebhook(ctx, co.ID, id); err != nil {
		if pimhook.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("delete webhook: %w", err)
	}
	return true, nil
}

// Webhooks lists the company's webhooks of every kind, oldest first.
func (q queryResolver) Webhooks(ctx context.Context) ([]*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	hooks, err := q.cfg.Store.Webhooks(ctx, co.ID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return mapList(hooks, toWebhook), nil
}

// Webhook returns one webhook of the company.
func (q queryResolver) Webhook(ctx context.Context, id string) (*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	w, err := q.cfg.Store.Webhook(ctx, co.ID, id)
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", err)
	}
	return toWebhook(w), nil
}

// CreateWebhook creates a webhook as POST /v1/webhooks does.
func (m mutationResolver) CreateWebhook(ctx context.Context, input model.CreateWebhookInput) (*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	patch := model.UpdateWebhookInput{
		AppID: input.AppID, Name: input.Name, CallbackURL: &input.CallbackURL,
		EntityTypes: input.EntityTypes, Events: input.Events, Fields: input.Fields,
		JobID: input.JobID, Format: input.Format, BatchSize: input.BatchSize,
		IncludeEntityData: input.IncludeEntityData, Headers: input.Headers,
		RetryPolicy: input.RetryPolicy, MinimumRetryInterval: input.MinimumRetryInterval,
		RetryLimit: input.RetryLimit, TimeoutMS: input.TimeoutMS, Enabled: input.Enabled,
	}
	now := m.cfg.Clock.Now().UTC()
	hook := &pimhook.Webhook{
		CompanyID:            co.ID,
		MinimumRetryInterval: pimhook.DefaultMinimumRetryInterval, RetryLimit: pimhook.DefaultRetryLimit,
		Enabled: true,
	}
	if err := apply(hook, &patch); err != nil {
		return nil, err
	}
	if err := pimhook.CheckWebhook(ctx, m.cfg.Targets, m.cfg.Filters, hook, true); err != nil {
		return nil, err
	}
	if err := pimhook.AssignApp(ctx, m.cfg.Store, hook, patch.AppID, now); err != nil {
		return nil, err
	}
	if err := m.create(ctx, hook, now); err != nil {
		return nil, err
	}
	return toWebhook(hook), nil
}

// UpdateWebhook changes the fields present in input, as PATCH
// /v1/webhooks/{id} does. The callback URL's target is vetted only when the
// URL changes.
func (m mutationResolver) UpdateWebhook(ctx context.Context, id string, input model.UpdateWebhookInput) (*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	hook, err := m.cfg.Store.Webhook(ctx, co.ID, id)
	if err != nil {
		return nil, fmt.Errorf("update webhook: %w", err)
	}
	now := m.cfg.Clock.Now().UTC()
	if err := apply(hook, &input); err != nil {
		return nil, err
	}
	if err := pimhook.CheckWebhook(ctx, m.cfg.Targets, m.cfg.Filters, hook, input.CallbackURL != nil); err != nil {
		return nil, err
	}
	if err := pimhook.AssignApp(ctx, m.cfg.Store, hook, input.AppID, now); err != nil {
		return nil, err
	}
	hook.UpdatedAt = now
	if err := m.cfg.Store.UpdateWebhook(ctx, hook); err != nil {
		return nil, fmt.Errorf("update webhook: %w", err)
	}
	return toWebhook(hook), nil
}

// App returns the webhook's app.
func (r webhookResolver) App(ctx context.Context, obj *model.Webhook) (*model.App, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	a, err := r.cfg.Store.App(ctx, co.ID, obj.AppID)
	if err != nil {
		return nil, fmt.Errorf("get webhook app: %w", err)
	}
	return toApp(a), nil
}

// apply copies the fields present in in onto w. A list present replaces
// the whole list.
func apply(w *pimhook.Webhook, in *model.UpdateWebhookInput) error {
	setIf(&w.Name, in.Name)
	setIf(&w.URL, in.CallbackURL)
	if in.EntityTypes != nil {
		w.EntityTypes = in.EntityTypes
	}
	if in.Events != nil {
		w.Events = in.Events
	}
	if in.Fields != nil {
		w.Fields = in.Fields
	}
	setIf(&w.JobID, in.JobID)
	setIf(&w.Format, in.Format)
	setIf(&w.BatchSize, in.BatchSize)
	setIf(&w.IncludeEntityData, in.IncludeEntityData)
	if in.Headers != nil {
		w.Headers = make(map[string]string, len(in.Headers))
		seen := make(map[string]bool, len(in.Headers))
		for _, h := range in.Headers {
			key := http.CanonicalHeaderKey(h.Name)
			if seen[key] {
				return pimhook.FieldError(pimhook.CodeValidation, "headers", "header %q is given twice", h.Name)
			}
			seen[key] = true
			w.Headers[h.Name] = h.Value
		}
	}
	setIf(&w.RetryPolicy, in.RetryPolicy)
	setIf(&w.MinimumRetryInterval, in.MinimumRetryInterval)
	setIf(&w.RetryLimit, in.RetryLimit)
	setIf(&w.TimeoutMS, in.TimeoutMS)
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
		w.DisabledReason = "" // the user decided; an automatic reason no longer applies
	}
	return nil
}

// setIf sets *dst to *src when src is present.
func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// create stores a vetted new webhook with a fresh ID and signing secret.
func (r *resolver) create(ctx context.Context, hook *pimhook.Webhook, now time.Time) error {
	hook.ID = pimhook.NewID(pimhook.PrefixWebhook, now)
	hook.Secret = pimhook.NewSecret()
	hook.CreatedAt, hook.UpdatedAt = now, now
	if err := r.cfg.Store.CreateWebhook(ctx, hook); err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	return nil
}

// SaveFilterReducer saves the filter and reducer hook applies to one event,
// as PUT /v1/webhooks/{id}/filter_reducer does.
func (m mutationResolver) SaveFilterReducer(ctx context.Context, webhookID string, eventSlug string, filterConfiguration json.RawMessage, reducerConfiguration json.RawMessage) (*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	fr := pimhook.FilterReducer{EventSlug: eventSlug, Reducer: reducerConfiguration}
	if isNull(filterConfiguration) && isNull(reducerConfiguration) {
		if err := pimhook.ValidateEventSlug(eventSlug, "eventSlug"); err != nil {
			return nil, err
		}
	}
	if !isNull(filterConfiguration) {
		dec := json.NewDecoder(bytes.NewReader(filterConfiguration))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fr.Filter); err != nil {
			return nil, pimhook.FieldError(pimhook.CodeInvalidFilter, "filterConfiguration", "filterConfiguration must be {query, condition, logic, conditions}: %v", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	hook, err := m.cfg.Store.Webhook(ctx, co.ID, webhookID)
	if err != nil {
		return nil, fmt.Errorf("save filter reducer: %w", err)
	}
	if fr.Filter == nil && isNull(fr.Reducer) {
		hook.FilterReducers = slices.DeleteFunc(hook.FilterReducers, func(x pimhook.FilterReducer) bool { return x.EventSlug == eventSlug })
	} else {
		if err := fr.Normalize(""); err != nil {
			return nil, renameFields(err, filterReducerFields)
		}
		if m.cfg.Filters != nil {
			if err := pimhook.CheckFilterReducer(m.cfg.Filters, &fr, "filterConfiguration", "reducerConfiguration"); err != nil {
				return nil, err
			}
		}
		hook.SetFilterReducer(fr)
	}
	if err := pimhook.CheckWebhook(ctx, m.cfg.Targets, m.cfg.Filters, hook, false); err != nil {
		return nil, err
	}
	hook.UpdatedAt = m.cfg.Clock.Now().UTC()
	if err := m.cfg.Store.UpdateWebhook(ctx, hook); err != nil {
		return nil, fmt.Errorf("save filter reducer: %w", err)
	}
	return toWebhook(hook), nil
}

// filterReducerFields names saveFilterReducer's arguments as the domain
// names them.
var filterReducerFields = map[string]string{"event_slug": "eventSlug", "filter_configuration": "filterConfiguration", "reducer_configuration": "reducerConfiguration"}

func isNull(b json.RawMessage) bool { return pimhook.IsNullJSON(b) }
