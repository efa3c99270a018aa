package pimhook

import (
	"errors"
	"fmt"
)

// Kind is the class of an error. Each kind maps to exactly one HTTP status in
// the http package; nothing else chooses a status.
type Kind string

// Error kinds.
const (
	KindInvalid      Kind = "invalid"      // the request is malformed or breaks a rule (400/422)
	KindUnauthorized Kind = "unauthorized" // no or bad credentials (401)
	KindForbidden    Kind = "forbidden"    // authenticated but not allowed (403)
	KindNotFound     Kind = "not_found"    // the named resource does not exist for this company (404)
	KindConflict     Kind = "conflict"     // the request conflicts with current state (409)
	KindTooLarge     Kind = "too_large"    // the body exceeds a size limit (413)
	KindUnsupported  Kind = "unsupported"  // unsupported media type (415)
	KindUnavailable  Kind = "unavailable"  // shutting down or overloaded (503)
	KindBadGateway   Kind = "bad_gateway"  // a receiver pimhook called for the client failed (502)
	KindTimeout      Kind = "timeout"      // a receiver pimhook called for the client did not answer in time (504)
	KindInternal     Kind = "internal"     // anything unexpected (500); users see "internal error"
)

// Stable error codes. A client may switch on them; they never change meaning.
const (
	CodeInternal          = "internal_error"
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeNotFound          = "not_found"
	CodeRouteNotFound     = "route_not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeMalformedJSON     = "malformed_json"
	CodeUnknownField      = "unknown_field"
	CodeWrongType         = "wrong_type"
	CodeBodyTooLarge      = "body_too_large"
	CodeBodyIncomplete    = "body_incomplete"
	CodeUnsupportedMedia  = "unsupported_media_type"
	CodeValidation        = "validation_failed"
	CodeInvalidURL        = "invalid_callback_url"
	CodeTargetForbidden   = "target_forbidden"
	CodeInvalidRetry      = "invalid_retry_policy"
	CodeInvalidTimeout    = "invalid_timeout"
	CodeInvalidEvent      = "invalid_event"
	CodeInvalidAction     = "invalid_action"
	CodeInvalidEntityType = "invalid_entity_type"
	CodeMissingEntityID   = "missing_entity_id"
	CodeInvalidFormat     = "invalid_format"
	CodeInvalidCursor     = "invalid_cursor"
	CodeInvalidQuery      = "invalid_query_parameter"
	CodeAppNotFound       = "app_not_found"
	CodeAppInUse          = "app_in_use"
	CodeAlreadyExists     = "already_exists"
	CodeWebhookNotFound   = "webhook_not_found"
	CodeDeliveryNotFound  = "delivery_not_found"
	CodeCompanyNotFound   = "company_not_found"
	CodeIdempotencyReuse  = "idempotency_key_reused"
	CodeRevisionConflict  = "revision_conflict"
	CodeShuttingDown      = "shutting_down"
	CodeDuplicateKey      = "duplicate_product_key"
	CodeInvalidJobRun     = "invalid_job_run"
	CodeJobNotFound       = "job_not_found"
	CodeInvalidFilter     = "invalid_filter"
	CodeInvalidReducer    = "invalid_reducer"
	CodeBulkOpNotFound    = "bulk_operation_not_found"
	CodeNoProducts        = "no_products_matched"
	CodeBulkOpFailed      = "bulk_operation_failed"      // the receiver answered with a non-2xx status
	CodeBulkOpTimeout     = "bulk_operation_timeout"     // the receiver did not answer in time
	CodeBulkOpUnreachable = "bulk_operation_unreachable" // no answer: connection refused, DNS, TLS
)

// Error is the one error type of pimhook. Code is stable and specific;
// Message is for humans; Field names the offending input field, if any.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// WithField returns a copy of e that names field as the offending input.
func (e *Error) WithField(field string) *Error {
	c := *e
	c.Field = field
	return &c
}

// Errorf returns an *Error of the given kind and code with a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns a KindInvalid *Error about one input field.
func FieldError(code, field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the kind of err: the Kind of the first *Error in its
// chain, or KindInternal.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// IsNotFound reports whether err is a KindNotFound *Error.
func IsNotFound(err error) bool { return err != nil && ErrorKind(err) == KindNotFound }
