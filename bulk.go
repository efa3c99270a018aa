package pimhook

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Bulk operation limits.
const (
	MaxOperationNameLength = 100
	// MaxTriggerProducts is how many product names one trigger may name or
	// match.
	MaxTriggerProducts = 100000
)

// BulkOperation is a named external operation (reference document 4): a
// user triggers it on a set of products and pimhook POSTs
// {operationName, productUniqueNames} to its URL, signed like every webhook.
// Several operations may share one URL; the name tells them apart.
type BulkOperation struct {
	CompanyID string            `json:"-"`
	Name      string            `json:"operation_name"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Secret    string            `json:"-"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Normalize fills defaults and validates op.
func (op *BulkOperation) Normalize() error {
	op.Name = strings.TrimSpace(op.Name)
	if err := ValidateOperationName(op.Name); err != nil {
		return err
	}
	if err := validateURL(op.URL, "url"); err != nil {
		return err
	}
	if op.Headers == nil {
		op.Headers = map[string]string{}
	}
	if err := validateHeaders(op.Headers); err != nil {
		return err
	}
	if op.Secret == "" {
		op.Secret = NewSecret()
	}
	return nil
}

// ValidateOperationName checks an operation's unique system name: 1 to 100
// letters, digits, '-', '_' or '.', so that it is safe in a URL path.
func ValidateOperationName(name string) error {
	if name == "" {
		return FieldError(CodeValidation, "operation_name", "operation_name is required")
	}
	if len(name) > MaxOperationNameLength {
		return FieldError(CodeValidation, "operation_name", "operation_name is longer than %d characters", MaxOperationNameLength)
	}
	for _, c := range name {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return FieldError(CodeValidation, "operation_name", "operation_name may hold letters, digits, '-', '_' and '.' only, got %q", name)
		}
	}
	return nil
}

// BulkRunStatus is the outcome of one trigger.
type BulkRunStatus string

// Bulk run outcomes.
const (
	BulkRunSucceeded BulkRunStatus = "succeeded" // the receiver answered 2xx in time
	BulkRunFailed    BulkRunStatus = "failed"    // it answered with another status
	BulkRunTimeout   BulkRunStatus = "timeout"   // it did not answer in time
	BulkRunError     BulkRunStatus = "error"     // no answer: refused, DNS, TLS, forbidden target
)

// BulkRun is the record of one trigger of a bulk operation.
type BulkRun struct {
	ID            string        `json:"id"` // also the webhook-id header of the call
	CompanyID     string        `json:"-"`
	OperationName string        `json:"operation_name"`
	URL           string        `json:"url"`
	Products      []string      `json:"product_unique_names"`
	ProductCount  int           `json:"product_count"`
	Status        BulkRunStatus `json:"status"`
	StatusCode    int           `json:"status_code,omitempty"` // the receiver's, 0 when none came
	Error         string        `json:"error,omitempty"`       // why it failed, for people
	TimeoutMS     int           `json:"timeout_ms"`
	DurationMS    float64       `json:"duration_ms"`
	StartedAt     time.Time     `json:"started_at"`
}

// BulkPayload is the body pimhook POSTs to a bulk operation's URL.
type BulkPayload struct {
	OperationName      string   `json:"operationName"`
	ProductUniqueNames []string `json:"productUniqueNames"`
}

// BulkTrigger is what a user triggers an operation on: an explicit list
// of product names, or a filter evaluated over the company's stored
// products. Exactly one is given.
type BulkTrigger struct {
	ProductUniqueNames []string `json:"product_unique_names,omitempty"`
	Filter             *Filter  `json:"filter,omitempty"`
}

// BulkStore is the storage of bulk operations and their runs; Store
// includes it.
type BulkStore interface {
	// CreateBulkOperation stores a new operation; KindConflict
	// (CodeAlreadyExists) if the company has one of that name.
	CreateBulkOperation(ctx context.Context, op *BulkOperation) error
	// BulkOperation returns one operation; KindNotFound
	// (CodeBulkOpNotFound) if there is none.
	BulkOperation(ctx context.Context, companyID, name string) (*BulkOperation, error)
	// BulkOperations lists a company's operations by name.
	BulkOperations(ctx context.Context, companyID string) ([]*BulkOperation, error)
	// UpdateBulkOperation replaces an operation's URL and headers.
	UpdateBulkOperation(ctx context.Context, op *BulkOperation) error
	// DeleteBulkOperation removes an operation; its runs stay.
	DeleteBulkOperation(ctx context.Context, companyID, name string) error
	// RecordBulkRun stores a run and, when entry is not nil, its error-log
	// entry, atomically.
	RecordBulkRun(ctx context.Context, run *BulkRun, entry *ErrorLogEntry) error
	// BulkRuns lists the runs of an operation, newest first: those with an
	// ID below beforeID when it is not empty, at most limit (capped at
	// MaxPage).
	BulkRuns(ctx context.Context, companyID, name, beforeID string, limit int) ([]*BulkRun, error)
	// Products calls fn with every live (not deleted) product of the
	// company, in ID order, until fn returns an error.
	Products(ctx context.Context, companyID string, fn func(id string, data json.RawMessage) error) error
}
