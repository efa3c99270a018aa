package http

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pimhook/pimhook"
)

// Operator redelivers and recovers deliveries. The dispatcher implements it.
type Operator interface {
	Redeliver(ctx context.Context, companyID, deliveryID string) (*pimhook.Delivery, error)
	Recover(ctx context.Context, companyID, webhookID string, since, until time.Time) ([]*pimhook.Delivery, error)
}

func (s *Server) operator() (Operator, error) {
	if s.Operator == nil {
		return nil, pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "deliveries cannot be re-queued on this server")
	}
	return s.Operator, nil
}

// redeliver queues a new attempt of a delivery at the tail of its app's
// queue; the receiver sees the same webhook-id.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) error {
	op, err := s.operator()
	if err != nil {
		return err
	}
	d, err := op.Redeliver(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("redeliver: %w", err)
	}
	return writeJSON(w, http.StatusAccepted, toDeliveryJSON(d))
}

// recoverInput is the body of POST /v1/webhooks/{id}/recover.
type recoverInput struct {
	Since *time.Time `json:"since"`
	Until *time.Time `json:"until"`
}

// recoverWebhook re-queues the failed and skipped deliveries of a webhook
// created in [since, until), in their original order.
func (s *Server) recoverWebhook(w http.ResponseWriter, r *http.Request) error {
	var in recoverInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	if in.Since == nil {
		return pimhook.FieldError(pimhook.CodeValidation, "since", "since is required: an RFC 3339 time such as 2025-01-31T12:00:00Z")
	}
	var until time.Time
	if in.Until != nil {
		until = *in.Until
		if !until.After(*in.Since) {
			return pimhook.FieldError(pimhook.CodeValidation, "until", "until must be after since")
		}
	}
	op, err := s.operator()
	if err != nil {
		return err
	}
	ds, err := op.Recover(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"), in.Since.UTC(), until.UTC())
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	list := mapList(ds, toDeliveryJSON)
	return writeJSON(w, http.StatusAccepted, struct {
		Recovered int            `json:"recovered"`
		Data      []deliveryJSON `json:"data"`
	}{len(ds), list.Data})
}

// reportParams are the query parameters of the response-time report.
var reportParams = []string{"start_date", "end_date", "app_id", "webhook_id", "interval"}

// responseTimeReport answers the response-time report of reference
// document 5, with percentiles per webhook beside it.
func (s *Server) responseTimeReport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkParams(q, reportParams); err != nil {
		return err
	}
	f := pimhook.AttemptFilter{CompanyID: companyFrom(r.Context()).ID, AppID: q.Get("app_id"), WebhookID: q.Get("webhook_id")}
	var err error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"start_date", &f.Start}, {"end_date", &f.End}} {
		if q.Get(p.name) == "" {
			return pimhook.FieldError(pimhook.CodeInvalidQuery, p.name, "%s is required: an RFC 3339 time such as 2025-01-31T12:00:00Z", p.name)
		}
		if *p.dst, err = timeParam(q, p.name); err != nil {
			return err
		}
	}
	interval, err := pimhook.ParseReportInterval(q.Get("interval"))
	if err != nil {
		return err
	}
	b, err := pimhook.NewReportBuilder(f.Start, f.End, interval)
	if err != nil {
		return err
	}
	if err := s.Store.AttemptsBetween(r.Context(), f, func(a pimhook.AttemptRecord) error { b.Add(a); return nil }); err != nil {
		return fmt.Errorf("response-time report: %w", err)
	}
	return writeJSON(w, http.StatusOK, b.Report())
}

// readyz answers 200 when the store is reachable and the workers run.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	check := func() error {
		if err := s.Store.Ping(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if s.Ready != nil {
			return s.Ready()
		}
		return nil
	}
	if err := check(); err != nil {
		s.Logger.WarnContext(r.Context(), "not ready", logKeyError, err)
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
