package dispatch_test

import (
	"math"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	const day = time.Duration(pimhook.MaxRetryInterval) * time.Second
	for _, tc := range []struct {
		policy      string
		minInterval float64
		retry       int
		jitter      float64
		want        time.Duration
	}{
		{pimhook.RetryLinear, 5, 1, 0, 5 * time.Second},
		{pimhook.RetryLinear, 5, 7, 0.05, 5 * time.Second}, // linear ignores jitter
		{pimhook.RetryLinear, 0.25, 3, 0, 250 * time.Millisecond},
		{pimhook.RetryExponential, 5, 1, 0, 5 * time.Second},
		{pimhook.RetryExponential, 5, 2, 0, 10 * time.Second},
		{pimhook.RetryExponential, 5, 4, 0, 40 * time.Second},
		{pimhook.RetryExponential, 5, 8, 0, 640 * time.Second},
		{pimhook.RetryExponential, 5, 1, 0.05, 5250 * time.Millisecond},
		{pimhook.RetryExponential, 5, 3, 0.05, 21 * time.Second},
		{pimhook.RetryExponential, 5, 0, 0, 5 * time.Second}, // retry below 1 counts as the first
		{pimhook.RetryExponential, 5, 2, -1, 10 * time.Second},
		{pimhook.RetryExponential, 5, 2, math.NaN(), 10 * time.Second},
		{pimhook.RetryExponential, 5, 2, 7, 11 * time.Second}, // jitter clamped to MaxJitter
		{pimhook.RetryExponential, 5, 15, 0, 81920 * time.Second},
		{pimhook.RetryExponential, 5, 16, 0, day}, // 163840 s: capped
		{pimhook.RetryExponential, 5, 16, 0.09, day},
		{pimhook.RetryExponential, 5, 64, 0, day},
		{pimhook.RetryExponential, 5, 200, 0.05, day},
		{pimhook.RetryExponential, 5, math.MaxInt, 0.05, day},
		{pimhook.RetryExponential, pimhook.MaxRetryInterval, 1, 0.05, day},
		{"", 5, 3, 0, 20 * time.Second}, // the default policy is exponential
		{pimhook.RetryNone, 5, 1, 0, 0},
		{"fibonacci", 5, 1, 0, 0},
		{pimhook.RetryExponential, 0, 3, 0, 0},
		{pimhook.RetryExponential, -5, 3, 0, 0},
		{pimhook.RetryLinear, math.NaN(), 3, 0, 0},
	} {
		if got := dispatch.RetryDelay(tc.policy, tc.minInterval, tc.retry, tc.jitter); got != tc.want {
			t.Errorf("RetryDelay(%q, %v, %d, %v) = %v, want %v", tc.policy, tc.minInterval, tc.retry, tc.jitter, got, tc.want)
		}
	}
}

func TestRetryDelayNeverNegative(t *testing.T) {
	t.Parallel()
	prev := time.Duration(0)
	for retry := 1; retry <= 300; retry++ {
		d := dispatch.RetryDelay(pimhook.RetryExponential, 1.5, retry, 0.099)
		if d < prev || d <= 0 {
			t.Fatalf("retry %d: %v after %v", retry, d, prev)
		}
		prev = d
	}
}

func TestRetryShouldRetry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy      string
		limit, made int
		want        bool
	}{
		{pimhook.RetryExponential, 3, 0, true},
		{pimhook.RetryExponential, 3, 1, true},
		{pimhook.RetryExponential, 3, 3, true},
		{pimhook.RetryExponential, 3, 4, false}, // first attempt and three retries
		{pimhook.RetryExponential, 3, 9, false},
		{pimhook.RetryLinear, 1, 1, true},
		{pimhook.RetryLinear, 1, 2, false},
		{pimhook.RetryLinear, 0, 1, false},
		{pimhook.RetryExponential, -1, 1, false},
		{"", pimhook.DefaultRetryLimit, pimhook.DefaultRetryLimit, true},
		{"", pimhook.DefaultRetryLimit, pimhook.DefaultRetryLimit + 1, false},
		{pimhook.RetryNone, 0, 0, true}, // the first attempt always goes out
		{pimhook.RetryNone, 5, 1, false},
		{"fibonacci", 5, 1, false},
	} {
		if got := dispatch.ShouldRetry(tc.policy, tc.limit, tc.made); got != tc.want {
			t.Errorf("ShouldRetry(%q, %d, %d) = %v, want %v", tc.policy, tc.limit, tc.made, got, tc.want)
		}
	}
}

func TestRetryAfterDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy, retryAfter, want time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second},
		{10 * time.Second, 30 * time.Second, 30 * time.Second},
		{time.Minute, 30 * time.Second, time.Minute},
		{time.Second, 5 * time.Hour, time.Hour},
		{3 * time.Hour, 5 * time.Hour, 3 * time.Hour},
		{time.Second, -time.Minute, time.Second},
	} {
		if got := dispatch.RetryAfterDelay(tc.policy, tc.retryAfter); got != tc.want {
			t.Errorf("RetryAfterDelay(%v, %v) = %v, want %v", tc.policy, tc.retryAfter, got, tc.want)
		}
	}
}
