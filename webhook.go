package pimhook

import (
	"crypto/rand"
	"encoding/base64"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Retry policies (reference document 3).
const (
	RetryNone        = "no_retry"
	RetryLinear      = "linear"
	RetryExponential = "exponential"
)

// Retry defaults and limits. The defaults follow what Svix and Stripe users
// are used to: a handful of retries spread over roughly an hour.
const (
	DefaultRetryPolicy          = RetryExponential
	DefaultMinimumRetryInterval = 5.0 // seconds
	DefaultRetryLimit           = 8
	MaxRetryLimit               = 50
	MaxRetryInterval            = 24 * 60 * 60.0 // seconds; also the cap of one exponential step
)

// Payload formats.
const (
	FormatEvent = "event" // the document-1 event payload, one delivery per event
	FormatJob   = "job"   // the document-2 job payload, one delivery per job run (chunked)
)

// Job webhook batch sizes: how many products one job delivery carries at most.
const (
	DefaultBatchSize = 500
	MaxBatchSize     = 10000
)

// SecretPrefix starts every signing secret, as Standard Webhooks writes them.
const SecretPrefix = "whsec_"

// Webhook is a subscription of an app: where to send, what it wants, how to
// send it and how hard to try.
type Webhook struct {
	ID        string `json:"id"`
	CompanyID string `json:"company_id"`
	AppID     string `json:"app_id"`
	Name      string `json:"name"`
	URL       string `json:"callback_url"`

	// What it wants. Empty EntityTypes or Events mean all.
	EntityTypes []string `json:"entity_types"` // endpoint names: products, brands
	Events      []Action `json:"events"`
	Fields      []string `json:"fields"` // monitored fields, dotted paths
	// JobID binds the webhook to a data job: it hears that job's runs
	// (ADDED, UPDATED, REMOVED products) and no entity events.
	JobID string `json:"job_id"`

	// How it wants it.
	Format            string            `json:"format"`
	BatchSize         int               `json:"batch_size"` // job format: products per delivery
	IncludeEntityData bool              `json:"include_entity_data"`
	Headers           map[string]string `json:"headers"`
	// FilterReducers are the filters and reducers of the webhook, one per
	// event slug (reference document 5).
	FilterReducers []FilterReducer `json:"filter_reducers"`

	// How hard to try.
	RetryPolicy          string  `json:"retry_policy"`
	MinimumRetryInterval float64 `json:"minimum_retry_interval"` // seconds
	RetryLimit           int     `json:"retry_limit"`            // retries after the first attempt
	TimeoutMS            int     `json:"timeout_ms"`             // 0: the company's preference

	Enabled        bool   `json:"enabled"`
	DisabledReason string `json:"disabled_reason,omitempty"`
	// FailingSince is when the webhook's current run of failed attempts
	// began; nil while its last attempt succeeded. The store keeps it.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	Secret       string     `json:"-"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewSecret returns a fresh signing secret, "whsec_" + base64 of 32 random bytes.
func NewSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("pimhook: crypto/rand failed: " + err.Error())
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// reservedHeaders may not be set by a webhook: pimhook owns them.
var reservedHeaders = []string{
	"Content-Type", "Content-Length", "Host", "User-Agent", "Transfer-Encoding", "Connection",
	"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
}

// Normalize fills defaults and validates w. It checks the callback URL's
// form; whether its target may be reached is the dispatcher's question.
func (w *Webhook) Normalize() error {
	w.Name = strings.TrimSpace(w.Name)
	if len(w.Name) > 200 {
		return FieldError(CodeValidation, "name", "name is longer than 200 characters")
	}
	if err := ValidateCallbackURL(w.URL); err != nil {
		return err
	}
	if w.Name == "" {
		w.Name = w.URL
	}
	types := make([]string, 0, len(w.EntityTypes))
	for _, t := range w.EntityTypes {
		ep, err := EndpointName(t)
		if err != nil {
			return FieldError(CodeInvalidEntityType, "entity_types", "%s", err.(*Error).Message)
		}
		if !slices.Contains(types, ep) {
			types = append(types, ep)
		}
	}
	w.EntityTypes = types
	events := make([]Action, 0, len(w.Events))
	for _, a := range w.Events {
		n, err := ParseAction(string(a))
		if err != nil {
			return FieldError(CodeInvalidAction, "events", "%s", err.(*Error).Message)
		}
		if !slices.Contains(events, n) {
			events = append(events, n)
		}
	}
	slices.Sort(events)
	w.Events = events
	fields := make([]string, 0, len(w.Fields))
	for _, f := range w.Fields {
		f = strings.TrimSpace(f)
		if f == "" || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
			return FieldError(CodeValidation, "fields", "monitored field %q is not a field name or dotted path", f)
		}
		if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	w.Fields = fields
	w.JobID = strings.TrimSpace(w.JobID)
	if len(w.JobID) > 255 || !Printable(w.JobID) {
		return FieldError(CodeValidation, "job_id", "job_id must be at most 255 printable characters")
	}
	switch w.Format {
	case "":
		w.Format = FormatEvent
		if w.JobID != "" {
			w.Format = FormatJob
		}
	case FormatEvent, FormatJob:
	default:
		return FieldError(CodeInvalidFormat, "format", "format must be %q or %q, got %q", FormatEvent, FormatJob, w.Format)
	}
	if (w.Format == FormatJob) != (w.JobID != "") {
		return FieldError(CodeInvalidFormat, "format", "format %q goes with a job_id, and a webhook with a job_id uses format %q", FormatJob, FormatJob)
	}
	if w.Format == FormatJob {
		if w.BatchSize == 0 {
			w.BatchSize = DefaultBatchSize
		}
		if w.BatchSize < 1 || w.BatchSize > MaxBatchSize {
			return FieldError(CodeValidation, "batch_size", "batch_size must be between 1 and %d, got %d", MaxBatchSize, w.BatchSize)
		}
	} else {
		// batch_size means nothing to an event webhook; a webhook unbound
		// from its job keeps none.
		w.BatchSize = 0
	}
	if err := w.normalizeFilterReducers(); err != nil {
		return err
	}
	if w.Headers == nil {
		w.Headers = map[string]string{}
	}
	if err := validateHeaders(w.Headers); err != nil {
		return err
	}
	switch w.RetryPolicy {
	case "":
		w.RetryPolicy = DefaultRetryPolicy
	case RetryNone, RetryLinear, RetryExponential:
	default:
		return FieldError(CodeInvalidRetry, "retry_policy", "retry_policy must be %q, %q or %q, got %q", RetryNone, RetryLinear, RetryExponential, w.RetryPolicy)
	}
	if w.RetryLimit < 0 || w.RetryLimit > MaxRetryLimit {
		return FieldError(CodeInvalidRetry, "retry_limit", "retry_limit must be between 0 and %d, got %d", MaxRetryLimit, w.RetryLimit)
	}
	if w.MinimumRetryInterval < 0 || w.MinimumRetryInterval > MaxRetryInterval || math.IsNaN(w.MinimumRetryInterval) {
		return FieldError(CodeInvalidRetry, "minimum_retry_interval", "minimum_retry_interval must be between 0 and %v seconds, got %v", MaxRetryInterval, w.MinimumRetryInterval)
	}
	if w.RetryPolicy == RetryNone {
		w.RetryLimit = 0
	}
	if w.TimeoutMS < 0 || w.TimeoutMS > MaxTimeoutMS {
		return FieldError(CodeInvalidTimeout, "timeout_ms", "timeout_ms must be between 1 and %d (0 or absent: the company's preference), got %d", MaxTimeoutMS, w.TimeoutMS)
	}
	return nil
}

// ValidateCallbackURL checks that u is an absolute http(s) URL with a host.
func ValidateCallbackURL(u string) error { return validateURL(u, "callback_url") }

// validateURL checks the URL u given as field: http or https, with a host
// and without credentials.
func validateURL(u, field string) error {
	if u == "" {
		return FieldError(CodeInvalidURL, field, "%s is required", field)
	}
	if len(u) > 2048 {
		return FieldError(CodeInvalidURL, field, "%s is longer than 2048 characters", field)
	}
	p, err := url.Parse(u)
	if err != nil {
		return FieldError(CodeInvalidURL, field, "%s is not a URL: %v", field, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return FieldError(CodeInvalidURL, field, "%s must use http or https, got %q", field, p.Scheme)
	}
	if p.Hostname() == "" {
		return FieldError(CodeInvalidURL, field, "%s has no host", field)
	}
	if p.User != nil {
		return FieldError(CodeInvalidURL, field, "%s must not carry credentials; use headers", field)
	}
	return nil
}

// validateHeaders checks the extra headers of a webhook or bulk operation.
func validateHeaders(headers map[string]string) error {
	// Header names are case-insensitive on the wire: two keys that differ
	// only in case would overwrite each other when sent.
	names := make(map[string]string, len(headers))
	for k, v := range headers {
		if other, ok := names[http.CanonicalHeaderKey(k)]; ok {
			return FieldError(CodeValidation, "headers", "headers %q and %q are the same header", other, k)
		}
		names[http.CanonicalHeaderKey(k)] = k
		if !validHeaderName(k) {
			return FieldError(CodeValidation, "headers", "%q is not a valid header name", k)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return FieldError(CodeValidation, "headers", "header %q has a control character in its value", k)
		}
		if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(k)) {
			return FieldError(CodeValidation, "headers", "header %q is set by pimhook and cannot be overridden", k)
		}
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for _, c := range k {
		if c > 127 || !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("!#$%&'*+.^`|~", c)) {
			return false
		}
	}
	return true
}

// EffectiveTimeout is the timeout of one attempt: the webhook's own, else the
// company's preference, else DefaultTimeoutMS; never above MaxTimeoutMS.
func (w *Webhook) EffectiveTimeout(p Preferences) time.Duration {
	ms := w.TimeoutMS
	if ms <= 0 {
		ms = p.TimeoutMS()
	}
	return time.Duration(min(ms, MaxTimeoutMS)) * time.Millisecond
}

// Subscribes reports whether w subscribes to entity events of this entity
// type and action, enabled or not. Job webhooks hear job runs only.
func (w *Webhook) Subscribes(entityType string, action Action) bool {
	if w.JobID != "" {
		return false
	}
	if len(w.EntityTypes) > 0 && !slices.Contains(w.EntityTypes, entityType) {
		return false
	}
	return len(w.Events) == 0 || slices.Contains(w.Events, action)
}

// WantsJob reports whether w subscribes to this action in runs of job jobID.
func (w *Webhook) WantsJob(jobID string, action Action) bool {
	return w.Enabled && w.JobID == jobID && (len(w.Events) == 0 || slices.Contains(w.Events, action))
}

// MonitoredChanges returns the changes among changes that w monitors: all of
// them when w monitors no fields. A monitored field matches a change of the
// field itself, of anything nested under it, or of an object containing it.
func (w *Webhook) MonitoredChanges(changes []FieldChange) []FieldChange {
	if len(w.Fields) == 0 {
		return changes
	}
	var out []FieldChange
	for _, c := range changes {
		for _, f := range w.Fields {
			if pathOverlaps(f, c.Name) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func pathOverlaps(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || strings.HasPrefix(b, a) && b[len(a)] == '.'
}
