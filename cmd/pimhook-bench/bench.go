package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// harness is one run of the benchmark: the receiver process, the pimhook
// binary and what the scenarios share.
type harness struct {
	cfg      Config
	bin      string
	dir      string
	rcv      *receivers
	keys     keySource
	maker    *eventMaker
	progress io.Writer
	res      *Result

	// load is the pimhook of throughput, batch, latency and noisy, which
	// run one after the other on the same 1,000 apps.
	load *instance
	// started counts the pimhook processes, to name their directories.
	started int
}

// instance is a pimhook process with its apps, one webhook each, and the
// receiver listeners they deliver to.
type instance struct {
	p         *pimhookProc
	apps      appSet
	listeners []int    // receiver listener ids
	urls      []string // callback URL per app
}

// Measure runs the selected scenarios and returns what they measured. It
// writes progress lines to progress. On error it returns the scenarios that
// completed so far with the error.
func Measure(ctx context.Context, cfg Config, progress io.Writer) (res *Result, err error) {
	res = &Result{Started: time.Now().UTC(), Machine: describeMachine(), Config: summarize(cfg)}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "pimhook-bench-"); err != nil {
			return res, fmt.Errorf("work dir: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	if cfg.Profiles != "" {
		if err := os.MkdirAll(cfg.Profiles, 0o755); err != nil {
			return res, fmt.Errorf("profiles dir: %w", err)
		}
	}
	h := &harness{cfg: cfg, dir: dir, bin: cfg.Pimhook, progress: progress, res: res,
		maker: newEventMaker(cfg.PayloadBytes, cfg.Products)}
	if h.bin == "" {
		h.logf("building pimhook")
		if h.bin, err = buildPimhook(ctx, dir); err != nil {
			return res, err
		}
	}
	if h.rcv, err = startReceivers(ctx); err != nil {
		return res, err
	}
	defer func() {
		err = errors.Join(err, h.closeLoad(), h.rcv.Close())
		res.judge()
	}()
	steps := map[string]func(context.Context) (ScenarioResult, error){
		scRelay:      h.relay,
		scSerial:     h.serial,
		scThroughput: func(ctx context.Context) (ScenarioResult, error) { return h.throughput(ctx, scThroughput, 1) },
		scBatch:      func(ctx context.Context) (ScenarioResult, error) { return h.throughput(ctx, scBatch, cfg.BatchSize) },
		scLatency:    h.latency,
		scNoisy:      h.noisy,
		scOneApp:     h.oneApp,
		scFanout:     h.fanout,
		scBacklog:    h.backlog,
	}
	for _, name := range allScenarios {
		if !cfg.runs(name) {
			continue
		}
		if !slices.Contains([]string{scThroughput, scBatch, scLatency, scNoisy}, name) {
			if err := h.closeLoad(); err != nil {
				return res, err
			}
		}
		h.logf("%s: running", name)
		sr, err := steps[name](ctx)
		if err != nil {
			return res, fmt.Errorf("%s: %w", name, err)
		}
		res.Scenarios = append(res.Scenarios, sr)
		h.logf("%s: %d of %d deliveries arrived, %.0f/s, p99 %.2fms", name, sr.Delivered, sr.Expected, sr.PerSecond, sr.P99MS)
	}
	return res, nil
}

func summarize(c Config) ConfigSummary {
	return ConfigSummary{
		Short: c.Short, Clients: c.Clients, Apps: c.Apps, Listeners: c.Listeners, PayloadBytes: c.PayloadBytes,
		WarmupSeconds: c.Warmup.Seconds(), DurationSeconds: c.Duration.Seconds(), BatchSize: c.BatchSize,
		MaxOutstanding: c.MaxOutstanding, SharedWorkers: c.SharedWorkers, HangTimeoutMS: c.HangTimeout.Milliseconds(),
		NoisyEvery: c.NoisyEvery, OneAppQueue: c.OneAppQueue, FanoutWebhooks: c.FanoutWebhooks, FanoutRounds: c.FanoutRounds, BacklogDeliveries: c.BacklogDeliveries,
		BacklogApps: c.BacklogApps, BacklogRetryS: c.BacklogRetry.Seconds(),
	}
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// startInstance starts a fresh pimhook with n apps, one webhook each made by
// spec from its callback URL, their receivers spread over at most
// cfg.Listeners listeners in mode.
func (h *harness) startInstance(ctx context.Context, n int, mode string, spec func(i int, url string) webhookSpec) (*instance, error) {
	h.started++
	p, err := startPimhook(ctx, h.bin, filepath.Join(h.dir, fmt.Sprintf("pimhook-%d", h.started)), h.cfg)
	if err != nil {
		return nil, err
	}
	h.logf("pimhook pid %d: creating %d apps", p.pid(), n)
	in := &instance{p: p}
	ids, addrs, err := h.rcv.listen(ctx, min(n, h.cfg.Listeners), mode)
	if err == nil {
		in.listeners, in.urls = ids, listenerURLs(addrs, n)
		in.apps, err = p.api.createApps(ctx, n, func(i int) webhookSpec { return spec(i, in.urls[i]) })
	}
	if err != nil {
		return nil, errors.Join(err, h.stopInstance(in))
	}
	return in, nil
}

// stopInstance stops pimhook and closes the receivers' listeners.
func (h *harness) stopInstance(in *instance) error {
	h.rcv.track(nil)
	err := in.p.shutdown()
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, in.p.logTail())
	}
	return errors.Join(err, h.rcv.reset(context.Background()))
}

