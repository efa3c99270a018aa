package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// seen is what a receiver recorded: each request's webhook-id and entity.
type seen struct {
	mu   sync.Mutex
	hits []string // "<webhook-id> <entity_id>"
}

func (s *seen) add(id, entity string) {
	s.mu.Lock()
	s.hits = append(s.hits, id+" "+entity)
	s.mu.Unlock()
}

func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hits)
}

// TestRedeliverAndRecover fails every delivery of a webhook, then fixes its
// receiver: a redelivered delivery arrives again with its webhook-id, and
// recover re-queues the failed ones of a window in their original order.
func TestRedeliverAndRecover(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	got := &seen{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p struct {
			EntityID string `json:"entity_id"`
		}
		decode(t, b, &p)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		got.add(r.Header.Get("webhook-id"), p.EntityID)
	}))
	defer recv.Close()
	m := startMain(t)
	c := m.client(t)
	hook := c.createWebhook(map[string]any{"callback_url": recv.URL, "entity_type": "product", "retry_policy": "no_retry"})

	before := time.Now().UTC()
	for i := range 5 {
		c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
			"entity_type": "products", "entity_id": "p" + itoa(i), "action": "created", "data": map[string]any{"i": i},
		}, nil)
	}
	var list struct {
		Data []deliveryView `json:"data"`
	}
	waitFor(t, "five failed deliveries", 10*time.Second, func() bool {
		c.must(http.StatusOK, "GET", "/v1/deliveries?status=failed&webhook_id="+hook.ID, nil, &list)
		return len(list.Data) == 5
	})
	ids := map[string]string{} // entity -> delivery id
	for _, d := range list.Data {
		var full struct {
			Payload struct {
				EntityID string `json:"entity_id"`
			} `json:"payload"`
		}
		c.must(http.StatusOK, "GET", "/v1/deliveries/"+d.ID, nil, &full)
		ids[full.Payload.EntityID] = d.ID
	}
	// p1 is redelivered while the receiver still fails: it fails again,
	// and its place at the queue's tail must not change its original order.
	c.must(http.StatusAccepted, "POST", "/v1/deliveries/"+ids["p1"]+"/redeliver", nil, nil)
	waitFor(t, "the failed redelivery of p1", 10*time.Second, func() bool {
		var d struct {
			Status   string        `json:"status"`
			Attempts []attemptView `json:"attempts"`
		}
		c.must(http.StatusOK, "GET", "/v1/deliveries/"+ids["p1"], nil, &d)
		return d.Status == "failed" && len(d.Attempts) == 2
	})
	failing.Store(false)

	// Redeliver p3: it arrives with its own webhook-id.
	var redelivered deliveryView
	c.must(http.StatusAccepted, "POST", "/v1/deliveries/"+ids["p3"]+"/redeliver", nil, &redelivered)
	if redelivered.ID != ids["p3"] || redelivered.Status != "pending" {
		t.Errorf("redeliver answer %+v, want delivery %s pending", redelivered, ids["p3"])
	}
	waitFor(t, "the redelivery", 10*time.Second, func() bool { return len(got.list()) == 1 })
	if h := got.list()[0]; h != ids["p3"]+" p3" {
		t.Errorf("receiver saw %q, want p3 with webhook-id %s", h, ids["p3"])
	}
	var d struct {
		Status   string        `json:"status"`
		Attempts []attemptView `json:"attempts"`
	}
	waitFor(t, "the redelivery recorded", 10*time.Second, func() bool {
		c.must(http.StatusOK, "GET", "/v1/deliveries/"+ids["p3"], nil, &d)
		return d.Status != "pending"
	})
	if d.Status != "succeeded" || len(d.Attempts) != 2 || d.Attempts[1].Number != 2 {
		t.Errorf("redelivered delivery %+v, want succeeded at its second attempt", d)
	}

	// Recover the window: the four still failed, in their original order.
	var rec struct {
		Recovered int            `json:"recovered"`
		Data      []deliveryView `json:"data"`
	}
	c.must(http.StatusAccepted, "POST", "/v1/webhooks/"+hook.ID+"/recover", map[string]any{"since": before.Add(-time.Second)}, &rec)
	if rec.Recovered != 4 {
		t.Fatalf("recovered %d, want 4", rec.Recovered)
	}
	waitFor(t, "the recovered deliveries", 10*time.Second, func() bool { return len(got.list()) == 5 })
	want := []string{ids["p3"] + " p3", ids["p0"] + " p0", ids["p1"] + " p1", ids["p2"] + " p2", ids["p4"] + " p4"}
	if h := got.list(); !slices.Equal(h, want) {
		t.Errorf("receiver saw\n%v\nwant\n%v", h, want)
	}
	// A window that holds nothing recovers nothing.
	c.must(http.StatusAccepted, "POST", "/v1/webhooks/"+hook.ID+"/recover", map[string]any{"since": time.Now().Add(time.Hour)}, &rec)
	if rec.Recovered != 0 {
		t.Errorf("empty window recovered %d", rec.Recovered)
	}
	var p struct {
		Code string `json:"code"`
	}
	if code := c.do("POST", "/v1/deliveries/msg_nope/redeliver", nil, &p); code != http.StatusNotFound || p.Code != "delivery_not_found" {
		t.Errorf("redeliver of no delivery: %d %s", code, p.Code)
	}
	if code := c.do("POST", "/v1/webhooks/wh_nope/recover", map[string]any{"since": before}, &p); code != http.StatusNotFound || p.Code != "webhook_not_found" {
		t.Errorf("recover of no webhook: %d %s", code, p.Code)
	}
}

