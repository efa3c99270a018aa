package dispatch

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pimhook/pimhook"
)

// Catalog is a pimhook.Store that keeps companies, API keys, apps and
// webhooks in memory. Ingest reads every webhook of a company for every
// event, and the workers read a webhook for every attempt: both must not cost
// a query. Writes go through to the store and drop what they change from the
// cache, so a webhook created by one request is seen by the next.
//
// Methods of the pimhook.Store interface return copies, so callers may
// modify them; the unexported lookups used on the hot path do not copy.
type Catalog struct {
	pimhook.Store

	mu        sync.RWMutex
	keys      map[string]*pimhook.Company // API key hash -> company
	companies map[string]*pimhook.Company // id -> company
	apps      map[string]*pimhook.App     // id -> app
	hooks     map[string]*companyWebhooks // company id -> webhooks
	gen       uint64                      // bumped by every invalidation, so a stale load is not cached
	// uncached reads every lookup from the store: see NewClusterCatalog.
	uncached bool
}

type companyWebhooks struct {
	list []*pimhook.Webhook
	byID map[string]*pimhook.Webhook

	// idx indexes list for fan-out, built on first use (see
	// Dispatcher.subscriptions). It holds the webhooks' apps, so a write
	// to an app drops its company's webhooks too.
	idxMu sync.Mutex
	idx   *subscriptionIndex
}

var _ pimhook.Store = (*Catalog)(nil)

// NewCatalog returns a Catalog in front of s.
func NewCatalog(s pimhook.Store) *Catalog {
	return &Catalog{
		Store:     s,
		keys:      map[string]*pimhook.Company{},
		companies: map[string]*pimhook.Company{},
		apps:      map[string]*pimhook.App{},
		hooks:     map[string]*companyWebhooks{},
	}
}

// NewClusterCatalog returns a Catalog in front of s that caches nothing:
// when several nodes share the store, a webhook, app or company one node
// writes must count on every node at once, and a cache per process would
// not know of the others' writes. Each ingest then reads the company's
// webhooks and each attempt its webhook from the store.
func NewClusterCatalog(s pimhook.Store) *Catalog {
	c := NewCatalog(s)
	c.uncached = true
	return c
}

// CompanyByAPIKey returns the company of a key hash from the cache.
func (c *Catalog) CompanyByAPIKey(ctx context.Context, hash string) (*pimhook.Company, error) {
	co, err := readThrough(c, c.keys, hash, func() (*pimhook.Company, error) { return c.Store.CompanyByAPIKey(ctx, hash) })
	if err != nil {
		return nil, err
	}
	cp := *co
	return &cp, nil
}

// readThrough returns m[key], loading and caching it on a miss. A load that
// raced with an invalidation is returned but not cached.
func readThrough[V any](c *Catalog, m map[string]V, key string, load func() (V, error)) (V, error) {
	if c.uncached {
		return load()
	}
	c.mu.RLock()
	v, ok := m[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.gen == gen {
		m[key] = v
	}
	c.mu.Unlock()
	return v, nil
}

// Company returns a company from the cache.
func (c *Catalog) Company(ctx context.Context, id string) (*pimhook.Company, error) {
	co, err := c.company(ctx, id)
	if err != nil {
		return nil, err
	}
	cp := *co
	return &cp, nil
}

func (c *Catalog) company(ctx context.Context, id string) (*pimhook.Company, error) {
	return readThrough(c, c.companies, id, func() (*pimhook.Company, error) { return c.Store.Company(ctx, id) })
}

// UpdateCompany writes through and drops the company and its keys from the cache.
func (c *Catalog) UpdateCompany(ctx context.Context, co *pimhook.Company) error {
	defer c.invalidate(func() {
		delete(c.companies, co.ID)
		clear(c.keys)
	})
	return c.Store.UpdateCompany(ctx, co)
}

// App returns an app of a company from the cache.
func (c *Catalog) App(ctx context.Context, companyID, id string) (*pimhook.App, error) {
	a, err := c.app(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.CompanyID != companyID {
		return nil, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeAppNotFound, "app %q not found", id)
	}
	cp := *a
	return &cp, nil
}

// AppByID returns an app from the cache.
func (c *Catalog) AppByID(ctx context.Context, id string) (*pimhook.App, error) {
	a, err := c.app(ctx, id)
	if err != nil {
		return nil, err
	}
	cp := *a
	return &cp, nil
}

func (c *Catalog) app(ctx context.Context, id string) (*pimhook.App, error) {
	return readThrough(c, c.apps, id, func() (*pimhook.App, error) { return c.Store.AppByID(ctx, id) })
}

// CreateApp writes through and drops its company's webhooks from the cache.
func (c *Catalog) CreateApp(ctx context.Context, a *pimhook.App) error {
	defer c.invalidate(func() { delete(c.apps, a.ID); delete(c.hooks, a.CompanyID) })
	return c.Store.CreateApp(ctx, a)
}

// UpdateApp writes through and drops the app, and its company's webhooks
// (whose fan-out index holds it), from the cache.
func (c *Catalog) UpdateApp(ctx context.Context, a *pimhook.App) error {
	defer c.invalidate(func() { delete(c.apps, a.ID); delete(c.hooks, a.CompanyID) })
	return c.Store.UpdateApp(ctx, a)
}

// DeleteApp writes through and drops the app and its company's webhooks
// from the cache.
func (c *Catalog) DeleteApp(ctx context.Context, companyID, id string) error {
	defer c.invalidate(func() { delete(c.apps, id); delete(c.hooks, companyID) })
	return c.Store.DeleteApp(ctx, companyID, id)
}

// Webhook returns a webhook of a company from the cache.
func (c *Catalog) Webhook(ctx context.Context, companyID, id string) (*pimhook.Webhook, error) {
	w, err := c.webhook(ctx, companyID, id)
	if err != nil {
		return nil, err
	}
	return cloneWebhook(w), nil
}

// Webhooks lists a company's webhooks from the cache.
func (c *Catalog) Webhooks(ctx context.Context, companyID string) ([]*pimhook.Webhook, error) {
	cw, err := c.webhooks(ctx, companyID)
	if err != nil {
		return nil, err
	}
	out := make([]*pimhook.Webhook, len(cw.list))
	for i, w := range cw.list {
		out[i] = cloneWebhook(w)
	}
	return out, nil
}

func (c *Catalog) webhook(ctx context.Context, companyID, id string) (*pimhook.Webhook, error) {
	if c.uncached {
		return c.Store.Webhook(ctx, companyID, id)
	}
	cw, err := c.webhooks(ctx, companyID)
	if err != nil {
		return nil, err
	}
	w, ok := cw.byID[id]
	if !ok {
		return nil, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeWebhookNotFound, "webhook %q not found", id)
	}
	return w, nil
}

