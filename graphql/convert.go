package graphql

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/model"
)

// The functions below show domain values as the schema does. They follow the
// REST API's views: lists are never null, and an absent value (no timeout,
// no status code) is null rather than a zero.

func toWebhook(w *pimhook.Webhook) *model.Webhook {
	out := &model.Webhook{
		ID: w.ID, AppID: w.AppID, Name: w.Name, CallbackURL: w.URL,
		EntityTypes: nonNil(w.EntityTypes), Events: nonNil(w.Events), Fields: nonNil(w.Fields),
		JobID: nonZero(w.JobID), Format: w.Format, BatchSize: nonZero(w.BatchSize),
		IncludeEntityData: w.IncludeEntityData,
		Headers:           make([]*model.Header, 0, len(w.Headers)),
		RetryPolicy:       w.RetryPolicy, MinimumRetryInterval: w.MinimumRetryInterval, RetryLimit: w.RetryLimit,
		TimeoutMS: nonZero(w.TimeoutMS), Enabled: w.Enabled, DisabledReason: nonZero(w.DisabledReason),
		SigningSecret: w.Secret,
		CreatedAt:     w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC(),
	}
	out.FilterReducers = make([]*model.FilterReducer, 0, len(w.FilterReducers))
	for _, fr := range w.FilterReducers {
		m := &model.FilterReducer{EventSlug: fr.EventSlug, ReducerConfiguration: fr.Reducer}
		if fr.Filter != nil {
			b, err := json.Marshal(fr.Filter)
			if err != nil {
				panic("pimhook/graphql: a filter cannot be encoded: " + err.Error())
			}
			m.FilterConfiguration = b
		}
		out.FilterReducers = append(out.FilterReducers, m)
	}
	for _, name := range slices.Sorted(maps.Keys(w.Headers)) {
		out.Headers = append(out.Headers, &model.Header{Name: name, Value: w.Headers[name]})
	}
	return out
}

// toWebhookSchema shows a job webhook as reference document 2 does. Its
// event is the webhook's one event; a webhook of several events, or of all
// (no events), has none to show.
func toWebhookSchema(w *pimhook.Webhook) *model.WebhookSchema {
	out := &model.WebhookSchema{ID: w.ID, URL: w.URL, Fields: nonNil(w.Fields), JobID: w.JobID}
	if len(w.Events) == 1 {
		ev := w.Events[0]
		out.Event = &ev
	}
	return out
}

func toApp(a *pimhook.App) *model.App {
	return &model.App{
		ID: a.ID, Name: a.Name, AppType: a.AppType, Worker: a.Worker, IsDefault: a.IsDefault,
		CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
	}
}

func toDelivery(d *pimhook.Delivery) *model.Delivery {
	out := &model.Delivery{
		ID: d.ID, AppID: d.AppID, WebhookID: d.WebhookID, EventID: d.EventID, Event: d.EventName,
		Status: d.Status, AttemptCount: d.Attempts,
		LastStatusCode: nonZero(d.LastStatusCode), LastError: nonZero(d.LastError),
		Payload:   d.Payload,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
	if d.Status == pimhook.DeliveryPending { // a final delivery has nothing more to try
		out.NextAttemptAt = utcOrNil(d.NextAttemptAt)
	}
	if d.FinishedAt != nil {
		out.FinishedAt = utcOrNil(*d.FinishedAt)
	}
	return out
}

func toAttempt(a *pimhook.Attempt) *model.Attempt {
	return &model.Attempt{
		ID: a.ID, Number: a.Number, StartedAt: a.StartedAt.UTC(), DurationMS: int(a.Duration.Milliseconds()),
		StatusCode: nonZero(a.StatusCode), Succeeded: a.Succeeded,
		Error: nonZero(a.Error), ResponseBody: nonZero(a.ResponseBody),
	}
}

func toJobRun(r *pimhook.JobRun) *model.JobRun {
	return &model.JobRun{
		ID: r.ID, JobID: r.JobID, Key: r.KeyField, Status: r.Status,
		Products: r.Products, Added: r.Added, Updated: r.Updated, Removed: r.Removed, Deliveries: r.Deliveries,
		Error: nonZero(r.Error), Line: nonZero(r.Line),
		CreatedAt: r.CreatedAt.UTC(), FinishedAt: utcOrNil(r.FinishedAt),
	}
}

// mapList converts a list, never yielding nil.
func mapList[In, Out any](in []In, f func(In) Out) []Out {
	out := make([]Out, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}

// nonNil returns s, or an empty slice in place of nil.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// nonZero returns a pointer to v, or nil for the zero value.
func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
