package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// Config configures a Dispatcher.
type Config struct {
	// Catalog is the store, behind its cache.
	Catalog *Catalog
	// Jobs keeps the state of data jobs, for RunJob; nil leaves job runs
	// unavailable.
	Jobs pimhook.JobStore
	// Client makes the HTTP attempts.
	Client *Client
	// Clock tells the time and schedules retries; nil means the system clock.
	Clock pimhook.Clock
	// Logger receives one line per failed attempt (info) and per attempt (debug).
	Logger *slog.Logger
	// SharedWorkers is the size of the general shared pool: how many apps it
	// serves at once. Default 32.
	SharedWorkers int
	// TypeWorkers gives app types a shared pool of their own, of the given
	// size; shared apps of other types use the general pool.
	TypeWorkers map[string]int
	// BatchSize is how many pending deliveries of an app are read at once
	// (the first read of a turn asks for fewer). Default 64.
	BatchSize int
	// Turn is how many deliveries an app sends before its worker moves on
	// to the next app waiting in the pool, if one waits. Default 32.
	Turn int
	// DrainTimeout bounds how long Stop lets in-flight attempts finish.
	// Default 10s.
	DrainTimeout time.Duration
	// Jitter returns a number in [0, 0.1) that stretches exponential
	// backoff; nil means random.
	Jitter func() float64
	// Metrics records what the dispatcher does; nil records nothing.
	Metrics *Metrics
	// DisableAfter is how long a webhook may fail without a success before
	// it is disabled. Zero means pimhook.DefaultDisableAfter; negative
	// never disables.
	DisableAfter time.Duration
	// Leaser, when set, makes the dispatcher one node of a cluster that
	// shares the store: apps are served under leases (see lease.go).
	Leaser pimhook.Leaser
	// Node names this node in leases; default the host name and process ID.
	Node string
	// LeaseTTL is how long an app lease lasts unrenewed: how soon the apps
	// of a dead node are taken over. Default pimhook.DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Filters runs webhooks' filters and reducers at fan-out and bulk
	// operation filters; nil means an engine with default limits, owned
	// (and closed) by the dispatcher.
	Filters *filter.Engine
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = pimhook.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SharedWorkers <= 0 {
		c.SharedWorkers = 32
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.Turn <= 0 {
		c.Turn = 32
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = pimhook.DefaultLeaseTTL
	}
	if c.Node == "" {
		host, _ := os.Hostname()
		c.Node = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), pimhook.NewID("n", time.Now())[len("n_")+10:])
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = pimhook.DefaultDisableAfter
	}
	if c.Jitter == nil {
		c.Jitter = func() float64 { return rand.Float64() * 0.1 }
	}
	return c
}

func (c Config) validate() error {
	if c.Catalog == nil || c.Client == nil {
		return errors.New("dispatch: Config needs a Catalog and a Client")
	}
	for t, n := range c.TypeWorkers {
		if n <= 0 {
			return fmt.Errorf("dispatch: pool for app type %q must have at least one worker", t)
		}
	}
	return nil
}

// Attribute keys of log lines.
const (
	attrApp      = "app_id"
	attrDelivery = "delivery_id"
	attrWebhook  = "webhook_id"
	attrAttempt  = "attempt"
	attrStatus   = "status_code"
	attrError    = "error"
	attrDuration = "duration"
	attrRetry    = "retry"
)

// Dispatcher sends deliveries. Each app is served by one worker at a time,
// so its deliveries go out one after another in queue order; a failing head
// delivery holds its own app and nothing else. Apps are served from pools:
// a dedicated app has a worker of its own, a shared app uses the pool of its
// app type if there is one, else the general shared pool.
//
// The dispatcher never scans: the store tells it at Start which apps have
// pending work, Ingest wakes the apps it filled, and a timer wakes an app
// whose head delivery waits for a retry.
type Dispatcher struct {
	cfg    Config
	cat    *Catalog
	store  pimhook.Store
	jobs   pimhook.JobStore
	client *Client
	clock  pimhook.Clock
	log    *slog.Logger

	shaper     *shaper
	ownFilters bool
	// submitter takes successful attempts' records without waiting, when
	// the store can and no other node shares the queues.
	submitter pimhook.AttemptSubmitter

	// sendCtx is cancelled when Stop runs out of patience with in-flight
	// attempts.
	sendCtx    context.Context
	cancelSend context.CancelFunc

	mu       sync.Mutex
	apps     map[string]*appState // apps that are queued, running or waiting
	pools    map[string]*pool
	stopping bool
	workers  sync.WaitGroup

	// healthChecked is when each failing webhook was last checked against
	// DisableAfter. It has a lock of its own: every successful attempt
	// touches it, and need not wait on the dispatcher's.
	healthMu      sync.Mutex
	healthChecked map[string]time.Time
}

