package pimhook

import (
	"context"
	"time"
)

// IngestStatus tells what became of one posted event.
type IngestStatus string

// Ingest statuses.
const (
	IngestAccepted  IngestStatus = "accepted"  // stored, with its deliveries
	IngestUnchanged IngestStatus = "unchanged" // an update that changed nothing: no deliveries
	IngestDuplicate IngestStatus = "duplicate" // its id was seen before: the first result stands
)

// IngestResult is the outcome of one posted event.
type IngestResult struct {
	EventID    string       `json:"id"`
	Event      string       `json:"event"` // the event name, e.g. "products.updated"
	Revision   int64        `json:"revision"`
	Deliveries int          `json:"deliveries"`
	Status     IngestStatus `json:"status"`
	// FilterErrors are the webhooks whose filter or reducer failed on the
	// event, which therefore got no delivery; each is in the error log too.
	FilterErrors []FilterError `json:"filter_errors,omitempty"`
}

// FilterError is a filter or reducer of one webhook that failed on an event.
type FilterError struct {
	WebhookID string `json:"webhook_id"`
	Message   string `json:"message"`
}

// Decision is what change detection and fan-out made of one event.
type Decision struct {
	// Entity is the entity's new state; nil leaves the stored state as it is.
	Entity *Entity
	// Unchanged marks an event that changed nothing; it yields no deliveries.
	Unchanged bool
	// Deliveries are appended to their apps' queues in this order. The store
	// assigns their Seq.
	Deliveries []*Delivery
	// Errors are error-log entries stored with the event: filters and
	// reducers that failed on it.
	Errors []*ErrorLogEntry
}

// Decider decides one event, given its entity's stored state (nil when the
// entity was never seen). It fills ev's EffectiveAction, Revision and
// ChangedFields. An error rejects the whole ingest call.
type Decider func(ev *Event, stored *Entity) (Decision, error)

// Store is the storage contract. The SQLite and PostgreSQL stores implement
// it and pass the conformance suite in package storetest.
//
// Lookups of something absent return a KindNotFound *Error with the
// resource's code (CodeAppNotFound, ...). Every method is safe for
// concurrent use.
type Store interface {
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store; in-flight writes finish first.
	Close() error

	// CreateCompany stores a new company; KindConflict if its ID exists.
	CreateCompany(ctx context.Context, c *Company) error
	Company(ctx context.Context, id string) (*Company, error)
	Companies(ctx context.Context) ([]*Company, error)
	UpdateCompany(ctx context.Context, c *Company) error
	// CreateAPIKey stores a key's hash for its company.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// CompanyByAPIKey returns the company owning the key with this hash;
	// KindUnauthorized when there is none.
	CompanyByAPIKey(ctx context.Context, hash string) (*Company, error)

	// CreateApp stores a new app. A second default app of one company is a
	// KindConflict.
	CreateApp(ctx context.Context, a *App) error
	App(ctx context.Context, companyID, id string) (*App, error)
	// AppByID finds an app whatever its company; for the dispatcher.
	AppByID(ctx context.Context, id string) (*App, error)
	// DefaultApp returns the company's default app, KindNotFound if none.
	DefaultApp(ctx context.Context, companyID string) (*App, error)
	Apps(ctx context.Context, companyID string) ([]*App, error)
	UpdateApp(ctx context.Context, a *App) error
	// DeleteApp removes an app; KindConflict (CodeAppInUse) while webhooks
	// or pending deliveries belong to it.
	DeleteApp(ctx context.Context, companyID, id string) error

	CreateWebhook(ctx context.Context, w *Webhook) error
	Webhook(ctx context.Context, companyID, id string) (*Webhook, error)
	// Webhooks lists a company's webhooks, oldest first.
	Webhooks(ctx context.Context, companyID string) ([]*Webhook, error)
	UpdateWebhook(ctx context.Context, w *Webhook) error
	// DisableWebhook turns a webhook off with a reason, touching nothing
	// else, so that a concurrent edit of the webhook is not undone.
	DisableWebhook(ctx context.Context, companyID, id, reason string, at time.Time) error
	// DeleteWebhook removes a webhook. Its pending deliveries stay; the
	// dispatcher marks them skipped when it reaches them.
	DeleteWebhook(ctx context.Context, companyID, id string) error

	// Ingest applies events of one company in order, atomically: either every
	// event and all its deliveries are durable when it returns nil, or none
	// is. For each event it finds an earlier event of the company with the
	// same ID (then the earlier result stands, with status duplicate; a
	// different Fingerprint is a KindConflict CodeIdempotencyReuse), else
	// loads the entity, calls decide, and stores the event, the entity, the
	// deliveries and the decision's error-log entries (filled in completely
	// by decide). Events of one entity are applied in the order received,
	// across concurrent calls too. Implementations batch concurrent calls
	// into shared transactions (group commit).
	Ingest(ctx context.Context, companyID string, events []*Event, decide Decider) ([]IngestResult, error)
	// Entity returns an entity's stored state.
	Entity(ctx context.Context, companyID, entityType, id string) (*Entity, error)

	// Delivery returns one delivery of a company.
	Delivery(ctx context.Context, companyID, id string) (*Delivery, error)
	// Attempts lists a delivery's attempts, first first.
	Attempts(ctx context.Context, deliveryID string) ([]*Attempt, error)
	// Deliveries lists deliveries matching f, newest (highest Seq) first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error)

	// PendingApps lists the apps that have pending deliveries.
	PendingApps(ctx context.Context) ([]string, error)
	// PendingDeliveries returns up to limit pending deliveries of an app
	// with Seq above afterSeq, in queue order (ascending Seq).
	PendingDeliveries(ctx context.Context, appID string, afterSeq int64, limit int) ([]*Delivery, error)
	// RecordAttempt stores an attempt and the delivery's new state (Status,
	// Attempts, NextAttemptAt, LastStatusCode, LastError, UpdatedAt,
	// FinishedAt) atomically. A failed attempt also enters the error log,
	// with the delivery's webhook and event, the attempt's number, status,
	// error and response body. A nil attempt updates the delivery only, for
	// a delivery skipped without a request. Implementations batch concurrent
	// calls.
	RecordAttempt(ctx context.Context, d *Delivery, a *Attempt) error

	BulkStore
	ErrorLogStore
	OperateStore
}

// AttemptSubmitter is a Store that can take the record of an attempt
// without the caller waiting for it to be durable, so that a worker may send
// an app's next delivery while the last one's record is being written.
// Records are applied in the order they were submitted, and in order with
// the caller's RecordAttempt calls.
type AttemptSubmitter interface {
	// SubmitAttempt queues RecordAttempt(ctx, d, a). It must not be given
	// d or a again until wait has returned, which reports what
	// RecordAttempt would have.
	SubmitAttempt(ctx context.Context, d *Delivery, a *Attempt) (wait func() error)
}
