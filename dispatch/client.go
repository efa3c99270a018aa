package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
)

// Response.ErrCode values: why an attempt got no HTTP response. They are
// stored with attempts, so they never change meaning.
const (
	ErrCodeTimeout         = "timeout"                   // no response within the attempt's timeout
	ErrCodeTargetForbidden = pimhook.CodeTargetForbidden // the Guard refused the resolved address
	ErrCodeConnection      = "connection_error"          // DNS, connect, TLS or protocol failure
	ErrCodeInvalidRequest  = "invalid_request"           // the request could not be built: bad URL, header or secret
)

// Client defaults.
const (
	DefaultUserAgent           = "pimhook/1"
	DefaultMaxIdleConnsPerHost = 64
)

const (
	// maxIdleConns bounds idle connections over all hosts: enough for many
	// receivers, few enough to stay well inside a process's file limit.
	maxIdleConns        = 4096
	idleConnTimeout     = 90 * time.Second
	dialTimeout         = 10 * time.Second // attempts time out sooner; this only bounds a context-less dial
	tlsHandshakeTimeout = 10 * time.Second
	// maxResponseHeaderBytes keeps a hostile receiver from making pimhook
	// buffer megabytes of headers.
	maxResponseHeaderBytes = 256 << 10
	// maxRetryAfter bounds a receiver's Retry-After so that absurd values
	// cannot overflow a time.Duration.
	maxRetryAfter = time.Duration(pimhook.MaxRetryInterval) * time.Second
)

// ClientConfig configures a Client. The zero value is usable.
type ClientConfig struct {
	// Guard vets every address dialled. Nil means NewGuard(nil): every
	// internal range refused, with no exceptions.
	Guard *Guard
	// UserAgent is sent with every delivery; empty means DefaultUserAgent.
	UserAgent string
	// MaxIdleConnsPerHost is how many idle keep-alive connections are kept
	// per receiver; 0 means DefaultMaxIdleConnsPerHost. A busy receiver gets
	// deliveries from many apps at once, and each one that finds no idle
	// connection pays a new TCP and TLS handshake.
	MaxIdleConnsPerHost int
}

// Request is one delivery attempt.
type Request struct {
	URL   string
	MsgID string // webhook-id: the delivery's ID, the same for every retry
	Body  []byte
	// Secrets sign the body; more than one during a secret rotation.
	Secrets []string
	// Headers are the webhook's custom headers. They cannot replace the
	// headers pimhook sets.
	Headers map[string]string
	// Timeout bounds the whole attempt, reading the response included;
	// 0 leaves it to ctx.
	Timeout time.Duration
	// Timestamp is sent as webhook-timestamp and signed; zero means now.
	Timestamp time.Time
}

// Response is the outcome of one attempt. Either a response came (ErrCode
// "", StatusCode set) or it did not (ErrCode and Err set, StatusCode 0).
type Response struct {
	StatusCode int
	// Body is the start of a non-2xx answer, at most pimhook.ResponseBodyCap
	// bytes; nil for a 2xx, whose body nobody reads.
	Body []byte
	// RetryAfter is the receiver's Retry-After on a 429 or 503, else 0.
	RetryAfter time.Duration
	Err        error
	ErrCode    string
	Duration   time.Duration
}

// Client makes delivery attempts. It holds one connection pool for all
// receivers and is safe for concurrent use; create one per process.
type Client struct {
	pool      *connPool
	userAgent []string
}

// NewClient returns a Client whose every connection passes cfg.Guard.
func NewClient(cfg ClientConfig) *Client {
	g := cfg.Guard
	if g == nil {
		g = NewGuard(nil)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	perHost := cfg.MaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = DefaultMaxIdleConnsPerHost
	}
	d := &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   g.Control,
	}
	return &Client{
		pool: &connPool{
			dial:        d.DialContext,
			tlsConfig:   &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
			perHost:     perHost,
			maxIdle:     max(maxIdleConns, perHost),
			idleTimeout: idleConnTimeout,
			usable:      idleUsable,
		},
		userAgent: []string{ua},
	}
}