// appState is where one app stands. Its fields are guarded by Dispatcher.mu.
// The state machine is what guarantees one worker per app: only a worker
// that popped the app from a ready queue (idle/waiting -> queued -> running)
// serves it, and only that worker moves it on.
type appState struct {
	id    string
	pool  string // the pool it was last assigned to
	state appRun
	dirty bool        // work arrived while running: look again before going idle
	stop  func() bool // cancels the retry timer of a waiting app
	// lease is the app's lease in cluster mode, nil when not held;
	// leaseUntil is when it ends by this node's clock.
	lease      *pimhook.Lease
	leaseUntil time.Time
}

type appRun int

const (
	appIdle    appRun = iota // nothing to do, as far as we know
	appQueued                // in a pool's ready queue
	appRunning               // a worker is serving it
	appWaiting               // its head delivery waits for a retry time
)

// Pool names: the general shared pool, the shared pool of an app type
// (typePool + app type), and the one-worker pool of a dedicated app
// (dedicatedPool + app ID).
const (
	sharedPool    = "shared"
	typePool      = "type:"
	dedicatedPool = "app:"
)

// pool is a set of workers and the FIFO of apps ready for them.
type pool struct {
	name  string
	ready []*appState
	cond  *sync.Cond
}

// New returns a Dispatcher; Start sets it going.
func New(cfg Config) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ownFilters := cfg.Filters == nil
	if ownFilters {
		cfg.Filters = filter.New(filter.Config{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var submitter pimhook.AttemptSubmitter
	if sub, ok := cfg.Catalog.Store.(pimhook.AttemptSubmitter); ok && cfg.Leaser == nil {
		submitter = sub
	}
	return &Dispatcher{
		submitter: submitter,
		cfg:       cfg, cat: cfg.Catalog, store: cfg.Catalog, jobs: cfg.Jobs, client: cfg.Client,
		clock: cfg.Clock, log: cfg.Logger,
		shaper: newShaper(cfg.Filters, cfg.Clock), ownFilters: ownFilters,
		sendCtx: ctx, cancelSend: cancel,
		apps:          map[string]*appState{},
		pools:         map[string]*pool{},
		healthChecked: map[string]time.Time{},
	}, nil
}

// Ready reports an error once the dispatcher is stopping: its workers no
// longer take work.
func (d *Dispatcher) Ready() error {
	if d.isStopping() {
		return errors.New("the dispatcher is stopping")
	}
	return nil
}

// Filters returns the engine that runs filters and reducers, for the APIs
// that vet and validate them.
func (d *Dispatcher) Filters() *filter.Engine { return d.cfg.Filters }

// Start wakes every app that has pending deliveries in the store.
func (d *Dispatcher) Start(ctx context.Context) error {
	// In a cluster, listen first, so that no signal falls between the read
	// of pending apps and the listening.
	if d.cfg.Leaser != nil {
		if err := d.watchWork(d.sendCtx); err != nil {
			return fmt.Errorf("dispatch: start: %w", err)
		}
	}
	ids, err := d.store.PendingApps(ctx)
	if err != nil {
		return fmt.Errorf("dispatch: start: %w", err)
	}
	for _, id := range ids {
		d.Notify(id)
	}
	return nil
}

// Stop stops taking work, lets in-flight attempts finish for at most
// DrainTimeout (or until ctx is done), then cancels what is left. Cancelled
// attempts are not recorded: their deliveries stay pending and go out after
// a restart.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	d.stopping = true
	for _, st := range d.apps {
		if st.stop != nil {
			st.stop()
		}
	}
	for _, p := range d.pools {
		p.cond.Broadcast()
	}
	d.mu.Unlock()

	done := make(chan struct{})
	go func() { d.workers.Wait(); close(done) }()
	timer := time.NewTimer(d.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
	d.cancelSend() // ends attempts still in flight, if any
	<-done
	d.releaseAll()
	d.client.CloseIdleConnections()
	if d.ownFilters {
		d.cfg.Filters.Close()
	}
	return nil
}

// Notify tells the dispatcher that an app may have new pending deliveries.
func (d *Dispatcher) Notify(appID string) {
	pool := d.poolName(appID)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return
	}
	st, ok := d.apps[appID]
	if !ok {
		st = &appState{id: appID}
		d.apps[appID] = st
	}
	st.pool = pool
	switch st.state {
	case appIdle:
		d.enqueueLocked(st)
	case appRunning:
		st.dirty = true
	case appQueued, appWaiting:
		// Queued apps will read their queue; waiting ones must wait for
		// their head delivery anyway.
	}
}

// enqueueLocked puts st at the tail of its pool's ready queue.
func (d *Dispatcher) enqueueLocked(st *appState) {
	p := d.poolLocked(st.pool)
	st.state = appQueued
	p.ready = append(p.ready, st)
	p.cond.Signal()
}

// poolName picks the pool of an app from its current settings. An app that
// cannot be read (deleted, store trouble) is served by the general pool,
// which still drains or skips its deliveries.
func (d *Dispatcher) poolName(appID string) string {
	a, err := d.cat.app(context.Background(), appID)
	if err != nil {
		return sharedPool
	}
	if a.Worker == pimhook.WorkerDedicated {
		return dedicatedPool + a.ID
	}
	if _, ok := d.cfg.TypeWorkers[a.AppType]; ok {
		return typePool + a.AppType
	}
	return sharedPool
}

// poolLocked returns the named pool, creating it and its workers on first use.
func (d *Dispatcher) poolLocked(name string) *pool {
	if p, ok := d.pools[name]; ok {
		return p
	}
	size := d.cfg.SharedWorkers
	if rest, ok := strings.CutPrefix(name, dedicatedPool); ok && rest != "" {
		size = 1
	} else if rest, ok := strings.CutPrefix(name, typePool); ok {
		size = d.cfg.TypeWorkers[rest]
	}
	p := &pool{name: name, cond: sync.NewCond(&d.mu)}
	d.pools[name] = p
	for range size {
		d.workers.Add(1)
		go d.work(p)
	}
	return p
}

// work is one worker of a pool: it serves ready apps one at a time.
func (d *Dispatcher) work(p *pool) {
	defer d.workers.Done()
	d.mu.Lock()
	for {
		for len(p.ready) == 0 && !d.stopping {
			p.cond.Wait()
		}
		if d.stopping {
			d.mu.Unlock()
			return
		}
		st := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		st.state, st.dirty = appRunning, false
		d.mu.Unlock()

		next, wait := d.serve(st, p)

		d.mu.Lock()
		switch {
		case d.stopping:
			st.state = appIdle
		case next == serveLost:
			// Another node serves the app; it will hear of new work too.
			st.state, st.dirty = appIdle, false
			delete(d.apps, st.id)
		case next == serveWait:
			st.state = appWaiting
			st.stop = d.clock.AfterFunc(wait, func() { d.wake(st) })
		case next == serveMore:
			d.enqueueLocked(st)
		case st.dirty:
			d.enqueueLocked(st)
		default:
			// Idle apps are forgotten until their next Notify, and a
			// dedicated worker ends with its app's work, so that deleted
			// or reassigned apps leave nothing behind.
			st.state = appIdle
			delete(d.apps, st.id)
			if st.pool == p.name && strings.HasPrefix(p.name, dedicatedPool) && len(p.ready) == 0 {
				delete(d.pools, p.name)
				d.mu.Unlock()
				return
			}
		}
	}
}

// wake ends the wait of an app whose head delivery is due.
func (d *Dispatcher) wake(st *appState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st.state == appWaiting && !d.stopping {
		st.stop = nil
		d.enqueueLocked(st)
	}
}

type serveResult int

const (
	serveIdle serveResult = iota // the queue is empty
	serveMore                    // the turn is over but work remains
	serveWait                    // the head delivery waits for a retry
	serveLost                    // another node holds the app's lease
)

// storeRetry is how long an app waits after the store failed it.
const storeRetry = time.Second

// firstRead is how many pending deliveries the first read of a turn, and a
// read after a retry, ask for.
const firstRead = 8

// serve sends an app's pending deliveries in queue order for one turn. A
// turn ends after cfg.Turn deliveries only when other apps wait for a
// worker of the pool.
//
// With a store that takes records without waiting (pimhook.AttemptSubmitter),
// a successful attempt's record is written while the next delivery goes
// out. serve then reads the queue past the last delivery it sent, and waits
// for every record of the turn before it lets the app go, so the queue
// another worker reads is never behind what was sent. A crash can lose the
// last records: those deliveries are sent again after the restart, after
// their first arrival, as at-least-once delivery allows.
func (d *Dispatcher) serve(st *appState, p *pool) (res serveResult, wait time.Duration) {
	ctx, appID := d.sendCtx, st.id
	recs := &pendingRecords{}
	defer func() {
		if err := d.flushRecords(ctx, recs); err != nil && res != serveLost {
			res, wait = serveWait, storeRetry
		}
	}()
	sent := 0
	// after is the Seq of the last delivery sent and done with: the queue
	// is read past it, whether or not its record is written yet.
	var after int64
	// The first read of a turn is short: an app woken for a retry of its
	// head needs only the head, and reading a full batch of payloads for
	// every retry of a backlogged app is most of what a backlog costs.
	limit := min(d.cfg.BatchSize, firstRead)
	for {
		if _, _, ok, err := d.ensureLease(ctx, st, 0); err != nil {
			if ctx.Err() == nil {
				d.log.Error("claim app", attrApp, appID, attrError, err)
			}
			return serveWait, storeRetry
		} else if !ok {
			return serveLost, 0
		}
		// Bound what is held for records long written: the older half,
		// whose batches have committed by now as a rule, so that this
		// seldom waits.
		if len(recs.list) >= 2*d.cfg.BatchSize {
			if err := d.flushOldest(ctx, recs, d.cfg.BatchSize); err != nil {
				return serveWait, storeRetry
			}
		}
		batch, err := d.store.PendingDeliveries(ctx, appID, after, limit)
		if err != nil {
			d.log.Error("read app queue", attrApp, appID, attrError, err)
			return serveWait, storeRetry
		}
		// A short batch is the whole queue as of the read: once it is
		// sent, only work that arrived since (which marks the app dirty)
		// can be left.
		drained := len(batch) < limit
		limit = d.cfg.BatchSize
		for _, dl := range batch {
			if d.isStopping() {
				return serveIdle, 0
			}
			if sent >= d.cfg.Turn && d.othersWait(p) {
				return serveMore, 0
			}
			if wait := dl.NextAttemptAt.Sub(d.clock.Now()); wait > 0 {
				return serveWait, wait
			}
			retry, err := d.attempt(ctx, st, dl, recs)
			if errors.Is(err, errLeaseLost) || pimhook.ErrorCode(err) == pimhook.CodeLeaseLost {
				d.log.Warn("app lease lost", attrApp, appID, attrDelivery, dl.ID)
				d.mu.Lock()
				st.lease = nil
				d.mu.Unlock()
				return serveLost, 0
			}
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error("record attempt", attrApp, appID, attrDelivery, dl.ID, attrError, err)
				}
				return serveWait, storeRetry
			}
			sent++
			if retry {
				if wait := dl.NextAttemptAt.Sub(d.clock.Now()); wait > 0 {
					return serveWait, wait
				}
				// The head is due again already: read the queue from
				// the head. Its record was written after every earlier
				// one (the writer keeps their order), and flush makes
				// sure none of those failed.
				if err := d.flushRecords(ctx, recs); err != nil {
					return serveWait, storeRetry
				}
				drained, after, limit = false, 0, min(d.cfg.BatchSize, firstRead)
				break
			}
			after = dl.Seq
		}
		if !drained {
			continue
		}
		d.mu.Lock()
		dirty := st.dirty
		st.dirty = false
		d.mu.Unlock()
		if dirty {
			continue
		}
		if err := d.flushRecords(ctx, recs); err != nil {
			return serveWait, storeRetry
		}
		d.releaseLease(st)
		return serveIdle, 0
	}
}

