package dispatch_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// loopbackClient is a Client allowed to reach the test receivers on this
// machine, as local development configures it.
func loopbackClient(tb testing.TB) *dispatch.Client {
	tb.Helper()
	allow, err := dispatch.ParseCIDRs("127.0.0.0/8, ::1")
	if err != nil {
		tb.Fatal(err)
	}
	c := dispatch.NewClient(dispatch.ClientConfig{Guard: dispatch.NewGuard(allow)})
	tb.Cleanup(c.CloseIdleConnections)
	return c
}

func newReceiver(tb testing.TB, h http.HandlerFunc) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

func TestClientHeaders(t *testing.T) {
	t.Parallel()
	srv, got := captureServer(t)
	c := loopbackClient(t)
	secret := pimhook.NewSecret()
	ts := time.Now().Truncate(time.Second)
	body := []byte(`{"event":"products.created"}`)
	res := c.Send(t.Context(), dispatch.Request{
		URL: srv.URL + "/hook?x=1", MsgID: "msg_headers", Body: body, Secrets: []string{secret}, Timestamp: ts,
		Headers: map[string]string{
			"Authorization":     "Bearer abc",
			"x-tenant":          "acme",
			"webhook-signature": "v1,forged",
			"Webhook-Id":        "msg_forged",
			"content-type":      "text/plain",
			"User-Agent":        "evil/1",
			"Host":              "internal.example",
			"Content-Length":    "1",
		},
	})
	if res.ErrCode != "" || res.StatusCode != http.StatusNoContent || res.Body != nil || res.Err != nil {
		t.Fatalf("Send = %+v", res)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v", res.Duration)
	}
	req := <-got
	if !bytes.Equal(req.body, body) {
		t.Errorf("body = %q, want %q", req.body, body)
	}
	wantSig, err := dispatch.Sign(secret, "msg_headers", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"Content-Type":      "application/json",
		"User-Agent":        dispatch.DefaultUserAgent,
		"Webhook-Id":        "msg_headers",
		"Webhook-Timestamp": strconv.FormatInt(ts.Unix(), 10),
		"Webhook-Signature": wantSig,
		"Authorization":     "Bearer abc",
		"X-Tenant":          "acme",
	} {
		if vs := req.header.Values(name); len(vs) != 1 || vs[0] != want {
			t.Errorf("%s = %q, want exactly %q", name, vs, want)
		}
	}
	if err := verifier(t, secret).Verify(req.body, req.header); err != nil {
		t.Errorf("reference verifier: %v", err)
	}

	// A configured User-Agent replaces the default.
	allow, _ := dispatch.ParseCIDRs("127.0.0.1")
	c2 := dispatch.NewClient(dispatch.ClientConfig{Guard: dispatch.NewGuard(allow), UserAgent: "pimhook/test"})
	t.Cleanup(c2.CloseIdleConnections)
	if res := c2.Send(t.Context(), dispatch.Request{URL: srv.URL, MsgID: "msg_ua", Body: body, Secrets: []string{secret}}); res.ErrCode != "" {
		t.Fatalf("Send = %+v", res)
	}
	req = <-got
	if ua := req.header.Get("User-Agent"); ua != "pimhook/test" {
		t.Errorf("User-Agent = %q", ua)
	}
	if v, err := strconv.ParseInt(req.header.Get("Webhook-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(v, 0)).Abs() > time.Minute {
		t.Errorf("a zero Timestamp sent webhook-timestamp %q, want now", req.header.Get("Webhook-Timestamp"))
	}
}

func TestClientInvalidRequest(t *testing.T) {
	t.Parallel()
	c := loopbackClient(t)
	ok := dispatch.Request{URL: "http://127.0.0.1:9/", MsgID: "msg_1", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}}
	for name, mutate := range map[string]func(*dispatch.Request){
		"bad URL":          func(r *dispatch.Request) { r.URL = "http://[::1" },
		"relative URL":     func(r *dispatch.Request) { r.URL = "/hook" },
		"ftp URL":          func(r *dispatch.Request) { r.URL = "ftp://127.0.0.1/" },
		"no secret":        func(r *dispatch.Request) { r.Secrets = nil },
		"bad secret":       func(r *dispatch.Request) { r.Secrets = []string{"whsec_***"} },
		"no message id":    func(r *dispatch.Request) { r.MsgID = "" },
		"bad header name":  func(r *dispatch.Request) { r.Headers = map[string]string{"X Bad": "1"} },
		"bad header value": func(r *dispatch.Request) { r.Headers = map[string]string{"X-Split": "a\r\nX-Injected: 1"} },
	} {
		r := ok
		mutate(&r)
		if res := c.Send(t.Context(), r); res.ErrCode != dispatch.ErrCodeInvalidRequest || res.Err == nil {
			t.Errorf("%s: Send = %+v, want invalid_request", name, res)
		}
	}
}

func TestClientRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	target := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		targetHits.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	redirector := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/stolen", http.StatusTemporaryRedirect)
	})
	res := loopbackClient(t).Send(t.Context(), dispatch.Request{URL: redirector.URL, MsgID: "msg_redirect", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}})
	if res.ErrCode != "" || res.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("Send = %+v, want the 307 itself", res)
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close, so no handler is left waiting
	const timeout = 150 * time.Millisecond
	start := time.Now()
	res := loopbackClient(t).Send(t.Context(), dispatch.Request{URL: srv.URL, MsgID: "msg_slow", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}, Timeout: timeout})
	elapsed := time.Since(start)
	if res.ErrCode != dispatch.ErrCodeTimeout || res.Err == nil || res.StatusCode != 0 {
		t.Errorf("Send = %+v, want timeout", res)
	}
	if elapsed >= 5*timeout {
		t.Errorf("Send took %v with a %v timeout", elapsed, timeout)
	}
	if res.Duration < timeout || res.Duration > elapsed {
		t.Errorf("Duration = %v, want between %v and %v", res.Duration, timeout, elapsed)
	}
}

func TestClientBodyCapped(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusInternalServerError
		if r.URL.Path == "/ok" {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = w.Write(big)
	})
	c := loopbackClient(t)
	req := dispatch.Request{URL: srv.URL, MsgID: "msg_big", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}}
	res := c.Send(t.Context(), req)
	if res.StatusCode != http.StatusInternalServerError || len(res.Body) != pimhook.ResponseBodyCap || !bytes.Equal(res.Body, big[:pimhook.ResponseBodyCap]) {
		t.Errorf("Send: status %d, body of %d bytes; want 500 and the first %d bytes", res.StatusCode, len(res.Body), pimhook.ResponseBodyCap)
	}
	req.URL = srv.URL + "/ok"
	if res := c.Send(t.Context(), req); res.StatusCode != http.StatusOK || res.Body != nil {
		t.Errorf("Send to a 2xx: status %d, body of %d bytes; want 200 and no body", res.StatusCode, len(res.Body))
	}
}

func TestClientErrorBodyKept(t *testing.T) {
	t.Parallel()
	srv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "product sku missing", http.StatusUnprocessableEntity)
	})
	res := loopbackClient(t).Send(t.Context(), dispatch.Request{URL: srv.URL, MsgID: "msg_422", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}})
	if res.StatusCode != http.StatusUnprocessableEntity || string(res.Body) != "product sku missing\n" || res.ErrCode != "" {
		t.Errorf("Send = %+v (body %q)", res, res.Body)
	}
}

func TestClientRetryAfter(t *testing.T) {
	t.Parallel()
	srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.Header().Set("Retry-After", r.URL.Query().Get("ra"))
		w.WriteHeader(status)
	})
	c := loopbackClient(t)
	inTwoMinutes := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	longAgo := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		status   int
		ra       string
		min, max time.Duration
	}{
		{429, "120", 120 * time.Second, 120 * time.Second},
		{503, "7", 7 * time.Second, 7 * time.Second},
		{503, inTwoMinutes, 115 * time.Second, 120 * time.Second},
		{429, inTwoMinutes, 115 * time.Second, 120 * time.Second},
		{429, longAgo, 0, 0},
		{429, "soon", 0, 0},
		{429, "-5", 0, 0},
		{429, "", 0, 0},
		{429, "99999999999999999999", time.Duration(pimhook.MaxRetryInterval) * time.Second, time.Duration(pimhook.MaxRetryInterval) * time.Second},
		{500, "120", 0, 0},
		{502, inTwoMinutes, 0, 0},
		{200, "120", 0, 0},
	} {
		u := srv.URL + "/?status=" + strconv.Itoa(tc.status) + "&ra=" + url.QueryEscape(tc.ra)
		res := c.Send(t.Context(), dispatch.Request{URL: u, MsgID: "msg_ra", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}})
		if res.StatusCode != tc.status {
			t.Fatalf("status %d: Send = %+v", tc.status, res)
		}
		if res.RetryAfter < tc.min || res.RetryAfter > tc.max {
			t.Errorf("status %d, Retry-After %q: RetryAfter = %v, want %v..%v", tc.status, tc.ra, res.RetryAfter, tc.min, tc.max)
		}
	}
}

func TestClientConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := loopbackClient(t).Send(t.Context(), dispatch.Request{URL: "http://" + addr + "/", MsgID: "msg_refused", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}, Timeout: 2 * time.Second})
	if res.ErrCode != dispatch.ErrCodeConnection || res.Err == nil || res.StatusCode != 0 {
		t.Errorf("Send = %+v, want connection_error", res)
	}
}

func TestClientReusesConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := loopbackClient(t)
	for range 5 {
		if res := c.Send(t.Context(), dispatch.Request{URL: srv.URL, MsgID: "msg_pool", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}}); res.StatusCode != http.StatusOK {
			t.Fatalf("Send = %+v", res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential sends opened %d connections, want 1", n)
	}
}

func BenchmarkSend(b *testing.B) {
	srv := newReceiver(b, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	c := loopbackClient(b)
	req := dispatch.Request{
		URL: srv.URL, MsgID: "msg_bench", Body: bytes.Repeat([]byte(`{"sku":"A-1"}`), 64),
		Secrets: []string{pimhook.NewSecret()}, Headers: map[string]string{"Authorization": "Bearer x"},
		Timeout: 5 * time.Second, Timestamp: time.Now(),
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := c.Send(b.Context(), req); res.StatusCode != http.StatusNoContent {
				b.Errorf("Send = %+v", res)
				return
			}
		}
	})
}

// receiverEnv makes the test binary, started again with it set, a receiver
// in a process of its own: it prints its address and answers 204 to every
// POST until its input closes.
const receiverEnv = "DISPATCH_TEST_RECEIVER"

func TestMain(m *testing.M) {
	if os.Getenv(receiverEnv) != "" {
		serveReceiver()
		return
	}
	os.Exit(m.Run())
}

func serveReceiver() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("http://" + ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the test ended
		os.Exit(0)
	}()
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
}

// processReceiver starts a receiver in a process of its own and returns its
// URL: a receiver in the test's own process would share its scheduler
// with the sender, as no real receiver does.
func processReceiver(tb testing.TB) string {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), receiverEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("receiver process: %v", err)
	}
	return strings.TrimSpace(line)
}

// BenchmarkSendSerial sends one delivery after another to a receiver in
// another process, as an app's worker does, with the Client and, as the
// baseline, with net/http's Client and Transport sending the same signed
// request.
func BenchmarkSendSerial(b *testing.B) {
	url := processReceiver(b)
	body := bytes.Repeat([]byte(`{"sku":"A-1"}`), 100)
	secret := pimhook.NewSecret()
	b.Run("client", func(b *testing.B) {
		c := loopbackClient(b)
		req := dispatch.Request{URL: url, MsgID: "msg_bench", Body: body, Secrets: []string{secret}, Timeout: 5 * time.Second}
		b.ReportAllocs()
		for b.Loop() {
			req.Timestamp = time.Now()
			if res := c.Send(b.Context(), req); res.StatusCode != http.StatusNoContent {
				b.Fatalf("Send = %+v", res)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: dispatch.DefaultMaxIdleConnsPerHost, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr}
		b.ReportAllocs()
		for b.Loop() {
			ts := time.Now()
			sig, err := dispatch.SignatureHeader([]string{secret}, "msg_bench", ts, body)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(b.Context(), 5*time.Second)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			req.Header = http.Header{"Content-Type": {"application/json"}, "User-Agent": {dispatch.DefaultUserAgent},
				"Webhook-Id": {"msg_bench"}, "Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)}, "Webhook-Signature": {sig}}
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.CopyN(io.Discard, resp.Body, pimhook.ResponseBodyCap)
			resp.Body.Close()
			cancel()
			if resp.StatusCode != http.StatusNoContent {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
