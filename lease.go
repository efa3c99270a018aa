package pimhook

import (
	"context"
	"time"
)

// Lease defaults.
const (
	DefaultLeaseTTL = 10 * time.Second
	MinLeaseTTL     = time.Second
)

// CodeLeaseLost is the code of a write refused because the node's lease on
// the app ended: another node may serve the app now.
const CodeLeaseLost = "lease_lost"

// Lease is a node's claim on an app: while it holds an unexpired lease, no
// other node serves the app. Token grows with every new claim of the app,
// whoever makes it, so a write made under an old token can be told from one
// made under the current one (fencing).
type Lease struct {
	AppID   string
	Node    string
	Token   int64
	Expires time.Time // as the database's clock saw it when granted or renewed
}

// Leaser hands out app leases to the nodes of a cluster and tells them when
// apps get work. The PostgreSQL store implements it; a store used by one
// process needs none.
type Leaser interface {
	// AcquireApp claims appID for node for ttl. It fails (ok false) while
	// another node holds an unexpired lease; a node that holds the lease
	// already gets it renewed, with its token unchanged.
	AcquireApp(ctx context.Context, appID, node string, ttl time.Duration) (l Lease, ok bool, err error)
	// RenewApps extends for ttl the leases node holds on apps and returns
	// the ones it still held; a lease another node took since is not among
	// them.
	RenewApps(ctx context.Context, node string, apps []string, ttl time.Duration) ([]Lease, error)
	// ReleaseApp ends a lease early, if it is still the current one, and
	// signals the app's pending work to every node, so that another may
	// take it at once.
	ReleaseApp(ctx context.Context, l Lease) error
	// OrphanedApps lists the apps that have pending deliveries and no
	// unexpired lease: apps of a node that died, or whose signal was lost.
	OrphanedApps(ctx context.Context) ([]string, error)
	// ListenWork calls fn with an app's ID each time work is queued for it
	// (ingest, job runs, requeue, release), on any node, until ctx ends.
	// It returns once it listens; delivery of signals is best effort, which
	// OrphanedApps makes up for.
	ListenWork(ctx context.Context, fn func(appID string)) error
}

type leaseKey struct{}

// WithLease returns ctx carrying the lease its writes are made under.
// RecordAttempt under a lease writes only while that lease is the app's
// current, unexpired one; otherwise it returns a KindConflict
// CodeLeaseLost error and writes nothing.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the lease ctx carries, if any.
func LeaseFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok
}
