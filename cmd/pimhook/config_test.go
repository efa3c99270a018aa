package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFirstStartPrintsKeyOnce: without --api-key, the first start generates a
// key for the default company, prints it once, and it opens the API; a
// second start prints nothing.
func TestFirstStartPrintsKeyOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	m := NewMain(Config{Listen: "127.0.0.1:0", DataDir: dir, SharedWorkers: 1, DrainTimeout: time.Second}, &out)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`phk_[A-Za-z0-9_-]{43}`).FindString(out.String())
	if key == "" {
		m.Close()
		t.Fatalf("no API key printed:\n%s", out.String())
	}
	c := m.client(t)
	c.key = key
	var apps struct{ Data []any }
	c.must(http.StatusOK, "GET", "/v1/apps", nil, &apps)
	c.key = "phk_wrong"
	if got := c.do("GET", "/v1/apps", nil, nil); got != http.StatusUnauthorized {
		t.Errorf("wrong key: status %d, want 401", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "pimhook.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(key)) {
		t.Error("the API key is stored in clear")
	}

	out.Reset()
	m2 := NewMain(Config{Listen: "127.0.0.1:0", DataDir: dir, SharedWorkers: 1, DrainTimeout: time.Second}, &out)
	if err := m2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if strings.Contains(out.String(), "phk_") {
		t.Errorf("second start printed a key:\n%s", out.String())
	}
	c2 := m2.client(t)
	c2.key = key
	c2.must(http.StatusOK, "GET", "/v1/apps", nil, &apps)
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout bytes.Buffer
	for range 2 { // idempotent
		stdout.Reset()
		if err := run(context.Background(), []string{"migrate", "--data-dir", dir}, &stdout, io.Discard); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	if !strings.Contains(stdout.String(), "migrated") {
		t.Errorf("migrate printed %q", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "pimhook.db")); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command succeeded")
	}
}

// TestConfigFromEnvironment cannot run in parallel: it sets environment
// variables.
func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("PIMHOOK_LISTEN", "127.0.0.1:9999")
	t.Setenv("PIMHOOK_DATA_DIR", "/tmp/x")
	t.Setenv("PIMHOOK_API_KEY", "phk_env")
	t.Setenv("PIMHOOK_ALLOW_TARGETS", "10.0.0.0/8, 127.0.0.1")
	t.Setenv("PIMHOOK_TYPE_WORKERS", "shopware=8,magento=2")
	t.Setenv("PIMHOOK_DEBUG_LISTEN", "127.0.0.1:6060")
	cfg, err := parseConfig("serve", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.DataDir != "/tmp/x" || cfg.APIKey != "phk_env" || len(cfg.AllowTargets) != 2 ||
		cfg.TypeWorkers["shopware"] != 8 || cfg.TypeWorkers["magento"] != 2 || cfg.DebugListen != "127.0.0.1:6060" {
		t.Errorf("config from env = %+v", cfg)
	}
	cfg, err = parseConfig("serve", []string{"--listen", "127.0.0.1:1"}, io.Discard)
	if err != nil || cfg.Listen != "127.0.0.1:1" {
		t.Errorf("flag did not win over env: %+v %v", cfg, err)
	}
	for _, bad := range [][]string{{"--allow-targets", "nope"}, {"--type-workers", "shopware=0"}, {"--shared-workers", "0"}, {"--drain-timeout", "x"}, {"stray"}} {
		if _, err := parseConfig("serve", bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestLoopbackRefusedWithoutAllowList: with the default (empty) allow-list,
// a webhook to 127.0.0.1 is refused when saved, and nothing is stored.
func TestLoopbackRefusedWithoutAllowList(t *testing.T) {
	t.Parallel()
	m := startMain(t, func(c *Config) { c.AllowTargets = nil })
	c := m.client(t)
	var p struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	}
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://[::1]/hook", "http://localhost:8080/", "http://169.254.169.254/latest/meta-data"} {
		if got := c.do("POST", "/v1/webhooks", map[string]any{"callback_url": u}, &p); got != http.StatusBadRequest || p.Code != "target_forbidden" || p.Field != "callback_url" {
			t.Errorf("%s: status %d code %q field %q, want 400 target_forbidden", u, got, p.Code, p.Field)
		}
	}
	var list struct{ Data []any }
	c.must(http.StatusOK, "GET", "/v1/webhooks", nil, &list)
	if len(list.Data) != 0 {
		t.Errorf("%d webhooks stored after refusals", len(list.Data))
	}
}

// TestDataDirLocked: a second server on the same data directory refuses to
// start rather than send every delivery a second time.
func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	second := NewMain(m.Config, io.Discard)
	err := second.Run(context.Background())
	second.Close()
	if err == nil || !strings.Contains(err.Error(), "in use by another pimhook process") {
		t.Fatalf("second server on one data dir: %v, want it refused", err)
	}
	if err := run(context.Background(), []string{"migrate", "--data-dir", m.Config.DataDir}, io.Discard, io.Discard); err == nil {
		t.Error("migrate ran on a data dir in use")
	}
}

// TestHeaderValuesMustBeSendable: a header value with a control character
// is refused when the webhook is saved, not when it is sent.
func TestHeaderValuesMustBeSendable(t *testing.T) {
	t.Parallel()
	c := startMain(t).client(t)
	var p struct {
		Code, Field string
	}
	if got := c.do("POST", "/v1/webhooks", map[string]any{"callback_url": "https://example.com/h", "headers": map[string]string{"X-Test": "a\u0001b"}}, &p); got != http.StatusBadRequest || p.Code != "validation_failed" || p.Field != "headers" {
		t.Fatalf("status %d %+v, want 400 validation_failed on headers", got, p)
	}
	// Names differing only in case are one header on the wire.
	if got := c.do("POST", "/v1/webhooks", map[string]any{"callback_url": "https://example.com/h", "headers": map[string]string{"X-Shop": "a", "x-shop": "b"}}, &p); got != http.StatusBadRequest || p.Code != "validation_failed" || p.Field != "headers" {
		t.Fatalf("headers differing in case: status %d %+v, want 400 validation_failed on headers", got, p)
	}
}
