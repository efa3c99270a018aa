package http

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/pimhook/pimhook"
)

// deliveryJSON is a delivery as the API shows it. The payload and the
// attempts appear only in the answer about one delivery; lists carry the
// number of attempts.
type deliveryJSON struct {
	ID             string                 `json:"id"`
	AppID          string                 `json:"app_id"`
	WebhookID      string                 `json:"webhook_id"`
	EventID        string                 `json:"event_id"`
	Event          string                 `json:"event"`
	Status         pimhook.DeliveryStatus `json:"status"`
	AttemptCount   int                    `json:"attempt_count"`
	NextAttemptAt  *time.Time             `json:"next_attempt_at"`
	LastStatusCode *int                   `json:"last_status_code"`
	LastError      *string                `json:"last_error"`
	CreatedAt      time.Time              `json:"created_at"`
	UpdatedAt      time.Time              `json:"updated_at"`
	FinishedAt     *time.Time             `json:"finished_at"`
}

// deliveryDetailJSON is one delivery with its payload and attempts.
type deliveryDetailJSON struct {
	deliveryJSON
	Payload  json.RawMessage `json:"payload"`
	Attempts []attemptJSON   `json:"attempts"`
}

// attemptJSON is one attempt as the API shows it. Absent values are null.
type attemptJSON struct {
	ID           string    `json:"id"`
	Number       int       `json:"number"`
	StartedAt    time.Time `json:"started_at"`
	DurationMS   int64     `json:"duration_ms"`
	StatusCode   *int      `json:"status_code"`
	Succeeded    bool      `json:"succeeded"`
	Error        *string   `json:"error"`
	ResponseBody *string   `json:"response_body"`
}

func toDeliveryJSON(d *pimhook.Delivery) deliveryJSON {
	out := deliveryJSON{
		ID: d.ID, AppID: d.AppID, WebhookID: d.WebhookID, EventID: d.EventID, Event: d.EventName,
		Status: d.Status, AttemptCount: d.Attempts,
		NextAttemptAt:  utcOrNil(d.NextAttemptAt),
		LastStatusCode: nonZero(d.LastStatusCode),
		LastError:      nonZero(d.LastError),
		CreatedAt:      d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
	if d.FinishedAt != nil {
		out.FinishedAt = utcOrNil(*d.FinishedAt)
	}
	if d.Status != pimhook.DeliveryPending {
		out.NextAttemptAt = nil // nothing more will be tried
	}
	return out
}

func toAttemptJSON(a *pimhook.Attempt) attemptJSON {
	return attemptJSON{
		ID: a.ID, Number: a.Number, StartedAt: a.StartedAt.UTC(), DurationMS: a.Duration.Milliseconds(),
		StatusCode: nonZero(a.StatusCode), Succeeded: a.Succeeded,
		Error: nonZero(a.Error), ResponseBody: nonZero(a.ResponseBody),
	}
}

// listDeliveries pages through a company's deliveries, newest first.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	f, err := deliveryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.CompanyID = companyFrom(r.Context()).ID
	list, more, err := pimhook.DeliveryPage(r.Context(), s.Store, f)
	if err != nil {
		return err
	}
	var next *string
	if more {
		c := pimhook.EncodeCursor(list[len(list)-1].Seq)
		next = &c
	}
	page := mapList(list, toDeliveryJSON)
	return writeJSON(w, http.StatusOK, struct {
		Data       []deliveryJSON `json:"data"`
		NextCursor *string        `json:"next_cursor"`
	}{page.Data, next})
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	d, err := s.Store.Delivery(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get delivery: %w", err)
	}
	attempts, err := s.Store.Attempts(r.Context(), d.ID)
	if err != nil {
		return fmt.Errorf("get delivery attempts: %w", err)
	}
	payload := d.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	return writeJSON(w, http.StatusOK, deliveryDetailJSON{
		deliveryJSON: toDeliveryJSON(d),
		Payload:      payload,
		Attempts:     mapList(attempts, toAttemptJSON).Data,
	})
}

// deliveryParams are the query parameters GET /v1/deliveries knows.
var deliveryParams = []string{"webhook_id", "app_id", "status", "since", "until", "limit", "cursor"}

// deliveryFilter reads the query of GET /v1/deliveries.
func deliveryFilter(q url.Values) (pimhook.DeliveryFilter, error) {
	f := pimhook.DeliveryFilter{WebhookID: q.Get("webhook_id"), AppID: q.Get("app_id")}
	if err := checkParams(q, deliveryParams); err != nil {
		return f, err
	}
	if v := q.Get("status"); v != "" {
		st, err := pimhook.ParseDeliveryStatus(v)
		if err != nil {
			return f, asField(err, "status")
		}
		f.Status = st
	}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	if f.Limit, err = limitParam(q); err != nil {
		return f, err
	}
	if v := q.Get("cursor"); v != "" {
		seq, err := pimhook.DecodeCursor(v, "cursor")
		if err != nil {
			return f, err
		}
		f.BeforeSeq = seq
	}
	return f, nil
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// nonZero returns a pointer to v, or nil for the zero value, so that an
// absent value encodes as null.
func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}
