package sqlite

import (
	"bytes"
	"database/sql"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/pimhook/pimhook"
)

// Bounds of what queueCache holds.
const (
	queueCacheApp   = 64       // deliveries of one app
	queueCacheBytes = 16 << 20 // bytes in all, as counted by size
)

// size is about what a cached delivery holds in memory; an app known to
// the cache costs appCost besides.
func size(d *pimhook.Delivery) int {
	return 512 + len(d.Payload) + len(d.LastError)
}

const appCost = 256

// queueCache holds the pending deliveries of apps whose whole queue past
// some Seq is known, so that PendingDeliveries answers a worker without
// SQLite: in the throughput scenario that read cost a tenth of pimhook's
// CPU. It knows an app once a read returned the app's whole queue past a
// Seq. The writer keeps it after each commit: ingests add the deliveries
// they queued, attempt records update or remove theirs, and any other
// write (a job run, a redelivery, a requeue, a delete) makes it forget
// every app, whatever that write touched.
//
// A read that misses fills the cache only if no batch was applied since
// the read began (epoch), so a fill never undoes a newer change; a batch
// applied after a fill that already saw it changes nothing (applying it is
// idempotent).
type queueCache struct {
	mu    sync.Mutex
	epoch uint64 // batches applied
	apps  map[string]*appQueue
	bytes int // held, as counted by size

	hits atomic.Int64 // reads answered from memory
}

// appQueue is an app's known queue: every pending delivery with Seq above
// from, in Seq order.
type appQueue struct {
	from  int64
	list  []pimhook.Delivery
	bytes int
}

func newQueueCache() *queueCache {
	return &queueCache{apps: map[string]*appQueue{}}
}

// read returns up to limit of appID's pending deliveries past afterSeq, as
// copies of their own, if the cache knows them.
func (c *queueCache) read(appID string, afterSeq int64, limit int) ([]*pimhook.Delivery, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.apps[appID]
	if q == nil || afterSeq < q.from {
		return nil, false
	}
	i := sort.Search(len(q.list), func(i int) bool { return q.list[i].Seq > afterSeq })
	c.hits.Add(1)
	n := min(limit, len(q.list)-i)
	ds := make([]*pimhook.Delivery, n)
	for j := range n {
		ds[j] = owned(&q.list[i+j])
	}
	return ds, true
}

// owned returns a copy of d that shares no memory with it, so that neither
// the cache nor a caller can change what the other holds.
func owned(d *pimhook.Delivery) *pimhook.Delivery {
	o := *d
	if len(d.Payload) > 0 {
		o.Payload = bytes.Clone(d.Payload)
	}
	if d.FinishedAt != nil {
		f := *d.FinishedAt
		o.FinishedAt = &f
	}
	return &o
}

// now returns the epoch a read begins in.
func (c *queueCache) now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// fill records ds as appID's whole queue past afterSeq, read in epoch,
// unless a batch was applied since.
func (c *queueCache) fill(appID string, afterSeq int64, ds []*pimhook.Delivery, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch || len(ds) > queueCacheApp {
		return
	}
	q := &appQueue{from: afterSeq, list: make([]pimhook.Delivery, 0, len(ds)), bytes: appCost}
	for _, d := range ds {
		q.list = append(q.list, *owned(d))
		q.bytes += size(d)
	}
	c.forget(appID)
	if c.bytes+q.bytes > queueCacheBytes {
		return
	}
	c.apps[appID] = q
	c.bytes += q.bytes
}

// forget drops what the cache knows of appID. The caller holds mu.
func (c *queueCache) forget(appID string) {
	if q := c.apps[appID]; q != nil {
		c.bytes -= q.bytes
		delete(c.apps, appID)
	}
}

// queueChange is what one committed write request did to the app queues:
// nil for a write the cache does not follow, which makes it forget all.
type queueChange func(c *queueCache)

// apply applies the changes of a committed batch, in commit order.
func (c *queueCache) apply(changes []queueChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for _, ch := range changes {
		if ch == nil {
			c.reset()
			continue
		}
		ch(c)
	}
}

