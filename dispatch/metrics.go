package dispatch

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pimhook/pimhook"
)

// Metrics are the dispatcher's Prometheus metrics. Labels have bounded
// cardinality: statuses, outcomes, status classes and pool names, never an
// entity, event, delivery or app ID. A nil *Metrics records nothing.
type Metrics struct {
	events          *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	attemptDuration prometheus.Histogram
	endToEnd        prometheus.Histogram
	retries         prometheus.Counter
	filterErrors    prometheus.Counter
	bulkRuns        *prometheus.CounterVec
}

// latencyBuckets span a loopback answer (1 ms) to a timeout (10 s).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// endToEndBuckets also cover retries: up to a day.
var endToEndBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pimhook_events_ingested_total",
			Help: "Events posted, by what became of them: accepted, unchanged or duplicate.",
		}, []string{"status"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pimhook_deliveries_total",
			Help: "Deliveries that reached a final state, by outcome: succeeded, failed or skipped.",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pimhook_attempts_total",
			Help: "HTTP attempts, by the class of the receiver's status (2xx ... 5xx), or timeout or error when no response came.",
		}, []string{"class"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pimhook_attempt_duration_seconds",
			Help:    "Duration of one HTTP attempt, from sending to the receiver's answer.",
			Buckets: latencyBuckets,
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pimhook_delivery_latency_seconds",
			Help:    "Time from the ingest of an event to the success of its delivery, retries included.",
			Buckets: endToEndBuckets,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pimhook_retries_scheduled_total",
			Help: "Failed attempts that scheduled a retry.",
		}),
		filterErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pimhook_filter_errors_total",
			Help: "Filters and reducers that failed on an event, costing their webhook the delivery.",
		}),
		bulkRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pimhook_bulk_runs_total",
			Help: "Bulk operation triggers, by status: succeeded, failed, timeout or error.",
		}, []string{"status"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.deliveries, m.attempts, m.attemptDuration, m.endToEnd, m.retries, m.filterErrors, m.bulkRuns)
	}
	return m
}

func (m *Metrics) ingested(results []pimhook.IngestResult) {
	if m == nil {
		return
	}
	for _, r := range results {
		m.events.WithLabelValues(string(r.Status)).Inc()
		m.filterErrors.Add(float64(len(r.FilterErrors)))
	}
}

func (m *Metrics) attempted(dl *pimhook.Delivery, resp Response, retry bool, now time.Time) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(statusClass(resp)).Inc()
	m.attemptDuration.Observe(resp.Duration.Seconds())
	switch {
	case retry:
		m.retries.Inc()
	case dl.Status == pimhook.DeliverySucceeded:
		m.deliveries.WithLabelValues(string(dl.Status)).Inc()
		m.endToEnd.Observe(now.Sub(dl.CreatedAt).Seconds())
	default:
		m.deliveries.WithLabelValues(string(dl.Status)).Inc()
	}
}

func (m *Metrics) skipped() {
	if m != nil {
		m.deliveries.WithLabelValues(string(pimhook.DeliverySkipped)).Inc()
	}
}

func (m *Metrics) bulkRun(status pimhook.BulkRunStatus) {
	if m != nil {
		m.bulkRuns.WithLabelValues(string(status)).Inc()
	}
}

// statusClass names the class of an attempt's outcome.
func statusClass(r Response) string {
	switch {
	case r.StatusCode >= 100 && r.StatusCode < 600:
		return strconv.Itoa(r.StatusCode/100) + "xx"
	case r.ErrCode == ErrCodeTimeout:
		return "timeout"
	}
	return "error"
}

// poolLabel is the metrics name of a pool: every dedicated app's pool is
// "dedicated", so that the label stays bounded.
func poolLabel(pool string) string {
	if strings.HasPrefix(pool, dedicatedPool) {
		return "dedicated"
	}
	return pool
}

// queueCollector reports the backlog per pool from the store at each
// scrape, and the apps in flight from the dispatcher.
type queueCollector struct {
	d        *Dispatcher
	depth    *prometheus.Desc
	oldest   *prometheus.Desc
	inFlight *prometheus.Desc
}

// Collector returns a Prometheus collector of the dispatcher's queues:
// pimhook_queue_depth and pimhook_queue_oldest_pending_seconds per pool,
// read from the store at each scrape, and pimhook_apps_in_flight per pool:
// apps a worker is serving now (each has at most one attempt in flight).
func (d *Dispatcher) Collector() prometheus.Collector {
	return &queueCollector{
		d:        d,
		depth:    prometheus.NewDesc("pimhook_queue_depth", "Pending deliveries, per pool.", []string{"pool"}, nil),
		oldest:   prometheus.NewDesc("pimhook_queue_oldest_pending_seconds", "Age of the oldest pending delivery, per pool.", []string{"pool"}, nil),
		inFlight: prometheus.NewDesc("pimhook_apps_in_flight", "Apps being served by a worker now, per pool; each has at most one attempt in flight.", []string{"pool"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	ch <- c.inFlight
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := c.d.clock.Now()
	if stats, err := c.d.store.QueueStats(ctx); err != nil {
		c.d.log.Error("read queue stats", attrError, err)
	} else {
		depth := map[string]int{}
		oldest := map[string]time.Time{}
		for _, q := range stats {
			p := poolLabel(c.d.poolName(q.AppID))
			depth[p] += q.Pending
			if o, ok := oldest[p]; !ok || q.Oldest.Before(o) {
				oldest[p] = q.Oldest
			}
		}
		for p, n := range depth {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), p)
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, max(now.Sub(oldest[p]).Seconds(), 0), p)
		}
	}
	running := map[string]int{}
	c.d.mu.Lock()
	for _, st := range c.d.apps {
		if st.state == appRunning {
			running[poolLabel(st.pool)]++
		}
	}
	c.d.mu.Unlock()
	for p, n := range running {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(n), p)
	}
}
