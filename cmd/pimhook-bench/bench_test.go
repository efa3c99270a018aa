package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary play the harness's child roles: the
// harness re-executes its own binary, which here is this one.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		if err := runRole(context.Background(), role, os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("pimhook-bench " + role + ": " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestShortRun is the benchmark's short mode, which CI runs: every scenario,
// tiny, against the real pimhook binary and real receiver and relay
// processes. It checks that every scenario produced figures and that every
// delivery arrived, not how fast.
func TestShortRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "result.json")
	var stdout, progress strings.Builder
	err := run(t.Context(), []string{"-short", "-dir", dir, "-out", out}, &stdout, &progress)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result JSON: %v", err)
	}
	if len(res.Scenarios) != len(allScenarios) {
		t.Fatalf("%d scenarios in the result, want %d", len(res.Scenarios), len(allScenarios))
	}
	for i, s := range res.Scenarios {
		if s.Name != allScenarios[i] {
			t.Errorf("scenario %d is %q, want %q", i, s.Name, allScenarios[i])
		}
		if s.Events <= 0 || s.Expected <= 0 || s.Delivered != s.Expected {
			t.Errorf("%s: %d events, %d of %d deliveries arrived", s.Name, s.Events, s.Delivered, s.Expected)
		}
		if s.PerSecond <= 0 {
			t.Errorf("%s: %v deliveries per second", s.Name, s.PerSecond)
		}
		switch s.Name {
		case scLatency, scNoisy, scFanout:
			if s.P50MS <= 0 || s.P99MS < s.P50MS || s.P999MS < s.P99MS || s.MaxMS < s.P999MS {
				t.Errorf("%s: latencies p50 %v, p99 %v, p99.9 %v, max %v", s.Name, s.P50MS, s.P99MS, s.P999MS, s.MaxMS)
			}
		}
		if s.Name != scRelay && s.Name != scSerial && s.PeakRSSMiB <= 0 {
			t.Errorf("%s: no peak RSS of pimhook", s.Name)
		}
	}
	if s := res.scenario(scBacklog); s != nil && s.Delivered != int64(res.Config.BacklogDeliveries) {
		t.Errorf("backlog: %d deliveries, want %d", s.Delivered, res.Config.BacklogDeliveries)
	}
	if s := res.scenario(scFanout); s != nil && s.Delivered != int64(res.Config.FanoutWebhooks*res.Config.FanoutRounds) {
		t.Errorf("fanout: %d deliveries, want %d", s.Delivered, res.Config.FanoutWebhooks*res.Config.FanoutRounds)
	}
	if s := res.scenario(scOneApp); s != nil {
		// The drain is of the queue the scenario built: the deliveries
		// outstanding when the posting stopped arrive after that (all but
		// those whose arrival the receivers had not reported yet).
		q := s.Extra["drain_queued"]
		if q < float64(res.Config.OneAppQueue) || s.Extra["drain_deliveries"] < 0.9*q || s.Extra["drain_per_second"] <= 0 {
			t.Errorf("oneapp: drained %v, want a queue of at least %d drained", s.Extra, res.Config.OneAppQueue)
		}
	}
	if len(res.Ratios) != 7 || len(res.Targets) != 6 {
		t.Errorf("ratios %+v, targets %+v: want 7 and 6", res.Ratios, res.Targets)
	}
	for _, want := range []string{"7a relay", "5 backlog", "target", "ratio"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table has no %q:\n%s", want, stdout.String())
		}
	}
}

// TestJudgeOneApp checks which rate the one-app target is judged on: the
// drain when the scenario built its queue, the rate with ingest alongside
// when it did not.
func TestJudgeOneApp(t *testing.T) {
	for _, tc := range []struct {
		queued float64
		want   string
		value  float64
	}{
		{queued: 20000, want: "one app, queue draining", value: 0.75},
		{queued: 50, want: "one app, ingest alongside", value: 0.25},
	} {
		r := &Result{Config: ConfigSummary{OneAppQueue: 20000}, Scenarios: []ScenarioResult{
			{Name: scSerial, PerSecond: 4000},
			{Name: scOneApp, PerSecond: 1000, Extra: map[string]float64{"drain_queued": tc.queued, "drain_per_second": 3000}},
		}}
		r.judge()
		if len(r.Targets) != 1 || r.Targets[0].Name != tc.want || r.Targets[0].Measured != tc.value || r.Targets[0].Holds != (tc.value >= 0.7) {
			t.Errorf("queue of %v: targets %+v, want %q at %v", tc.queued, r.Targets, tc.want, tc.value)
		}
	}
}
