package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// event is one event the harness posts: its key (unique over the run), the
// app it is meant for, and when it was sent (Unix ns), which travels in its
// data to the receiver.
type event struct {
	key  uint64
	app  int
	sent int64
}

// keySource hands out event keys in increasing order.
type keySource struct{ next atomic.Uint64 }

// take reserves n keys and returns the first.
func (k *keySource) take(n int) uint64 { return k.next.Add(uint64(n)) - uint64(n) }

// peek returns the next key to be taken.
func (k *keySource) peek() uint64 { return k.next.Load() }

// eventMaker writes events whose data is about payloadBytes long: the marks,
// a few product fields, and padding.
type eventMaker struct {
	pad      string
	products int
}

func newEventMaker(payloadBytes, products int) *eventMaker {
	// The data without padding, with numbers as long as they get.
	fixed := len(`{"bench_k":1234567890,"bench_t":1234567890123456789,"name":"Product 12345","price":123.45,"stock":123,"pad":""}`)
	return &eventMaker{pad: strings.Repeat("x", max(payloadBytes-fixed, 0)), products: products}
}

// appendEvent appends ev as a JSON event of entityType. Events of one app
// update its products in turn; unique gives every event an entity of its
// own instead.
func (m *eventMaker) appendEvent(b []byte, entityType string, ev event, unique bool) []byte {
	product := int(ev.key) % m.products
	if unique {
		product = int(ev.key)
	}
	b = append(b, `{"entity_type":"`...)
	b = append(b, entityType...)
	b = append(b, `","entity_id":"p`...)
	b = strconv.AppendInt(b, int64(product), 10)
	b = append(b, `","action":"updated","data":`...)
	return m.appendData(b, ev, product)
}

func (m *eventMaker) appendData(b []byte, ev event, product int) []byte {
	b = append(b, `{"bench_k":`...)
	b = strconv.AppendUint(b, ev.key, 10)
	b = append(b, `,"bench_t":`...)
	b = strconv.AppendInt(b, ev.sent, 10)
	b = append(b, `,"name":"Product `...)
	b = strconv.AppendInt(b, int64(product), 10)
	b = append(b, `","price":`...)
	b = strconv.AppendFloat(b, float64(ev.key%100000)/100, 'f', 2, 64)
	b = append(b, `,"stock":`...)
	b = strconv.AppendUint(b, ev.key%1000, 10)
	b = append(b, `,"pad":"`...)
	b = append(b, m.pad...)
	return append(b, `"}}`...)
}

// target is where load goes: pimhook's ingest API, the relay, or a receiver.
type target interface {
	// send posts evs (one request) and returns how many deliveries each
	// caused. buf is the caller's scratch buffer.
	send(ctx context.Context, evs []event, buf *[]byte) ([]int, error)
}

// pimhookTarget posts events to pimhook's POST /v1/events: one event alone,
// or a batch when batch is set.
type pimhookTarget struct {
	api        *api
	maker      *eventMaker
	entityType func(app int) string
	batch      bool
	unique     bool // an entity per event, as in fan-out and backlog
}

func (t *pimhookTarget) send(ctx context.Context, evs []event, buf *[]byte) ([]int, error) {
	b := (*buf)[:0]
	if t.batch {
		b = append(b, `{"events":[`...)
	}
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = t.maker.appendEvent(b, t.entityType(ev.app), ev, t.unique)
	}
	if t.batch {
		b = append(b, "]}"...)
	}
	*buf = b
	return t.api.postEvents(ctx, b, make([]int, 0, len(evs)))
}

// forwardTarget posts each event by itself to a URL per app, as a
// receiver would get it: straight to the receiver (the serial loop) or
// through the relay, which reads the URL from targetHeader.
type forwardTarget struct {
	hc    *http.Client
	maker *eventMaker
	urls  []string // per app
	relay string   // the relay's URL; empty posts to the receiver directly
}

func (t *forwardTarget) send(ctx context.Context, evs []event, buf *[]byte) ([]int, error) {
	if len(evs) != 1 {
		return nil, fmt.Errorf("forward: one event per request, got %d", len(evs))
	}
	ev := evs[0]
	*buf = t.maker.appendEvent((*buf)[:0], "bench", ev, false)
	url := t.urls[ev.app]
	if t.relay != "" {
		url = t.relay
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(*buf))
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if t.relay != "" {
		req.Header.Set(targetHeader, t.urls[ev.app])
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("forward to %s: %s", url, resp.Status)
	}
	return []int{1}, nil
}

