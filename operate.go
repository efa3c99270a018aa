package pimhook

import (
	"context"
	"time"
)

// DefaultDisableAfter is how long a webhook may fail without a single
// success before pimhook disables it, as Svix and Stripe do after days of
// failures.
const DefaultDisableAfter = 5 * 24 * time.Hour

// MaxRecover is how many deliveries one recover call re-queues at most.
const MaxRecover = 10000

// OperateStore is what operating pimhook needs from the store: re-queueing
// deliveries, webhook health, the attempts behind reports, and queue
// statistics. Store includes it.
type OperateStore interface {
	// RequeueDeliveries puts deliveries of a company back at the tail of
	// their apps' queues, in the order given: each becomes pending again
	// with a new Seq above every Seq its app has had, NextAttemptAt now,
	// no FinishedAt, LastError and LastStatusCode kept, Attempts kept (the
	// next attempt's number follows on), its ID (the webhook-id) kept. A
	// delivery that is already pending is left where it is and returned
	// as it is. An ID of no delivery of the company is a KindNotFound
	// CodeDeliveryNotFound, and then nothing is re-queued. It returns the
	// deliveries in the order given.
	RequeueDeliveries(ctx context.Context, companyID string, ids []string, now time.Time) ([]*Delivery, error)

	// DisableFailingWebhook disables a webhook that has failed, without a
	// success, since at least failingFor before now: it sets Enabled false
	// and DisabledReason, and adds an error-log entry (source
	// ErrorSourceHealth, the webhook's ID, reason as its error) in the same
	// transaction. It reports whether it disabled the webhook; a webhook
	// that is healthy, failing for less long, already disabled or gone is
	// left alone (false, nil).
	//
	// A webhook's failing time is kept by the store: RecordAttempt of a
	// failed attempt sets it to the attempt's StartedAt unless already set;
	// of a succeeded attempt clears it; UpdateWebhook that enables a
	// disabled webhook clears it. Webhook.FailingSince shows it.
	DisableFailingWebhook(ctx context.Context, companyID, id string, failingFor time.Duration, now time.Time, reason string) (bool, error)

	// AttemptsBetween calls fn with every attempt of the company started in
	// [f.Start, f.End), of f.AppID's and f.WebhookID's deliveries when
	// they are set, in StartedAt order, until fn returns an error.
	AttemptsBetween(ctx context.Context, f AttemptFilter, fn func(AttemptRecord) error) error

	// QueueStats returns, for every app with pending deliveries, how many
	// there are and when the oldest of them was created.
	QueueStats(ctx context.Context) ([]AppQueue, error)

	// Prune deletes what the retention setting no longer keeps: final
	// (succeeded, failed, skipped) deliveries that finished before
	// before, with their attempts, and error-log entries that occurred
	// before it. Pending deliveries are never deleted. It deletes in
	// bounded batches, so that it never holds the store long, and returns
	// how many deliveries it deleted.
	Prune(ctx context.Context, before time.Time) (int, error)
}

// AttemptFilter selects the attempts of a report.
type AttemptFilter struct {
	CompanyID string
	AppID     string // "" for all
	WebhookID string // "" for all
	Start     time.Time
	End       time.Time
}

// AttemptRecord is one attempt with the app and webhook of its delivery.
type AttemptRecord struct {
	DeliveryID string
	AppID      string
	WebhookID  string
	Number     int
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int // 0 when no response came
	Succeeded  bool
}

// AppQueue is the backlog of one app.
type AppQueue struct {
	AppID   string
	Pending int
	Oldest  time.Time // CreatedAt of the oldest pending delivery
}
