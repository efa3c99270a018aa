package pimhook

import (
	"context"
	"time"
)

// ErrorSource is what an error-log entry comes from.
type ErrorSource string

// Error sources.
const (
	ErrorSourceWebhook ErrorSource = "webhook"        // a failed delivery attempt
	ErrorSourceBulk    ErrorSource = "bulk_operation" // a failed bulk operation trigger
	ErrorSourceFilter  ErrorSource = "filter"         // a filter or reducer that failed on an event
	ErrorSourceHealth  ErrorSource = "webhook_health" // a webhook disabled for failing too long
)

// ParseErrorSource validates a source name.
func ParseErrorSource(s string) (ErrorSource, error) {
	switch e := ErrorSource(s); e {
	case ErrorSourceWebhook, ErrorSourceBulk, ErrorSourceFilter, ErrorSourceHealth:
		return e, nil
	}
	return "", Errorf(KindInvalid, CodeInvalidQuery, "source must be webhook, bulk_operation, filter or webhook_health, got %q", s)
}

// Check refuses an entry the error log cannot hold: one without an ID or
// with an unknown source.
func (e *ErrorLogEntry) Check() error {
	if e.ID == "" {
		return Errorf(KindInvalid, CodeValidation, "an error-log entry needs an ID")
	}
	if _, err := ParseErrorSource(string(e.Source)); err != nil {
		return Errorf(KindInvalid, CodeValidation, "error-log entry %q has an unknown source %q", e.ID, e.Source)
	}
	return nil
}

// ErrorLogEntry is one entry of a company's error log: what a receiver
// answered when it failed (its status and body, capped at ResponseBodyCap),
// or why a filter or reducer failed on an event.
type ErrorLogEntry struct {
	ID            string      `json:"id"`
	CompanyID     string      `json:"-"`
	Source        ErrorSource `json:"source"`
	OccurredAt    time.Time   `json:"occurred_at"`
	WebhookID     string      `json:"webhook_id,omitempty"`
	DeliveryID    string      `json:"delivery_id,omitempty"`
	EventID       string      `json:"event_id,omitempty"`
	OperationName string      `json:"operation_name,omitempty"`
	RunID         string      `json:"run_id,omitempty"`
	Attempt       int         `json:"attempt,omitempty"`
	StatusCode    int         `json:"status_code,omitempty"`
	Error         string      `json:"error,omitempty"`
	ResponseBody  string      `json:"response_body,omitempty"`
}

// ErrorLogFilter selects entries of one company's error log, newest first.
type ErrorLogFilter struct {
	CompanyID     string
	Source        ErrorSource
	WebhookID     string
	EventID       string
	OperationName string
	Since         time.Time // at or after; zero for no bound
	Until         time.Time // before; zero for no bound
	BeforeID      string    // cursor: only entries with an ID below it
	Limit         int       // at most this many; the store caps it at MaxPage
}

// ErrorLogStore is the storage of the error log; Store includes it.
// Failed attempts enter it through RecordAttempt, filter failures through
// Ingest, bulk operation failures through RecordBulkRun.
type ErrorLogStore interface {
	ErrorLog(ctx context.Context, f ErrorLogFilter) ([]*ErrorLogEntry, error)
}