// othersWait reports whether apps wait for a worker of pool p.
func (d *Dispatcher) othersWait(p *pool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(p.ready) > 0
}

// pendingRecords are the records of an app's successful attempts submitted
// in the current turn and not yet known to be written, oldest first.
type pendingRecords struct{ list []pendingRecord }

type pendingRecord struct {
	dl   *pimhook.Delivery
	a    *pimhook.Attempt
	wait func() error
}

// flushRecords waits for every pending record. A record that failed is
// written again before anything else happens to the app: its attempt
// happened, and a delivery left pending behind later ones that went out
// would be sent again after them. It returns the first failure of a second
// try, after logging it.
func (d *Dispatcher) flushRecords(ctx context.Context, recs *pendingRecords) error {
	return d.flushOldest(ctx, recs, len(recs.list))
}

// flushOldest is flushRecords for the n oldest pending records.
func (d *Dispatcher) flushOldest(ctx context.Context, recs *pendingRecords, n int) error {
	var first error
	for _, r := range recs.list[:n] {
		if r.wait() == nil {
			continue
		}
		if err := d.store.RecordAttempt(context.WithoutCancel(ctx), r.dl, r.a); err != nil && first == nil {
			first = err
			if ctx.Err() == nil {
				d.log.Error("record attempt", attrApp, r.dl.AppID, attrDelivery, r.dl.ID, attrError, err)
			}
		}
	}
	left := copy(recs.list, recs.list[n:])
	clear(recs.list[left:])
	recs.list = recs.list[:left]
	return first
}

