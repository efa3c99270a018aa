package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLogs checks the log lines of deliveries: one per attempt at debug
// level, failures at info level, and never a signing secret or an API key.
func TestLogs(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer recv.Close()
	logs := newCLIOutput() // safe for the server's goroutines
	m := NewMain(Config{
		Listen: "127.0.0.1:0", DataDir: t.TempDir(), APIKey: testKey, SharedWorkers: 2, DrainTimeout: time.Second,
		AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, LogLevel: slog.LevelDebug,
	}, logs)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.client(t)
	hook := c.createWebhook(map[string]any{"callback_url": recv.URL, "retry_policy": "linear", "minimum_retry_interval": 0.01, "headers": map[string]string{"X-Api-Token": "tok_secret_header"}})
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{"entity_type": "products", "entity_id": "p1", "action": "created", "data": map[string]any{"a": 1}}, nil)
	waitFor(t, "the delivery", 10*time.Second, func() bool { return strings.Contains(logs.String(), `msg=delivered`) })

	out := logs.String()
	var failed, delivered int
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.Contains(line, "msg=\"attempt failed\""):
			failed++
			if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "status_code=503") || !strings.Contains(line, hook.ID) {
				t.Errorf("failure line %q: want INFO with the status and the webhook", line)
			}
		case strings.Contains(line, "msg=delivered"):
			delivered++
			if !strings.Contains(line, "level=DEBUG") || !strings.Contains(line, "attempt=2") {
				t.Errorf("delivery line %q: want DEBUG at attempt 2", line)
			}
		}
	}
	if failed != 1 || delivered != 1 {
		t.Errorf("%d failure lines and %d delivery lines, want 1 and 1:\n%s", failed, delivered, out)
	}
	for _, secret := range []string{hook.SigningSecret, strings.TrimPrefix(hook.SigningSecret, "whsec_"), testKey, "tok_secret_header"} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs hold a secret %q:\n%s", secret, out)
		}
	}
}
