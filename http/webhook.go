package http

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pimhook/pimhook"
)

// webhookInput is the body of POST, PUT and PATCH /v1/webhooks, with the
// field names of reference document 3. Pointers tell an absent field from a
// zero one: POST and PUT fill defaults for absent fields only, PATCH changes
// present fields only. A JSON null counts as absent.
type webhookInput struct {
	Name                 *string            `json:"name"`
	CallbackURL          *string            `json:"callback_url"`
	EntityType           *string            `json:"entity_type"`
	EntityTypes          *[]string          `json:"entity_types"`
	IncludeEntityData    *bool              `json:"include_entity_data"`
	Headers              *map[string]string `json:"headers"`
	RetryPolicy          *string            `json:"retry_policy"`
	MinimumRetryInterval *float64           `json:"minimum_retry_interval"`
	RetryLimit           *int               `json:"retry_limit"`
	AppID                *string            `json:"app_id"`
	Events               *[]string          `json:"events"`
	Fields               *[]string          `json:"fields"`
	TimeoutMS            *int               `json:"timeout_ms"`
	Format               *string            `json:"format"`
	JobID                *string            `json:"job_id"`
	BatchSize            *int               `json:"batch_size"`
	Enabled              *bool              `json:"enabled"`
	// FilterReducers replaces every filter and reducer of the webhook.
	FilterReducers *[]pimhook.FilterReducer `json:"filter_reducers"`
}

// defaults fills the fields a new or replaced definition takes when the
// body leaves them out. Webhook.Normalize fills the rest (retry policy,
// format); these two need filling here because an explicit 0 is a real
// value for them.
func (in *webhookInput) defaults() {
	if in.MinimumRetryInterval == nil {
		v := pimhook.DefaultMinimumRetryInterval
		in.MinimumRetryInterval = &v
	}
	if in.RetryLimit == nil {
		v := pimhook.DefaultRetryLimit
		in.RetryLimit = &v
	}
	if in.Enabled == nil {
		v := true
		in.Enabled = &v
	}
}

// apply copies the present fields onto w. entity_type and entity_types
// together name the wanted types: either one present replaces the list.
func (in *webhookInput) apply(w *pimhook.Webhook) {
	setIf(&w.Name, in.Name)
	setIf(&w.URL, in.CallbackURL)
	if in.EntityType != nil || in.EntityTypes != nil {
		var types []string
		if in.EntityTypes != nil {
			types = append(types, *in.EntityTypes...)
		}
		if in.EntityType != nil {
			types = append(types, *in.EntityType)
		}
		w.EntityTypes = types
	}
	setIf(&w.IncludeEntityData, in.IncludeEntityData)
	setIf(&w.Headers, in.Headers)
	setIf(&w.RetryPolicy, in.RetryPolicy)
	setIf(&w.MinimumRetryInterval, in.MinimumRetryInterval)
	setIf(&w.RetryLimit, in.RetryLimit)
	if in.Events != nil {
		w.Events = make([]pimhook.Action, 0, len(*in.Events))
		for _, e := range *in.Events {
			w.Events = append(w.Events, pimhook.Action(e))
		}
	}
	setIf(&w.Fields, in.Fields)
	setIf(&w.TimeoutMS, in.TimeoutMS)
	setIf(&w.Format, in.Format)
	setIf(&w.JobID, in.JobID)
	setIf(&w.BatchSize, in.BatchSize)
	setIf(&w.FilterReducers, in.FilterReducers)
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
		w.DisabledReason = "" // the user decided; an automatic reason no longer applies
	}
}

// webhookJSON is a webhook as the API shows it. The signing secret appears
// only in the answer that creates the webhook.
type webhookJSON struct {
	ID                   string                  `json:"id"`
	AppID                string                  `json:"app_id"`
	Name                 string                  `json:"name"`
	CallbackURL          string                  `json:"callback_url"`
	EntityTypes          []string                `json:"entity_types"`
	Events               []pimhook.Action        `json:"events"`
	Fields               []string                `json:"fields"`
	IncludeEntityData    bool                    `json:"include_entity_data"`
	Headers              map[string]string       `json:"headers"`
	RetryPolicy          string                  `json:"retry_policy"`
	MinimumRetryInterval float64                 `json:"minimum_retry_interval"`
	RetryLimit           int                     `json:"retry_limit"`
	TimeoutMS            int                     `json:"timeout_ms"`
	Format               string                  `json:"format"`
	JobID                string                  `json:"job_id,omitempty"`
	BatchSize            int                     `json:"batch_size,omitempty"`
	Enabled              bool                    `json:"enabled"`
	DisabledReason       string                  `json:"disabled_reason,omitempty"`
	FailingSince         *time.Time              `json:"failing_since"`
	FilterReducers       []pimhook.FilterReducer `json:"filter_reducers"`
	SigningSecret        string                  `json:"signing_secret,omitempty"`
	CreatedAt            time.Time               `json:"created_at"`
	UpdatedAt            time.Time               `json:"updated_at"`
}