// loadInstance returns the pimhook of the load scenarios, starting it on
// first use: cfg.Apps apps, each hearing an entity type of its own.
func (h *harness) loadInstance(ctx context.Context) (*instance, error) {
	if h.load != nil {
		return h.load, nil
	}
	in, err := h.startInstance(ctx, h.cfg.Apps, modeOK, func(i int, url string) webhookSpec {
		// Linear one-second retries keep a hanging receiver of the noisy
		// scenario busy; healthy receivers never see a retry.
		return webhookSpec{URL: url, EntityType: appEntityType(i), IncludeEntityData: true,
			RetryPolicy: "linear", MinimumRetryInterval: 1, RetryLimit: 50, TimeoutMS: int(h.cfg.HangTimeout.Milliseconds())}
	})
	if err != nil {
		return nil, err
	}
	h.load = in
	return in, nil
}

func (h *harness) closeLoad() error {
	if h.load == nil {
		return nil
	}
	in := h.load
	h.load = nil
	// Hanging receivers answer now, so that shutdown need not wait for
	// their attempts.
	h.rcv.track(nil)
	err := h.rcv.setMode(context.Background(), in.listeners, modeOK)
	return errors.Join(err, h.stopInstance(in))
}

// appEntityType is the entity type app i of the load scenarios hears: each
// event goes to exactly one app.
func appEntityType(i int) string { return fmt.Sprintf("bench_a%d", i) }

// roundRobin spreads keys over n apps.
func roundRobin(n int) func(uint64) int {
	return func(k uint64) int { return int(k % uint64(n)) }
}

// window is a measured interval of a timed scenario.
type window struct{ from, to time.Time }

func (w window) seconds() float64 { return w.to.Sub(w.from).Seconds() }

// timed returns the window after warm-up of a load starting now.
func (h *harness) timed() (start time.Time, w window) {
	start = time.Now()
	w.from = start.Add(h.cfg.Warmup)
	w.to = w.from.Add(h.cfg.Duration)
	return start, w
}

// fill sets a result's counts, rate and latencies from what a tracker saw in
// window w; keep selects the arrivals whose latency counts (nil: all).
func fill(sr *ScenarioResult, t *tracker, st loadStats, w window, keep func(arrival) bool) trackerSnapshot {
	snap := t.snapshot()
	sr.Events, sr.Expected, sr.Delivered, sr.Duplicates = st.events, snap.expected, int64(len(snap.arrivals)), snap.duplicates
	sr.Seconds = w.seconds()
	n := 0
	for _, a := range snap.arrivals {
		if a.arrived >= w.from.UnixNano() && a.arrived < w.to.UnixNano() && (keep == nil || keep(a)) {
			n++
		}
	}
	sr.PerSecond = float64(n) / sr.Seconds
	sr.IngestPerSecond = st.eventsPerSecond()
	setLatencies(sr, snap.latencies(w.from, w.to, keep))
	return snap
}

func setLatencies(sr *ScenarioResult, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sr.P50MS, sr.P99MS = millis(percentile(lat, 0.50)), millis(percentile(lat, 0.99))
	sr.P999MS, sr.MaxMS = millis(percentile(lat, 0.999)), millis(lat[len(lat)-1])
}

// cpuMeter measures a process's CPU time over an interval.
type cpuMeter struct {
	pid   int
	cpu   time.Duration
	start time.Time
}

func meterCPU(pid int) cpuMeter { return cpuMeter{pid: pid, cpu: procCPU(pid), start: time.Now()} }

// charge sets sr's CPU figures from the CPU time used since the meter
// started: cores (1.0 is one core busy all the time) and CPU time per
// delivery, which a busy shared machine disturbs less than rates.
func (m cpuMeter) charge(sr *ScenarioResult) {
	used := procCPU(m.pid) - m.cpu
	if d := time.Since(m.start).Seconds(); d > 0 {
		sr.Cores = used.Seconds() / d
	}
	if sr.Delivered > 0 {
		sr.CPUPerDeliveryUS = float64(used.Microseconds()) / float64(sr.Delivered)
	}
}

// profileCPU takes a CPU profile of p over the measured window w into the
// profiles directory as <name>.cpu.pprof, in the background; the returned
// function waits for it. Without a profiles directory it does nothing.
func (h *harness) profileCPU(ctx context.Context, p *pimhookProc, name string, w window) func() error {
	if h.cfg.Profiles == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		select {
		case <-time.After(time.Until(w.from)):
		case <-ctx.Done():
			done <- ctx.Err()
			return
		}
		secs := max(1, int(math.Ceil(w.seconds())))
		done <- p.profile(ctx, fmt.Sprintf("profile?seconds=%d", secs), filepath.Join(h.cfg.Profiles, name+".cpu.pprof"))
	}()
	return func() error { return <-done }
}
