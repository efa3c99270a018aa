package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestDebugListener: --debug-listen serves the runtime's profiles on its
// own address, and the API's address does not.
func TestDebugListener(t *testing.T) {
	t.Parallel()
	m := startMain(t, func(c *Config) { c.DebugListen = "127.0.0.1:0" })
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + m.DebugListener.Addr().String() + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("profile index on the debug address: %d %.80q", code, body)
	}
	if code, body := get("http://" + m.DebugListener.Addr().String() + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile on the debug address: %d %.80q", code, body)
	}
	if code, _ := get("http://" + m.Listener.Addr().String() + "/debug/pprof/"); code == http.StatusOK {
		t.Errorf("the API's address serves profiles (%d)", code)
	}

	plain := startMain(t)
	if plain.DebugListener != nil {
		t.Errorf("a debug listener without --debug-listen: %v", plain.DebugListener.Addr())
	}

	// An address in use fails the start, and Close still returns.
	busy := NewMain(Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), APIKey: testKey, SharedWorkers: 1,
		DrainTimeout: time.Second, DebugListen: m.DebugListener.Addr().String()}, io.Discard)
	if err := busy.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "debug listen") {
		t.Errorf("start with the debug address in use: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- busy.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close after a failed start did not return")
	}
}

// TestTuneGC: the server's garbage-collector defaults apply unless GOGC and
// GOMEMLIMIT are set. It changes the process's settings, so it restores
// Go's defaults and does not run in parallel.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(100)
	defer debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	tuneGC()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GC percent %d, want %d", got, defaultGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != defaultMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, defaultMemoryLimit)
	}

	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(77)
	tuneGC()
	if got := debug.SetGCPercent(100); got != 77 {
		t.Errorf("with GOGC set, the GC percent became %d", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set, the memory limit became %d", got)
	}
}