func toWebhookJSON(w *pimhook.Webhook) webhookJSON {
	headers := w.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return webhookJSON{
		ID: w.ID, AppID: w.AppID, Name: w.Name, CallbackURL: w.URL,
		EntityTypes: nonNil(w.EntityTypes), Events: nonNil(w.Events), Fields: nonNil(w.Fields),
		IncludeEntityData: w.IncludeEntityData, Headers: headers,
		RetryPolicy: w.RetryPolicy, MinimumRetryInterval: w.MinimumRetryInterval, RetryLimit: w.RetryLimit,
		TimeoutMS: w.TimeoutMS, Format: w.Format, JobID: w.JobID, BatchSize: w.BatchSize, Enabled: w.Enabled, DisabledReason: w.DisabledReason,
		FilterReducers: nonNil(w.FilterReducers),
		FailingSince:   utcPtr(w.FailingSince),
		CreatedAt:      w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC(),
	}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var in webhookInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	in.defaults()
	co := companyFrom(r.Context())
	now := s.Clock.Now().UTC()
	hook := &pimhook.Webhook{CompanyID: co.ID}
	in.apply(hook)
	if err := s.vet(r.Context(), hook, in.AppID, true, now); err != nil {
		return err
	}
	hook.ID = pimhook.NewID(pimhook.PrefixWebhook, now)
	hook.Secret = pimhook.NewSecret()
	hook.CreatedAt, hook.UpdatedAt = now, now
	if err := s.Store.CreateWebhook(r.Context(), hook); err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	out := toWebhookJSON(hook)
	out.SigningSecret = hook.Secret
	w.Header().Set("Location", "/v1/webhooks/"+hook.ID)
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	hooks, err := s.Store.Webhooks(r.Context(), companyFrom(r.Context()).ID)
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	return writeJSON(w, http.StatusOK, mapList(hooks, toWebhookJSON))
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) error {
	hook, err := s.Store.Webhook(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get webhook: %w", err)
	}
	return writeJSON(w, http.StatusOK, toWebhookJSON(hook))
}

// putWebhook replaces a webhook's definition; only its id, secret and
// creation time survive.
func (s *Server) putWebhook(w http.ResponseWriter, r *http.Request) error {
	var in webhookInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	in.defaults()
	co := companyFrom(r.Context())
	old, err := s.Store.Webhook(r.Context(), co.ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("replace webhook: %w", err)
	}
	now := s.Clock.Now().UTC()
	hook := &pimhook.Webhook{ID: old.ID, CompanyID: co.ID, Secret: old.Secret, CreatedAt: old.CreatedAt, UpdatedAt: now}
	in.apply(hook)
	if err := s.vet(r.Context(), hook, in.AppID, true, now); err != nil {
		return err
	}
	if err := s.Store.UpdateWebhook(r.Context(), hook); err != nil {
		return fmt.Errorf("replace webhook: %w", err)
	}
	return writeJSON(w, http.StatusOK, toWebhookJSON(hook))
}

// patchWebhook changes the fields present in the body and nothing else.
func (s *Server) patchWebhook(w http.ResponseWriter, r *http.Request) error {
	var in webhookInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	hook, err := s.Store.Webhook(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("patch webhook: %w", err)
	}
	now := s.Clock.Now().UTC()
	in.apply(hook)
	if err := s.vet(r.Context(), hook, in.AppID, in.CallbackURL != nil, now); err != nil {
		return err
	}
	hook.UpdatedAt = now
	if err := s.Store.UpdateWebhook(r.Context(), hook); err != nil {
		return fmt.Errorf("patch webhook: %w", err)
	}
	return writeJSON(w, http.StatusOK, toWebhookJSON(hook))
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := s.Store.DeleteWebhook(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id")); err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	return noContent(w)
}

func (s *Server) getWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	hook, err := s.Store.Webhook(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get webhook secret: %w", err)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"signing_secret": hook.Secret})
}

// vet validates hook in the documented order: its own rules, then whether
// its callback URL may be reached (when checkURL), then its app (see
// pimhook.AssignApp for what appID means). Only the default app is created
// here, and only once everything else passed.
func (s *Server) vet(ctx context.Context, hook *pimhook.Webhook, appID *string, checkURL bool, now time.Time) error {
	var compiler pimhook.FilterCompiler
	if s.Filters != nil {
		compiler = s.Filters
	} else if len(hook.FilterReducers) > 0 {
		_, err := s.filters()
		return err
	}
	if err := pimhook.CheckWebhook(ctx, s.Targets, compiler, hook, checkURL); err != nil {
		return err
	}
	return pimhook.AssignApp(ctx, s.Store, hook, appID, now)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return utcOrNil(*t)
}
