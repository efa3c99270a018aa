package pimhook

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Response-time report limits.
const (
	DefaultReportInterval = time.Hour
	MinReportInterval     = time.Second
	MaxReportBuckets      = 10000
)

// ResponseTimeBucket is one entry of the response-time report (reference
// document 5's AvgResponseTime), summarising the attempts that started in
// [BucketStart, BucketStart+interval).
type ResponseTimeBucket struct {
	// BucketStart is where the bucket begins; buckets are aligned on the
	// report's start.
	BucketStart time.Time `json:"bucket_start"`
	// LastAttemptedOn is when the last attempt of the bucket started.
	LastAttemptedOn time.Time `json:"last_attempted_on"`
	// ResponseCode is the status code most attempts of the bucket got (the
	// lowest of equally frequent ones); 0 stands for no response (timeout,
	// connection error).
	ResponseCode int `json:"response_code"`
	// ResponseTime is the mean duration of the bucket's attempts in
	// milliseconds, as a decimal string with two decimals ("12.34").
	ResponseTime string `json:"response_time"`
	// Attempt is the highest attempt number in the bucket: 1 when every
	// delivery got through at the first try.
	Attempt int `json:"attempt"`
	// Total is how many attempts the bucket holds.
	Total int `json:"total"`
}

// WebhookLatency is the distribution of one webhook's attempt durations
// over the report's window, in milliseconds (nearest-rank percentiles).
type WebhookLatency struct {
	WebhookID string  `json:"webhook_id"`
	Total     int     `json:"total"`
	Succeeded int     `json:"succeeded"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	P99MS     float64 `json:"p99_ms"`
}

// ResponseTimeReport is the answer of the response-time report.
type ResponseTimeReport struct {
	AvgResponseTimeTS []ResponseTimeBucket `json:"avg_response_time_ts"`
	Webhooks          []WebhookLatency     `json:"webhooks"`
	Start             time.Time            `json:"start_date"`
	End               time.Time            `json:"end_date"`
	Interval          string               `json:"interval"`
}

// ReportBuilder accumulates attempts into a response-time report.
type ReportBuilder struct {
	start, end time.Time
	interval   time.Duration
	buckets    map[int64]*bucketAcc
	hooks      map[string]*hookAcc
}

type bucketAcc struct {
	last    time.Time
	codes   map[int]int
	sum     time.Duration
	attempt int
	total   int
}

type hookAcc struct {
	durations []float64
	succeeded int
}

// NewReportBuilder checks the window and interval and returns a builder.
func NewReportBuilder(start, end time.Time, interval time.Duration) (*ReportBuilder, error) {
	if !end.After(start) {
		return nil, FieldError(CodeInvalidQuery, "end_date", "end_date must be after start_date")
	}
	if interval < MinReportInterval {
		return nil, FieldError(CodeInvalidQuery, "interval", "interval must be at least %s", MinReportInterval)
	}
	if n := end.Sub(start) / interval; n >= MaxReportBuckets {
		return nil, FieldError(CodeInvalidQuery, "interval", "the window holds %d intervals of %s; at most %d: choose a longer interval", n+1, interval, MaxReportBuckets)
	}
	return &ReportBuilder{start: start, end: end, interval: interval, buckets: map[int64]*bucketAcc{}, hooks: map[string]*hookAcc{}}, nil
}

// ParseReportInterval reads an interval: a Go duration ("15m", "1h") or a
// number of days ("1d", "7d").
func ParseReportInterval(s string) (time.Duration, error) {
	if s == "" {
		return DefaultReportInterval, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 366 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, FieldError(CodeInvalidQuery, "interval", "interval must be a duration such as 15m, 1h or 1d, got %q", s)
	}
	return d, nil
}

// Add counts one attempt; attempts outside the window are ignored.
func (b *ReportBuilder) Add(a AttemptRecord) {
	if a.StartedAt.Before(b.start) || !a.StartedAt.Before(b.end) {
		return
	}
	i := int64(a.StartedAt.Sub(b.start) / b.interval)
	acc := b.buckets[i]
	if acc == nil {
		acc = &bucketAcc{codes: map[int]int{}}
		b.buckets[i] = acc
	}
	if a.StartedAt.After(acc.last) {
		acc.last = a.StartedAt
	}
	acc.codes[a.StatusCode]++
	acc.sum += a.Duration
	acc.attempt = max(acc.attempt, a.Number)
	acc.total++
	h := b.hooks[a.WebhookID]
	if h == nil {
		h = &hookAcc{}
		b.hooks[a.WebhookID] = h
	}
	h.durations = append(h.durations, float64(a.Duration.Microseconds())/1000)
	if a.Succeeded {
		h.succeeded++
	}
}

// Report returns the report: buckets with attempts in time order, webhooks
// by ID.
func (b *ReportBuilder) Report() *ResponseTimeReport {
	r := &ResponseTimeReport{
		AvgResponseTimeTS: []ResponseTimeBucket{}, Webhooks: []WebhookLatency{},
		Start: b.start.UTC(), End: b.end.UTC(), Interval: b.interval.String(),
	}
	for _, i := range slices.Sorted(maps.Keys(b.buckets)) {
		acc := b.buckets[i]
		code, most := 0, -1
		for c, n := range acc.codes {
			if n > most || n == most && c < code {
				code, most = c, n
			}
		}
		mean := float64(acc.sum.Microseconds()) / 1000 / float64(acc.total)
		r.AvgResponseTimeTS = append(r.AvgResponseTimeTS, ResponseTimeBucket{
			BucketStart:     b.start.Add(time.Duration(i) * b.interval).UTC(),
			LastAttemptedOn: acc.last.UTC(),
			ResponseCode:    code,
			ResponseTime:    strconv.FormatFloat(mean, 'f', 2, 64),
			Attempt:         acc.attempt,
			Total:           acc.total,
		})
	}
	for _, id := range slices.Sorted(maps.Keys(b.hooks)) {
		h := b.hooks[id]
		slices.Sort(h.durations)
		r.Webhooks = append(r.Webhooks, WebhookLatency{
			WebhookID: id, Total: len(h.durations), Succeeded: h.succeeded,
			P50MS: percentile(h.durations, 0.50), P95MS: percentile(h.durations, 0.95), P99MS: percentile(h.durations, 0.99),
		})
	}
	return r
}

// percentile is the nearest-rank percentile q of sorted values.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