func (c *Catalog) webhooks(ctx context.Context, companyID string) (*companyWebhooks, error) {
	return readThrough(c, c.hooks, companyID, func() (*companyWebhooks, error) {
		list, err := c.Store.Webhooks(ctx, companyID)
		if err != nil {
			return nil, err
		}
		cw := &companyWebhooks{list: list, byID: make(map[string]*pimhook.Webhook, len(list))}
		for _, w := range list {
			cw.byID[w.ID] = w
		}
		return cw, nil
	})
}

// CreateWebhook writes through and drops the company's webhooks from the cache.
func (c *Catalog) CreateWebhook(ctx context.Context, w *pimhook.Webhook) error {
	defer c.invalidate(func() { delete(c.hooks, w.CompanyID) })
	return c.Store.CreateWebhook(ctx, w)
}

// UpdateWebhook writes through and drops the company's webhooks from the cache.
func (c *Catalog) UpdateWebhook(ctx context.Context, w *pimhook.Webhook) error {
	defer c.invalidate(func() { delete(c.hooks, w.CompanyID) })
	return c.Store.UpdateWebhook(ctx, w)
}

// DisableWebhook writes through and drops the company's webhooks from the cache.
func (c *Catalog) DisableWebhook(ctx context.Context, companyID, id, reason string, at time.Time) error {
	defer c.invalidate(func() { delete(c.hooks, companyID) })
	return c.Store.DisableWebhook(ctx, companyID, id, reason, at)
}

// DisableFailingWebhook writes through and drops the company's webhooks
// from the cache.
func (c *Catalog) DisableFailingWebhook(ctx context.Context, companyID, id string, failingFor time.Duration, now time.Time, reason string) (bool, error) {
	off, err := c.Store.DisableFailingWebhook(ctx, companyID, id, failingFor, now, reason)
	if off || err != nil {
		c.invalidate(func() { delete(c.hooks, companyID) })
	}
	return off, err
}

// DeleteWebhook writes through and drops the company's webhooks from the cache.
func (c *Catalog) DeleteWebhook(ctx context.Context, companyID, id string) error {
	defer c.invalidate(func() { delete(c.hooks, companyID) })
	return c.Store.DeleteWebhook(ctx, companyID, id)
}

// invalidate runs drop under the lock after a write, whether or not the write
// succeeded: a failed write may still have changed the store.
func (c *Catalog) invalidate(drop func()) {
	c.mu.Lock()
	c.gen++
	drop()
	c.mu.Unlock()
}

func cloneWebhook(w *pimhook.Webhook) *pimhook.Webhook {
	cp := *w
	cp.EntityTypes = slices.Clone(w.EntityTypes)
	cp.Events = slices.Clone(w.Events)
	cp.Fields = slices.Clone(w.Fields)
	cp.Headers = maps.Clone(w.Headers)
	cp.FilterReducers = make([]pimhook.FilterReducer, len(w.FilterReducers))
	for i, fr := range w.FilterReducers {
		cp.FilterReducers[i] = pimhook.FilterReducer{EventSlug: fr.EventSlug, Filter: cloneFilter(fr.Filter), Reducer: slices.Clone(fr.Reducer)}
	}
	if w.FailingSince != nil {
		t := *w.FailingSince
		cp.FailingSince = &t
	}
	return &cp
}

func cloneFilter(f *pimhook.Filter) *pimhook.Filter {
	if f == nil {
		return nil
	}
	cp := *f
	cp.Conditions = make([]*pimhook.Filter, len(f.Conditions))
	for i, c := range f.Conditions {
		cp.Conditions[i] = cloneFilter(c)
	}
	if f.Conditions == nil {
		cp.Conditions = nil
	}
	return &cp
}
