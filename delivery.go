package pimhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery statuses. Pending deliveries hold their app's queue in order;
// the others are final.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"  // retries exhausted, or not retryable
	DeliverySkipped   DeliveryStatus = "skipped" // its webhook was disabled or deleted before it went out
)

// ParseDeliveryStatus validates a status name.
func ParseDeliveryStatus(s string) (DeliveryStatus, error) {
	switch d := DeliveryStatus(s); d {
	case DeliveryPending, DeliverySucceeded, DeliveryFailed, DeliverySkipped:
		return d, nil
	}
	return "", Errorf(KindInvalid, CodeInvalidQuery, "status must be pending, succeeded, failed or skipped, got %q", s)
}

// ResponseBodyCap is how much of a receiver's response body an attempt keeps.
const ResponseBodyCap = 64 << 10

// Delivery is one payload owed to one webhook. Its ID is the webhook-id
// header: stable across retries, so receivers can deduplicate on it.
type Delivery struct {
	ID        string          `json:"id"`
	CompanyID string          `json:"company_id"`
	AppID     string          `json:"app_id"`
	WebhookID string          `json:"webhook_id"`
	EventID   string          `json:"event_id"`
	EventName string          `json:"event"`
	Seq       int64           `json:"seq"` // position in the app's queue; assigned by the store
	Payload   json.RawMessage `json:"payload"`

	Status         DeliveryStatus `json:"status"`
	Attempts       int            `json:"attempts"`
	NextAttemptAt  time.Time      `json:"next_attempt_at"`
	LastStatusCode int            `json:"last_status_code,omitempty"`
	LastError      string         `json:"last_error,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	FinishedAt     *time.Time     `json:"finished_at,omitempty"`
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	ID         string        `json:"id"`
	DeliveryID string        `json:"delivery_id"`
	Number     int           `json:"number"` // 1 for the first try
	StartedAt  time.Time     `json:"started_at"`
	Duration   time.Duration `json:"-"`
	StatusCode int           `json:"status_code,omitempty"` // 0 when no response came
	Succeeded  bool          `json:"succeeded"`
	Error      string        `json:"error,omitempty"`
	// ResponseBody is the receiver's answer to a failed attempt, capped at
	// ResponseBodyCap. It is the error log.
	ResponseBody string `json:"response_body,omitempty"`
}

// DeliveryFilter selects deliveries of one company, newest first.
type DeliveryFilter struct {
	CompanyID string
	WebhookID string
	AppID     string
	Status    DeliveryStatus
	Since     time.Time // created at or after; zero for no bound
	Until     time.Time // created before; zero for no bound
	BeforeSeq int64     // cursor: only deliveries with Seq below it; 0 for the start
	Limit     int       // at most this many; the store caps it at 1000
}

// cursorPrefix marks a delivery-list cursor; other kinds of cursor may come.
const cursorPrefix = "s:"

// EncodeCursor returns the opaque cursor of a delivery list page that ends
// at seq: the base64 of "s:<seq>". REST and GraphQL hand out the same form,
// so a cursor from either API works in the other.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// DecodeCursor returns the seq of a cursor made by EncodeCursor; field
// names the input in the error.
func DecodeCursor(c, field string) (int64, error) {
	bad := FieldError(CodeInvalidCursor, field, "%s is not a cursor this API handed out; start again without it", field)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, bad
	}
	digits, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return 0, bad
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq <= 0 {
		return 0, bad
	}
	return seq, nil
}

// Delivery list pages: how many deliveries a page holds by default and at
// most, in every API.
const (
	DefaultDeliveryPage = DefaultPage
	MaxDeliveryPage     = MaxPage
)

// List pages of every kind: how many items a page holds by default and at
// most.
const (
	DefaultPage = 50
	MaxPage     = 1000
)

// PageLimit is the size of a list page asked for with limit: at most
// MaxPage, DefaultPage when limit is not positive.
func PageLimit(limit int) int {
	if limit <= 0 {
		return DefaultPage
	}
	return min(limit, MaxPage)
}

// DeliveryPage reads one page of the deliveries f selects, at most f.Limit
// of them, newest first, and tells whether another page follows. It reads
// one delivery more than the page to know. A page of MaxDeliveryPage cannot
// look ahead (stores return at most that many), so it always offers a next
// page, which may come back empty.
func DeliveryPage(ctx context.Context, s Store, f DeliveryFilter) (page []*Delivery, more bool, err error) {
	limit := f.Limit
	f.Limit = min(limit+1, MaxDeliveryPage)
	list, err := s.Deliveries(ctx, f)
	if err != nil {
		return nil, false, fmt.Errorf("list deliveries: %w", err)
	}
	more = len(list) > limit || (len(list) == limit && limit == MaxDeliveryPage)
	return list[:min(len(list), limit)], more && len(list) > 0, nil
}
