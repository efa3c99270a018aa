package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const testKey = "phk_test_key_for_the_default_company"

// startMain runs a pimhook server on a random loopback port with a fresh
// data directory, as `pimhook serve` would, and stops it when the test ends.
func startMain(t *testing.T, mutate ...func(*Config)) *Main {
	t.Helper()
	cfg := Config{
		Listen:        "127.0.0.1:0",
		DataDir:       t.TempDir(),
		APIKey:        testKey,
		AllowTargets:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		SharedWorkers: 8,
		DrainTimeout:  5 * time.Second,
		// The default filter budget (25ms) is short for a shared machine
		// running the race detector.
		FilterTimeout: 10 * time.Second,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	m := NewMain(cfg, io.Discard)
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m
}

// client talks to a pimhook API.
type client struct {
	t    testing.TB
	base string
	key  string
}

func newClient(t testing.TB, base string) *client { return &client{t: t, base: base, key: testKey} }

func (m *Main) client(t testing.TB) *client {
	return newClient(t, "http://"+m.Listener.Addr().String())
}

// do sends a request and decodes the JSON answer into out (if not nil). It
// returns the status code.
func (c *client) do(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatalf("encode: %v", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// must is do that fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any, out any) {
	c.t.Helper()
	var raw json.RawMessage
	if got := c.do(method, path, body, &raw); got != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("decode %s: %v", raw, err)
		}
	}
}

type idOnly struct {
	ID            string `json:"id"`
	SigningSecret string `json:"signing_secret"`
}

func (c *client) createApp(name string) string {
	c.t.Helper()
	var a idOnly
	c.must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": name}, &a)
	return a.ID
}

func (c *client) createWebhook(body map[string]any) idOnly {
	c.t.Helper()
	var w idOnly
	c.must(http.StatusCreated, "POST", "/v1/webhooks", body, &w)
	if !strings.HasPrefix(w.SigningSecret, "whsec_") {
		c.t.Fatalf("signing_secret %q does not start with whsec_", w.SigningSecret)
	}
	return w
}

type ingestAnswer struct {
	Events []struct {
		ID         string `json:"id"`
		Event      string `json:"event"`
		Revision   int64  `json:"revision"`
		Deliveries int    `json:"deliveries"`
		Status     string `json:"status"`
	} `json:"events"`
}

type deliveryView struct {
	ID        string          `json:"id"`
	WebhookID string          `json:"webhook_id"`
	EventID   string          `json:"event_id"`
	Event     string          `json:"event"`
	Status    string          `json:"status"`
	Attempts  json.RawMessage `json:"attempts"`
	Payload   json.RawMessage `json:"payload"`
}

type attemptView struct {
	Number     int    `json:"number"`
	StatusCode int    `json:"status_code"`
	Succeeded  bool   `json:"succeeded"`
	Error      string `json:"error"`
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(i int) string { return fmt.Sprint(i) }

// postEvent posts one event body with the test key. It does not touch a
// testing.T, so posting goroutines may call it.
func postEvent(base string, body []byte) (int, error) {
	req, err := http.NewRequest("POST", base+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
