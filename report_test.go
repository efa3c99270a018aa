package pimhook_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// TestResponseTimeReport computes the report of a known set of attempts and
// checks every number.
func TestResponseTimeReport(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	b, err := pimhook.NewReportBuilder(t0, t0.Add(3*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, a := range []pimhook.AttemptRecord{
		// Hour 1: three attempts of wh_a, two 200s and a 500 retried.
		{WebhookID: "wh_a", Number: 1, StartedAt: at(5), Duration: ms(10), StatusCode: 200, Succeeded: true},
		{WebhookID: "wh_a", Number: 1, StartedAt: at(20), Duration: ms(30), StatusCode: 500},
		{WebhookID: "wh_a", Number: 2, StartedAt: at(59), Duration: ms(20), StatusCode: 200, Succeeded: true},
		// Hour 2: nothing. Hour 3: wh_b times out twice, then a 503 and a 503.
		{WebhookID: "wh_b", Number: 1, StartedAt: at(125), Duration: ms(2500), StatusCode: 0},
		{WebhookID: "wh_b", Number: 2, StartedAt: at(130), Duration: ms(2500), StatusCode: 0},
		{WebhookID: "wh_b", Number: 3, StartedAt: at(140), Duration: ms(4), StatusCode: 503},
		{WebhookID: "wh_b", Number: 4, StartedAt: at(150), Duration: ms(6), StatusCode: 503},
		// Outside the window: ignored.
		{WebhookID: "wh_a", Number: 1, StartedAt: at(-1), Duration: ms(999), StatusCode: 200},
		{WebhookID: "wh_a", Number: 1, StartedAt: at(180), Duration: ms(999), StatusCode: 200},
	} {
		b.Add(a)
	}
	got, err := json.Marshal(b.Report())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"avg_response_time_ts":[` +
		`{"bucket_start":"2026-03-01T10:00:00Z","last_attempted_on":"2026-03-01T10:59:00Z","response_code":200,"response_time":"20.00","attempt":2,"total":3},` +
		`{"bucket_start":"2026-03-01T12:00:00Z","last_attempted_on":"2026-03-01T12:30:00Z","response_code":0,"response_time":"1252.50","attempt":4,"total":4}],` +
		`"webhooks":[` +
		`{"webhook_id":"wh_a","total":3,"succeeded":2,"p50_ms":20,"p95_ms":30,"p99_ms":30},` +
		`{"webhook_id":"wh_b","total":4,"succeeded":0,"p50_ms":6,"p95_ms":2500,"p99_ms":2500}],` +
		`"start_date":"2026-03-01T10:00:00Z","end_date":"2026-03-01T13:00:00Z","interval":"1h0m0s"}`
	if string(got) != want {
		t.Errorf("report\n got %s\nwant %s", got, want)
	}
}

func TestReportLimits(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		end      time.Time
		interval time.Duration
		field    string
	}{
		{t0, time.Hour, "end_date"},
		{t0.Add(time.Hour), time.Millisecond, "interval"},
		{t0.Add(365 * 24 * time.Hour), time.Minute, "interval"},
	} {
		_, err := pimhook.NewReportBuilder(t0, tc.end, tc.interval)
		if e, ok := err.(*pimhook.Error); !ok || e.Field != tc.field {
			t.Errorf("end %v interval %v: %v, want an error at %s", tc.end, tc.interval, err, tc.field)
		}
	}
	for in, want := range map[string]time.Duration{"": time.Hour, "15m": 15 * time.Minute, "1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour} {
		if got, err := pimhook.ParseReportInterval(in); err != nil || got != want {
			t.Errorf("interval %q = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := pimhook.ParseReportInterval("weekly"); err == nil {
		t.Error("interval weekly accepted")
	}
}