// loadStats is what a load generator did.
type loadStats struct {
	events int64
	posts  int64
	start  time.Time
	end    time.Time
	// late counts open-loop events posted more than a millisecond after
	// they were due; maxLate is the worst. Latency counts from when an
	// event was due, so a late harness shows in the figures, not hidden.
	late    int64
	maxLate time.Duration
}

func (s loadStats) eventsPerSecond() float64 {
	if d := s.end.Sub(s.start).Seconds(); d > 0 {
		return float64(s.events) / d
	}
	return 0
}

// closedLoop is clients posting back to back until a deadline, each batch
// events at a time. A client pauses while maxOutstanding deliveries have not
// arrived, so that what is measured is the rate pimhook sustains, not how
// long a queue it can build.
type closedLoop struct {
	target         target
	tracker        *tracker
	keys           *keySource
	appOf          func(key uint64) int
	clients        int
	batch          int
	maxOutstanding int
}

func (l closedLoop) run(ctx context.Context, until time.Time) (loadStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var events, posts atomic.Int64
	st := loadStats{start: time.Now()}
	var wg sync.WaitGroup
	for range l.clients {
		wg.Go(func() {
			var buf []byte
			evs := make([]event, l.batch)
			for time.Now().Before(until) && ctx.Err() == nil {
				if err := l.tracker.waitBelow(ctx, l.maxOutstanding, until); err != nil || !time.Now().Before(until) {
					return
				}
				k := l.keys.take(l.batch)
				now := time.Now().UnixNano()
				for i := range evs {
					evs[i] = event{key: k + uint64(i), app: l.appOf(k + uint64(i)), sent: now}
				}
				per, err := l.target.send(ctx, evs, &buf)
				if err != nil {
					cancel(err)
					return
				}
				l.tracker.expect(sum(per))
				events.Add(int64(len(evs)))
				posts.Add(1)
			}
		})
	}
	wg.Wait()
	st.end, st.events, st.posts = time.Now(), events.Load(), posts.Load()
	return st, context.Cause(ctx)
}

// openLoop is a fixed rate of single events, whatever pimhook does: event i
// is due at start + i/rate and posted then by whichever client is free.
// expect, when set, says which apps' deliveries are to be waited for.
type openLoop struct {
	target  target
	tracker *tracker
	keys    *keySource
	appOf   func(key uint64) int
	clients int
	rate    float64
	expect  func(app int) bool
}

func (l openLoop) run(ctx context.Context, start time.Time, d time.Duration) (loadStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type job struct {
		key uint64
		due time.Time
	}
	jobs := make(chan job, l.clients)
	var events, late, maxLate atomic.Int64
	var wg sync.WaitGroup
	for range l.clients {
		wg.Go(func() {
			var buf []byte
			evs := make([]event, 1)
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				// Pacing: the wait is the schedule itself.
				if w := time.Until(j.due); w > 0 {
					time.Sleep(w)
				}
				if lag := time.Since(j.due); lag > time.Millisecond {
					late.Add(1)
					for old := maxLate.Load(); int64(lag) > old && !maxLate.CompareAndSwap(old, int64(lag)); old = maxLate.Load() {
					}
				}
				app := l.appOf(j.key)
				evs[0] = event{key: j.key, app: app, sent: j.due.UnixNano()}
				per, err := l.target.send(ctx, evs, &buf)
				if err != nil {
					cancel(err)
					continue
				}
				if l.expect == nil || l.expect(app) {
					l.tracker.expect(sum(per))
				}
				events.Add(1)
			}
		})
	}
	n := int(l.rate * d.Seconds())
	for i := range n {
		due := start.Add(time.Duration(float64(i) / l.rate * float64(time.Second)))
		select {
		case jobs <- job{key: l.keys.take(1), due: due}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	st := loadStats{start: start, end: start.Add(d), events: events.Load(), posts: events.Load(), late: late.Load(), maxLate: time.Duration(maxLate.Load())}
	return st, context.Cause(ctx)
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