// TestMetricsAndReport runs a known workload and reads it back from
// /metrics, parsed with the Prometheus text parser, and from the
// response-time report.
func TestMetricsAndReport(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable) // every fourth request
		}
	}))
	defer recv.Close()
	m := startMain(t)
	c := m.client(t)
	hook := c.createWebhook(map[string]any{"callback_url": recv.URL, "entity_type": "product", "retry_policy": "linear", "minimum_retry_interval": 0.01})
	start := time.Now().UTC().Add(-time.Minute)
	for i := range 8 {
		c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
			"entity_type": "products", "entity_id": "p" + itoa(i), "action": "created", "data": map[string]any{"i": i},
		}, nil)
	}
	// An unchanged update is counted too.
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{"entity_type": "products", "entity_id": "p0", "action": "updated", "data": map[string]any{"i": 0}}, nil)
	var list struct {
		Data []deliveryView `json:"data"`
	}
	waitFor(t, "eight succeeded deliveries", 10*time.Second, func() bool {
		c.must(http.StatusOK, "GET", "/v1/deliveries?status=succeeded", nil, &list)
		return len(list.Data) == 8
	})
	// 8 deliveries; requests 4 and 8 answered 503 and were retried: 10 attempts.
	resp, err := http.Get("http://" + m.Listener.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	value := func(name string, labels ...string) float64 {
		f, ok := families[name]
		if !ok {
			t.Errorf("metric %s missing", name)
			return -1
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pimhook_events_ingested_total", []string{"status", "accepted"}, 8},
		{"pimhook_events_ingested_total", []string{"status", "unchanged"}, 1},
		{"pimhook_deliveries_total", []string{"outcome", "succeeded"}, 8},
		{"pimhook_attempts_total", []string{"class", "2xx"}, 8},
		{"pimhook_attempts_total", []string{"class", "5xx"}, 2},
		{"pimhook_retries_scheduled_total", nil, 2},
		{"pimhook_attempt_duration_seconds", nil, 10},
		{"pimhook_delivery_latency_seconds", nil, 8},
	} {
		if got := value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for name := range families {
		if strings.HasPrefix(name, "pimhook_") && families[name].GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		for _, mt := range families[name].Metric {
			for _, l := range mt.Label {
				if strings.HasPrefix(l.GetValue(), "evt_") || strings.HasPrefix(l.GetValue(), "msg_") || strings.HasPrefix(l.GetValue(), "app_") {
					t.Errorf("%s has an unbounded label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	var report struct {
		Buckets []struct {
			Total        int    `json:"total"`
			Attempt      int    `json:"attempt"`
			ResponseCode int    `json:"response_code"`
			ResponseTime string `json:"response_time"`
		} `json:"avg_response_time_ts"`
		Webhooks []struct {
			WebhookID string  `json:"webhook_id"`
			Total     int     `json:"total"`
			Succeeded int     `json:"succeeded"`
			P99MS     float64 `json:"p99_ms"`
		} `json:"webhooks"`
	}
	end := time.Now().UTC().Add(time.Minute)
	c.must(http.StatusOK, "GET", "/v1/reports/response-time?start_date="+start.Format(time.RFC3339)+"&end_date="+end.Format(time.RFC3339)+"&interval=1d", nil, &report)
	if len(report.Buckets) != 1 || report.Buckets[0].Total != 10 || report.Buckets[0].Attempt != 2 || report.Buckets[0].ResponseCode != 200 {
		t.Errorf("report buckets %+v, want one bucket of 10 attempts, at most the 2nd, mostly 200", report.Buckets)
	}
	if len(report.Webhooks) != 1 || report.Webhooks[0].WebhookID != hook.ID || report.Webhooks[0].Total != 10 || report.Webhooks[0].Succeeded != 8 {
		t.Errorf("report webhooks %+v, want %s with 10 attempts, 8 succeeded", report.Webhooks, hook.ID)
	}
	c.must(http.StatusOK, "GET", "/v1/reports/response-time?start_date="+start.Format(time.RFC3339)+"&end_date="+end.Format(time.RFC3339)+"&webhook_id=wh_other", nil, &report)
	if len(report.Buckets) != 0 {
		t.Errorf("report of another webhook holds %+v", report.Buckets)
	}

	// Readiness.
	r2, err := http.Get("http://" + m.Listener.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d", r2.StatusCode)
	}
}