func (d *Dispatcher) isStopping() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// attempt makes one attempt of dl and records it. retry reports that dl is
// still pending (its NextAttemptAt says when to try again).
func (d *Dispatcher) attempt(ctx context.Context, st *appState, dl *pimhook.Delivery, recs *pendingRecords) (retry bool, err error) {
	// In a cluster every write, skips included, is made under the lease.
	l, _, ok, err := d.ensureLease(ctx, st, 0)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, errLeaseLost
	}
	if d.cfg.Leaser != nil {
		ctx = pimhook.WithLease(ctx, l)
	}
	w, err := d.cat.webhook(ctx, dl.CompanyID, dl.WebhookID)
	if pimhook.IsNotFound(err) {
		return false, d.skip(ctx, dl, skippedDeleted)
	}
	if err != nil {
		return false, err
	}
	if !w.Enabled {
		return false, d.skip(ctx, dl, skippedDisabled)
	}
	co, err := d.cat.company(ctx, dl.CompanyID)
	if err != nil {
		return false, err
	}

	timeout := w.EffectiveTimeout(co.Preferences)
	if d.cfg.Leaser != nil {
		// The attempt must end while the lease is held: a lease shorter
		// than the timeout cuts the attempt at its end (a timeout).
		l, until, ok, err := d.ensureLease(ctx, st, timeout)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, errLeaseLost
		}
		ctx = pimhook.WithLease(ctx, l)
		if left := until.Sub(d.clock.Now()) - d.leaseMargin(); left < timeout {
			timeout = left
		}
		if timeout <= 0 {
			return false, errLeaseLost
		}
	}
	n := dl.Attempts + 1
	start := d.clock.Now()
	resp := d.client.Send(ctx, Request{
		URL:       w.URL,
		MsgID:     dl.ID,
		Body:      withAttempt(dl.Payload, n),
		Secrets:   []string{w.Secret},
		Headers:   w.Headers,
		Timeout:   timeout,
		Timestamp: start,
	})
	if ctx.Err() != nil {
		// Cancelled by Stop: the attempt did not really happen.
		return false, ctx.Err()
	}
	now := d.clock.Now()
	a := &pimhook.Attempt{
		ID: pimhook.NewID(pimhook.PrefixAttempt, now), DeliveryID: dl.ID, Number: n,
		StartedAt: start, Duration: resp.Duration, StatusCode: resp.StatusCode,
	}
	dl.Attempts, dl.LastStatusCode, dl.UpdatedAt = n, resp.StatusCode, now
	ok = resp.Err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300
	var disable string
	switch {
	case ok:
		a.Succeeded = true
		dl.Status, dl.LastError, dl.FinishedAt = pimhook.DeliverySucceeded, "", &now
	case resp.StatusCode == http.StatusGone:
		a.Error = "receiver answered 410 Gone: webhook disabled"
		disable = a.Error
		dl.Status, dl.FinishedAt = pimhook.DeliveryFailed, &now
	case resp.ErrCode == ErrCodeTargetForbidden || resp.ErrCode == ErrCodeInvalidRequest:
		a.Error = resp.Err.Error()
		dl.Status, dl.FinishedAt = pimhook.DeliveryFailed, &now
	case ShouldRetry(w.RetryPolicy, w.RetryLimit, n):
		delay := RetryDelay(w.RetryPolicy, w.MinimumRetryInterval, n, d.cfg.Jitter())
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			delay = RetryAfterDelay(delay, resp.RetryAfter)
		}
		dl.NextAttemptAt = now.Add(delay)
		retry = true
	default:
		dl.Status, dl.FinishedAt = pimhook.DeliveryFailed, &now
	}
	if !ok {
		if a.Error == "" {
			a.Error = attemptError(resp)
		}
		a.ResponseBody = string(resp.Body)
		dl.LastError = a.Error
	}
	if ok && d.submitter != nil {
		// The attempt happened: its record is written even if Stop
		// cancels sending meanwhile. The body is not needed any more, and
		// is not held while the record waits.
		dl.Payload = nil
		recs.list = append(recs.list, pendingRecord{dl: dl, a: a, wait: d.submitter.SubmitAttempt(context.WithoutCancel(ctx), dl, a)})
	} else if err := d.store.RecordAttempt(ctx, dl, a); err != nil {
		// Failures are recorded before the health check that reads them.
		return false, fmt.Errorf("record attempt: %w", err)
	}
	d.logAttempt(dl, a, retry)
	d.cfg.Metrics.attempted(dl, resp, retry, now)
	if ok {
		d.forgetHealth(w.ID)
	} else if disable == "" {
		d.checkHealth(ctx, w)
	}
	if disable != "" {
		if err := d.disable(ctx, w, disable); err != nil {
			d.log.Error("disable webhook", attrWebhook, w.ID, attrError, err)
		}
	}
	return retry, nil
}