// CloseIdleConnections closes the pooled connections, at shutdown.
func (c *Client) CloseIdleConnections() { c.pool.closeIdle() }

// jsonContentType is shared by every request; the transport only reads it.
var jsonContentType = []string{"application/json"}

// droppedHeaders are custom headers that are never sent: the transport owns
// them, and a receiver's proxy could be confused by them.
var droppedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// Send makes one attempt: a signed POST of r.Body to r.URL. It never
// returns an error of its own; everything is in the Response, so an attempt's
// record is complete whatever happened.
func (c *Client) Send(ctx context.Context, r Request) Response {
	start := time.Now()
	res := c.send(ctx, r)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) send(ctx context.Context, r Request) Response {
	if r.MsgID == "" {
		return invalidRequest(errors.New("request has no message id"))
	}
	ts := r.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	sig, err := SignatureHeader(r.Secrets, r.MsgID, ts, r.Body)
	if err != nil {
		return invalidRequest(fmt.Errorf("sign: %w", err))
	}
	// The deadline covers the whole attempt, reading the answer included.
	var deadline time.Time
	if r.Timeout > 0 {
		deadline = time.Now().Add(r.Timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return invalidRequest(err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" || req.URL.Host == "" {
		return invalidRequest(fmt.Errorf("%q is not an absolute http or https URL", r.URL))
	}
	// One backing array holds every per-request header value, so headers
	// cost one allocation however many there are. Appends stay within its
	// capacity, so earlier sub-slices stay valid.
	vals := make([]string, 3, 3+len(r.Headers))
	vals[0], vals[1], vals[2] = r.MsgID, strconv.FormatInt(ts.Unix(), 10), sig
	h := make(http.Header, len(r.Headers)+5)
	// Custom headers go in first so that the protected ones below replace
	// any attempt to set them.
	for k, v := range r.Headers {
		if !validHeaderName(k) || !validHeaderValue(v) {
			return invalidRequest(fmt.Errorf("custom header %q is not a valid header", k))
		}
		k = http.CanonicalHeaderKey(k)
		if droppedHeaders[k] {
			continue
		}
		vals = append(vals, v)
		n := len(vals)
		h[k] = vals[n-1 : n : n]
	}
	h["Content-Type"] = jsonContentType
	h["User-Agent"] = c.userAgent
	h["Webhook-Id"] = vals[0:1:1]
	h["Webhook-Timestamp"] = vals[1:2:2]
	h["Webhook-Signature"] = vals[2:3:3]
	req.Header = h

	a, err := c.pool.exchange(ctx, req, deadline)
	if err != nil {
		if ctx.Err() != nil {
			// Stop, or the caller's own deadline, ended the attempt.
			err = ctx.Err()
		}
		return failure(err)
	}
	out := Response{StatusCode: a.status, Body: a.body}
	if a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable {
		out.RetryAfter = parseRetryAfter(a.header.Get("Retry-After"), time.Now())
	}
	return out
}

func invalidRequest(err error) Response {
	return Response{Err: err, ErrCode: ErrCodeInvalidRequest}
}

// failure classifies an error from which no response came. The URL, which
// url.Error repeats, is dropped: the attempt is stored with its webhook.
func failure(err error) Response {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	code := ErrCodeConnection
	switch {
	case errors.Is(err, ErrTargetForbidden):
		code = ErrCodeTargetForbidden
	case errors.Is(err, context.DeadlineExceeded):
		code = ErrCodeTimeout
	default:
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			code = ErrCodeTimeout
		}
	}
	return Response{Err: err, ErrCode: code}
}

// parseRetryAfter reads a Retry-After value, delta-seconds or an HTTP-date,
// as a wait from now. Anything unreadable or in the past means no wait.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// validHeaderName reports whether k is an RFC 9110 token. The transport
// would refuse a bad one too, but only as an untyped error.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters, which could split a header.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
