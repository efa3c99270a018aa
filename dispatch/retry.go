package dispatch

import (
	"math"
	"time"

	"github.com/pimhook/pimhook"
)

// MaxJitter bounds the jitter of RetryDelay: up to 10% more than the
// exponential step, enough to spread receivers' retry storms apart.
const MaxJitter = 0.1

// maxRetryAfterWait caps how long a receiver's Retry-After may hold its app's
// queue: the whole app waits behind one delivery, so a receiver must not be
// able to stall it for days.
const maxRetryAfterWait = time.Hour

// RetryDelay returns the wait before retry number retry (1 for the first
// retry) under policy:
//
//   - linear: minInterval seconds every time;
//   - exponential: minInterval × 2^(retry-1) seconds, times (1 + jitter),
//     capped at pimhook.MaxRetryInterval seconds;
//   - no_retry: 0.
//
// The caller draws jitter from [0, MaxJitter) so that schedules are
// deterministic under test; values outside are clamped. An empty policy is
// the default policy; an unknown one waits 0, as ShouldRetry never allows
// its retries.
func RetryDelay(policy string, minInterval float64, retry int, jitter float64) time.Duration {
	if policy == "" {
		policy = pimhook.DefaultRetryPolicy
	}
	if !(minInterval > 0) { // negative or NaN
		return 0
	}
	var secs float64
	switch policy {
	case pimhook.RetryLinear:
		secs = minInterval
	case pimhook.RetryExponential:
		if !(jitter >= 0) {
			jitter = 0
		}
		jitter = min(jitter, MaxJitter)
		// A float doubling grows to +Inf rather than wrapping, so retry 200
		// caps cleanly; the exponent is bounded first because Ldexp's own
		// exponent arithmetic would wrap near math.MaxInt.
		exp := min(max(retry, 1), 1100) - 1
		secs = math.Ldexp(minInterval, exp) * (1 + jitter)
	default:
		return 0
	}
	secs = min(secs, pimhook.MaxRetryInterval)
	// Whole milliseconds: a schedule needs no finer grain, and rounding
	// keeps float noise such as 5.2499999 s out of stored times.
	return time.Duration(math.Round(secs*1e3)) * time.Millisecond
}

// ShouldRetry reports whether another attempt is allowed after attemptsMade
// attempts: the first attempt always is; then retryLimit retries follow,
// unless the policy is no_retry.
func ShouldRetry(policy string, retryLimit, attemptsMade int) bool {
	if attemptsMade < 1 {
		return true
	}
	switch policy {
	case "", pimhook.RetryLinear, pimhook.RetryExponential:
		return attemptsMade <= retryLimit
	}
	return false
}

// RetryAfterDelay returns the wait before a retry whose failed attempt
// carried a Retry-After: the receiver's wish when it asks for longer than the
// policy, but never more than an hour.
func RetryAfterDelay(policyDelay, retryAfter time.Duration) time.Duration {
	return max(policyDelay, min(retryAfter, maxRetryAfterWait))
}