func attemptError(r Response) string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return fmt.Sprintf("receiver answered %d %s", r.StatusCode, http.StatusText(r.StatusCode))
}

func (d *Dispatcher) logAttempt(dl *pimhook.Delivery, a *pimhook.Attempt, retry bool) {
	attrs := []any{attrApp, dl.AppID, attrWebhook, dl.WebhookID, attrDelivery, dl.ID, attrAttempt, a.Number, attrStatus, a.StatusCode, attrDuration, a.Duration}
	if a.Succeeded {
		d.log.Debug("delivered", attrs...)
		return
	}
	attrs = append(attrs, attrError, a.Error, attrRetry, retry)
	d.log.Info("attempt failed", attrs...)
}

// Why a delivery was skipped.
const (
	skippedDisabled = "webhook disabled"
	skippedDeleted  = "webhook deleted"
)

// skip ends a delivery whose webhook no longer wants it.
func (d *Dispatcher) skip(ctx context.Context, dl *pimhook.Delivery, reason string) error {
	now := d.clock.Now()
	dl.Status, dl.LastError, dl.UpdatedAt, dl.FinishedAt = pimhook.DeliverySkipped, reason, now, &now
	// A skip made no request, so it records no attempt.
	if err := d.store.RecordAttempt(ctx, dl, nil); err != nil {
		return fmt.Errorf("skip delivery: %w", err)
	}
	d.cfg.Metrics.skipped()
	return nil
}

// disable turns a webhook off after its receiver said it is gone.
func (d *Dispatcher) disable(ctx context.Context, w *pimhook.Webhook, reason string) error {
	return d.cat.DisableWebhook(ctx, w.CompanyID, w.ID, reason, d.clock.Now())
}
