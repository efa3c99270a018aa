package http

import (
	"fmt"
	"net/http"

	"github.com/pimhook/pimhook"
)

// errorLogParams are the query parameters of GET /v1/error-log.
var errorLogParams = []string{"source", "webhook_id", "event_id", "operation_name", "since", "until", "limit", "cursor"}

// listErrorLog pages through the company's error log, newest first.
func (s *Server) listErrorLog(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkParams(q, errorLogParams); err != nil {
		return err
	}
	f := pimhook.ErrorLogFilter{
		CompanyID:     companyFrom(r.Context()).ID,
		WebhookID:     q.Get("webhook_id"),
		EventID:       q.Get("event_id"),
		OperationName: q.Get("operation_name"),
	}
	if v := q.Get("source"); v != "" {
		src, err := pimhook.ParseErrorSource(v)
		if err != nil {
			return asField(err, "source")
		}
		f.Source = src
	}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	if f.BeforeID, err = cursorParam(q); err != nil {
		return err
	}
	f.Limit = min(limit+1, pimhook.MaxPage)
	list, err := s.Store.ErrorLog(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list error log: %w", err)
	}
	return writeJSON(w, http.StatusOK, idPage(list, limit, func(e *pimhook.ErrorLogEntry) string { return e.ID }, func(e *pimhook.ErrorLogEntry) *pimhook.ErrorLogEntry { return e }))
}