// reset forgets every app. The caller holds mu.
func (c *queueCache) reset() {
	clear(c.apps)
	c.bytes = 0
}

// invalidate forgets every app, after a batch whose outcome is unknown.
func (c *queueCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.reset()
}

// queued adds a delivery an ingest stored as pending, as it was stored.
// The caller holds mu.
func (c *queueCache) queued(d pimhook.Delivery) {
	q := c.apps[d.AppID]
	if q == nil {
		return
	}
	if n := len(q.list); n > 0 && q.list[n-1].Seq >= d.Seq {
		return // a fill read it already
	}
	n := size(&d)
	if len(q.list) >= queueCacheApp || c.bytes+n > queueCacheBytes {
		c.forget(d.AppID)
		return
	}
	q.list = append(q.list, d)
	q.bytes += n
	c.bytes += n
}

// recorded applies a recorded attempt's new state of a delivery of appID:
// it leaves the queue unless it is still pending. The caller holds mu.
func (c *queueCache) recorded(appID string, st deliveryState) {
	q := c.apps[appID]
	if q == nil {
		return
	}
	i := slices.IndexFunc(q.list, func(d pimhook.Delivery) bool { return d.ID == st.id })
	if i < 0 {
		if st.status == pimhook.DeliveryPending {
			// A finished delivery, or one at or below from, made pending
			// again: where it goes in the queue is not known here.
			c.forget(appID)
		}
		return
	}
	n := size(&q.list[i])
	q.bytes -= n
	c.bytes -= n
	if st.status != pimhook.DeliveryPending {
		q.list = slices.Delete(q.list, i, i+1)
		return
	}
	st.applyTo(&q.list[i])
	n = size(&q.list[i])
	q.bytes += n
	c.bytes += n
	if c.bytes > queueCacheBytes {
		c.forget(appID)
	}
}

// deliveryState is what recording an attempt changes of a delivery, as
// stored.
type deliveryState struct {
	id             string
	status         pimhook.DeliveryStatus
	attempts       int
	nextAttemptAt  int64
	lastStatusCode int
	lastError      string
	updatedAt      int64
	finishedAt     sql.NullInt64
}

func stateOf(d *pimhook.Delivery) deliveryState {
	return deliveryState{
		id: d.ID, status: d.Status, attempts: d.Attempts, nextAttemptAt: unixNano(d.NextAttemptAt),
		lastStatusCode: d.LastStatusCode, lastError: d.LastError, updatedAt: unixNano(d.UpdatedAt),
		finishedAt: nullUnixNano(d.FinishedAt),
	}
}

// updateArgs are the arguments of updateDelivery.
func (st deliveryState) updateArgs() []any {
	return []any{st.status, st.attempts, st.nextAttemptAt, st.lastStatusCode, st.lastError, st.updatedAt, st.finishedAt, st.id}
}

func (st deliveryState) applyTo(d *pimhook.Delivery) {
	d.Status, d.Attempts, d.NextAttemptAt = st.status, st.attempts, fromUnixNano(st.nextAttemptAt)
	d.LastStatusCode, d.LastError, d.UpdatedAt = st.lastStatusCode, st.lastError, fromUnixNano(st.updatedAt)
	d.FinishedAt = fromNullUnixNano(st.finishedAt)
}

// asStored returns d as a read of its row would, sharing no memory with
// it: times in UTC to the nanosecond, and an empty payload nil.
func asStored(d *pimhook.Delivery, seq int64, companyID string, status pimhook.DeliveryStatus) pimhook.Delivery {
	s := *owned(d)
	s.Seq, s.CompanyID = seq, companyID
	if len(s.Payload) == 0 {
		s.Payload = nil
	}
	s.CreatedAt = fromUnixNano(unixNano(d.CreatedAt))
	d2 := stateOf(d)
	d2.status = status
	d2.applyTo(&s)
	return s
}
