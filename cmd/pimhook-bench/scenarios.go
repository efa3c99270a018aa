package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"
)

// relay is scenario 7a: the load of throughput (single events to cfg.Apps
// receivers) through the bare relay instead of pimhook.
func (h *harness) relay(ctx context.Context) (sr ScenarioResult, err error) {
	sr = ScenarioResult{Name: scRelay, Title: "7a relay (ceiling of 1)"}
	proc, addr, err := startRole(ctx, roleRelay)
	if err != nil {
		return sr, err
	}
	defer func() { err = errors.Join(err, proc.stop(nil, 10*time.Second)) }()
	defer func() { err = errors.Join(err, h.rcv.reset(context.Background())) }()
	_, addrs, err := h.rcv.listen(ctx, min(h.cfg.Apps, h.cfg.Listeners), modeOK)
	if err != nil {
		return sr, err
	}
	tgt := &forwardTarget{hc: newHTTPClient(h.cfg.Clients), maker: h.maker, urls: listenerURLs(addrs, h.cfg.Apps), relay: "http://" + addr}
	t := newTracker(h.keys.peek(), 1)
	h.rcv.track(t)
	defer h.rcv.track(nil)
	cpu := meterCPU(proc.pid())
	_, w := h.timed()
	st, err := closedLoop{target: tgt, tracker: t, keys: &h.keys, appOf: roundRobin(h.cfg.Apps),
		clients: h.cfg.Clients, batch: 1, maxOutstanding: h.cfg.MaxOutstanding}.run(ctx, w.to)
	if err != nil {
		return sr, err
	}
	if err := t.waitAll(ctx, h.cfg.Stall); err != nil {
		return sr, err
	}
	fill(&sr, t, st, w, nil)
	cpu.charge(&sr)
	sr.Note = fmt.Sprintf("the relay forwards each POST synchronously; cores is the relay's CPU; %d clients", h.cfg.Clients)
	return sr, nil
}

// serial is scenario 7b: one client posting to one receiver, each POST
// after the last one's answer.
func (h *harness) serial(ctx context.Context) (sr ScenarioResult, err error) {
	sr = ScenarioResult{Name: scSerial, Title: "7b serial POST loop (ceiling of 3)"}
	defer func() { err = errors.Join(err, h.rcv.reset(context.Background())) }()
	_, addrs, err := h.rcv.listen(ctx, 1, modeOK)
	if err != nil {
		return sr, err
	}
	tgt := &forwardTarget{hc: newHTTPClient(1), maker: h.maker, urls: listenerURLs(addrs, 1)}
	t := newTracker(h.keys.peek(), 1)
	h.rcv.track(t)
	defer h.rcv.track(nil)
	_, w := h.timed()
	st, err := closedLoop{target: tgt, tracker: t, keys: &h.keys, appOf: roundRobin(1),
		clients: 1, batch: 1, maxOutstanding: 1 << 30}.run(ctx, w.to)
	if err != nil {
		return sr, err
	}
	if err := t.waitAll(ctx, h.cfg.Stall); err != nil {
		return sr, err
	}
	fill(&sr, t, st, w, nil)
	return sr, nil
}

// throughput is scenario 1: closed-loop clients posting single events
// (batch 1) or batches to cfg.Apps apps, one delivery per event.
func (h *harness) throughput(ctx context.Context, name string, batch int) (ScenarioResult, error) {
	sr := ScenarioResult{Name: name, Title: "1 throughput, single events"}
	if batch > 1 {
		sr.Title = fmt.Sprintf("1 throughput, batches of %d", batch)
	}
	in, err := h.loadInstance(ctx)
	if err != nil {
		return sr, err
	}
	t := newTracker(h.keys.peek(), 1)
	h.rcv.track(t)
	defer h.rcv.track(nil)
	tgt := &pimhookTarget{api: in.p.api, maker: h.maker, entityType: appEntityType, batch: batch > 1}
	st, err := h.closedRun(ctx, &sr, in.p, tgt, t, h.cfg.Apps, batch)
	if err != nil {
		return sr, err
	}
	sr.Note = fmt.Sprintf("ingest %.0f events/s in %d POSTs; at most %d deliveries outstanding, so latencies are queueing",
		sr.IngestPerSecond, st.posts, h.cfg.MaxOutstanding)
	return sr, nil
}

// closedRun drives p with the closed-loop clients, events round-robin over
// apps in POSTs of batch, for the warm-up and the measured window, waits
// for every delivery, and fills sr with what t saw and what p used.
func (h *harness) closedRun(ctx context.Context, sr *ScenarioResult, p *pimhookProc, tgt *pimhookTarget, t *tracker, apps, batch int) (loadStats, error) {
	cpu := meterCPU(p.pid())
	_, w := h.timed()
	prof := h.profileCPU(ctx, p, sr.Name, w)
	st, err := closedLoop{target: tgt, tracker: t, keys: &h.keys, appOf: roundRobin(apps),
		clients: h.cfg.Clients, batch: batch, maxOutstanding: h.cfg.MaxOutstanding}.run(ctx, w.to)
	if err = errors.Join(err, prof()); err != nil {
		return st, fmt.Errorf("%w\n%s", err, p.logTail())
	}
	if err := t.waitAll(ctx, h.cfg.Stall); err != nil {
		return st, err
	}
	fill(sr, t, st, w, nil)
	cpu.charge(sr)
	sr.PeakRSSMiB = mib(procStatusKiB(p.pid(), "VmHWM"))
	return st, nil
}

// latencyRate is the fixed rate of the latency and noisy scenarios: half
// the measured throughput.
func (h *harness) latencyRate() float64 {
	if s := h.res.scenario(scThroughput); s != nil && s.PerSecond > 0 {
		return s.PerSecond / 2
	}
	return h.cfg.Rate
}

// latency is scenario 2: single events at a fixed rate, half the measured
// throughput, from open-loop clients.
func (h *harness) latency(ctx context.Context) (ScenarioResult, error) {
	sr := ScenarioResult{Name: scLatency, Title: "2 latency at half load"}
	return sr, h.openLoad(ctx, &sr, nil)
}

// noisy is scenario 6: the latency scenario's load while one app in
// cfg.NoisyEvery has a receiver that hangs until the webhook's timeout;
// latencies count the healthy apps only.
func (h *harness) noisy(ctx context.Context) (ScenarioResult, error) {
	sr := ScenarioResult{Name: scNoisy, Title: "6 noisy neighbours, healthy apps"}
	in, err := h.loadInstance(ctx)
	if err != nil {
		return sr, err
	}
	var hang []int
	for i, id := range in.listeners {
		if i%h.cfg.NoisyEvery == 0 {
			hang = append(hang, id)
		}
	}
	if err := h.rcv.setMode(ctx, hang, modeHang); err != nil {
		return sr, err
	}
	noisyApp := make([]bool, h.cfg.Apps)
	nNoisy := 0
	for app := range noisyApp {
		noisyApp[app] = (app%len(in.listeners))%h.cfg.NoisyEvery == 0
		if noisyApp[app] {
			nNoisy++
		}
	}
	if err := h.openLoad(ctx, &sr, noisyApp); err != nil {
		return sr, err
	}
	sr.Extra["noisy_apps"] = float64(nNoisy)
	sr.Note = fmt.Sprintf("%d of %d apps hang for %v per attempt (linear 1s retries); %s", nNoisy, h.cfg.Apps, h.cfg.HangTimeout, sr.Note)
	return sr, nil
}

// openLoad runs the open-loop load of latency and noisy on the load
// instance; noisy marks apps whose deliveries are not waited for.
func (h *harness) openLoad(ctx context.Context, sr *ScenarioResult, noisy []bool) error {
	rate := h.latencyRate()
	if rate <= 0 {
		return errors.New("no rate: run throughput first or pass -rate")
	}
	in, err := h.loadInstance(ctx)
	if err != nil {
		return err
	}
	t := newTracker(h.keys.peek(), 1)
	h.rcv.track(t)
	defer h.rcv.track(nil)
	var expect func(int) bool
	var keep func(arrival) bool
	if noisy != nil {
		expect = func(app int) bool { return !noisy[app] }
		keep = func(a arrival) bool { return int(a.app) < len(noisy) && !noisy[a.app] }
	}
	tgt := &pimhookTarget{api: in.p.api, maker: h.maker, entityType: appEntityType}
	cpu := meterCPU(in.p.pid())
	start, w := h.timed()
	prof := h.profileCPU(ctx, in.p, sr.Name, w)
	st, err := openLoop{target: tgt, tracker: t, keys: &h.keys, appOf: roundRobin(h.cfg.Apps),
		clients: h.cfg.Clients, rate: rate, expect: expect}.run(ctx, start, w.to.Sub(start))
	if err = errors.Join(err, prof()); err != nil {
		return fmt.Errorf("%w\n%s", err, in.p.logTail())
	}
	if err := t.waitAll(ctx, h.cfg.Stall); err != nil {
		return err
	}
	fill(sr, t, st, w, keep)
	cpu.charge(sr)
	sr.PeakRSSMiB = mib(procStatusKiB(in.p.pid(), "VmHWM"))
	sr.Extra = map[string]float64{"rate": rate, "late_posts": float64(st.late), "max_late_ms": millis(st.maxLate)}
	sr.Note = fmt.Sprintf("%.0f events/s open loop; %d posts more than 1ms late (worst %.1fms)", rate, st.late, millis(st.maxLate))
	return nil
}

// oneApp is scenario 3: closed-loop clients posting events for a single
// app, whose deliveries go out one after the other.
func (h *harness) oneApp(ctx context.Context) (sr ScenarioResult, err error) {
	sr = ScenarioResult{Name: scOneApp, Title: "3 one app"}
	in, err := h.startInstance(ctx, 1, modeOK, func(_ int, url string) webhookSpec {
		return webhookSpec{URL: url, EntityType: "bench_solo", IncludeEntityData: true}
	})
	if err != nil {
		return sr, err
	}
	defer func() { err = errors.Join(err, h.stopInstance(in)) }()
	t := newTracker(h.keys.peek(), 1)
	h.rcv.track(t)
	defer h.rcv.track(nil)
	solo := func(int) string { return "bench_solo" }
	tgt := &pimhookTarget{api: in.p.api, maker: h.maker, entityType: solo}
	if _, err := h.closedRun(ctx, &sr, in.p, tgt, t, 1, 1); err != nil {
		return sr, err
	}
	dr, err := h.drainOne(ctx, in.p, &pimhookTarget{api: in.p.api, maker: h.maker, entityType: solo, batch: true}, t)
	if err != nil {
		return sr, err
	}
	sr.Extra = map[string]float64{"drain_queued": float64(dr.queued), "drain_per_second": dr.perSecond,
		"drain_deliveries": float64(dr.deliveries), "drain_cpu_per_delivery_us": dr.cpuPerDeliveryUS}
	sr.Note = fmt.Sprintf("ingest %.0f events/s alongside, latencies queueing behind at most %d outstanding; "+
		"then a queue of %d (of %d wanted) drained at %.0f/s with no ingest (%.0fus CPU per delivery)",
		sr.IngestPerSecond, h.cfg.MaxOutstanding, dr.queued, h.cfg.OneAppQueue, dr.perSecond, dr.cpuPerDeliveryUS)
	return sr, nil
}

// drained is what drainOne measured.
type drained struct {
	queued           int64 // deliveries outstanding when the posting stopped
	deliveries       int   // deliveries that arrived after that
	perSecond        float64
	cpuPerDeliveryUS float64
}

// drainFill bounds how long drainOne posts to build the queue, and
// drainBatch is how many events it posts at a time: the queue is built
// faster than one app delivers even by the short preset's pimhook.
const (
	drainFill  = 30 * time.Second
	drainBatch = 100
)

// drainOne queues cfg.OneAppQueue deliveries for the one app, posting
// batches as fast as pimhook takes them (its worker delivering meanwhile)
// for at most drainFill, then stops posting and measures how fast the queue
// drains: the app's delivery loop with nothing else on the machine, as the
// serial loop it is compared with has.
func (h *harness) drainOne(ctx context.Context, p *pimhookProc, tgt *pimhookTarget, t *tracker) (drained, error) {
	var buf []byte
	evs := make([]event, drainBatch)
	for until := time.Now().Add(drainFill); time.Now().Before(until); {
		if n, _ := t.outstanding(); n >= int64(h.cfg.OneAppQueue) {
			break
		}
		k := h.keys.take(len(evs))
		now := time.Now().UnixNano()
		for i := range evs {
			evs[i] = event{key: k + uint64(i), sent: now}
		}
		per, err := tgt.send(ctx, evs, &buf)
		if err != nil {
			return drained{}, fmt.Errorf("%w\n%s", err, p.logTail())
		}
		t.expect(sum(per))
	}
	from := time.Now()
	var d drained
	d.queued, _ = t.outstanding()
	cpu := procCPU(p.pid())
	// The profile covers the drain's first seconds, while the queue is
	// still long.
	prof := h.profileCPU(ctx, p, scOneApp+"-drain", window{from: from, to: from.Add(2 * time.Second)})
	err := t.waitAll(ctx, h.cfg.Stall)
	used := procCPU(p.pid()) - cpu
	if err = errors.Join(err, prof()); err != nil {
		return drained{}, err
	}
	last := from.UnixNano()
	for _, a := range t.snapshot().arrivals {
		if a.arrived >= from.UnixNano() {
			d.deliveries++
			last = max(last, a.arrived)
		}
	}
	if d.deliveries > 0 && last > from.UnixNano() {
		d.perSecond = float64(d.deliveries) / time.Duration(last-from.UnixNano()).Seconds()
		d.cpuPerDeliveryUS = float64(used.Microseconds()) / float64(d.deliveries)
	}
	return d, nil
}

// fanout is scenario 4: one event heard by cfg.FanoutWebhooks webhooks, one
// per app; each round posts one event and waits for all its deliveries.
func (h *harness) fanout(ctx context.Context) (sr ScenarioResult, err error) {
	n := h.cfg.FanoutWebhooks
	sr = ScenarioResult{Name: scFanout, Title: fmt.Sprintf("4 fan-out to %d webhooks", n)}
	in, err := h.startInstance(ctx, n, modeOK, func(_ int, url string) webhookSpec {
		return webhookSpec{URL: url, EntityType: "bench_fan", IncludeEntityData: true}
	})
	if err != nil {
		return sr, err
	}
	defer func() { err = errors.Join(err, h.stopInstance(in)) }()
	t := newTracker(h.keys.peek(), n)
	h.rcv.track(t)
	tgt := &pimhookTarget{api: in.p.api, maker: h.maker, entityType: func(int) string { return "bench_fan" }, unique: true}
	cpu := meterCPU(in.p.pid())
	var all, first []time.Duration
	var buf []byte
	start := time.Now()
	for range h.cfg.FanoutRounds {
		ev := event{key: h.keys.take(1), sent: time.Now().UnixNano()}
		per, err := tgt.send(ctx, []event{ev}, &buf)
		if err != nil {
			return sr, fmt.Errorf("%w\n%s", err, in.p.logTail())
		}
		t.expect(sum(per))
		if err := t.waitAll(ctx, h.cfg.Stall); err != nil {
			return sr, err
		}
		var lo, hi int64
		for _, a := range t.snapshot().arrivals {
			if a.key == ev.key {
				if lo == 0 || a.arrived < lo {
					lo = a.arrived
				}
				hi = max(hi, a.arrived)
			}
		}
		first, all = append(first, time.Duration(lo-ev.sent)), append(all, time.Duration(hi-ev.sent))
	}
	snap := t.snapshot()
	sr.Events, sr.Expected, sr.Delivered, sr.Duplicates = int64(h.cfg.FanoutRounds), snap.expected, int64(len(snap.arrivals)), snap.duplicates
	cpu.charge(&sr)
	setLatencies(&sr, snap.latencies(start, time.Now(), nil))
	slices.Sort(all)
	slices.Sort(first)
	med := all[len(all)/2]
	sr.Seconds = time.Since(start).Seconds()
	sr.PerSecond = float64(n) / med.Seconds()
	sr.PeakRSSMiB = mib(procStatusKiB(in.p.pid(), "VmHWM"))
	sr.Extra = map[string]float64{"all_arrived_ms_median": millis(med), "all_arrived_ms_max": millis(all[len(all)-1]),
		"first_arrival_ms_median": millis(first[len(first)/2])}
	sr.Note = fmt.Sprintf("all %d arrived %.0fms after the POST (median of %d rounds, worst %.0fms); the first after %.1fms; per s is %d / median",
		n, millis(med), len(all), millis(all[len(all)-1]), millis(first[len(first)/2]), n)
	return sr, nil
}

// backlog is scenario 5: cfg.BacklogDeliveries deliveries queued across
// cfg.BacklogApps apps while their receivers are down (connections reset), then the
// receivers come up and the queue drains. The backlog is events each heard
// by every app's webhook; the webhooks retry linearly every
// cfg.BacklogRetry, so each app's head delivery fails once per interval
// while the queue builds, and every app has noticed the receivers are up
// within one interval.
func (h *harness) backlog(ctx context.Context) (sr ScenarioResult, err error) {
	apps := h.cfg.BacklogApps
	events := h.cfg.BacklogDeliveries / apps
	sr = ScenarioResult{Name: scBacklog, Title: fmt.Sprintf("5 backlog of %d, drain", h.cfg.BacklogDeliveries)}
	in, err := h.startInstance(ctx, apps, modeDown, func(_ int, url string) webhookSpec {
		return webhookSpec{URL: url, EntityType: "bench_back", IncludeEntityData: true,
			RetryPolicy: "linear", MinimumRetryInterval: h.cfg.BacklogRetry.Seconds(), RetryLimit: 50}
	})
	if err != nil {
		return sr, err
	}
	defer func() { err = errors.Join(err, h.stopInstance(in)) }()
	pid := in.p.pid()
	t := newTracker(h.keys.peek(), apps)
	h.rcv.track(t)
	var peakRSS atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if kib := procStatusKiB(pid, "VmRSS"); kib > peakRSS.Load() {
				peakRSS.Store(kib)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	h.logf("backlog: queueing %d events x %d apps while the receivers are down", events, apps)
	tgt := &pimhookTarget{api: in.p.api, maker: h.maker, entityType: func(int) string { return "bench_back" }, unique: true}
	base := h.keys.take(events)
	queueStart := time.Now()
	err = parallel(ctx, events, min(h.cfg.Clients, 4), func(ctx context.Context, i int) error {
		var buf []byte
		per, err := tgt.send(ctx, []event{{key: base + uint64(i), sent: time.Now().UnixNano()}}, &buf)
		if err != nil {
			return err
		}
		t.expect(sum(per))
		return nil
	})
	queued := time.Since(queueStart)
	if err != nil {
		return sr, fmt.Errorf("queue: %w\n%s", err, in.p.logTail())
	}
	if retries := time.Duration(50) * h.cfg.BacklogRetry; queued > retries/2 {
		h.logf("backlog: queueing took %v, close to the %v of retries the webhooks have: raise -backlog-retry", queued, retries)
	}
	queuedRSS := procStatusKiB(pid, "VmHWM")
	early := int64(len(t.snapshot().arrivals))
	if h.cfg.Profiles != "" {
		if err := errors.Join(in.p.profile(ctx, "heap", filepath.Join(h.cfg.Profiles, "backlog-queued.heap.pprof")),
			in.p.snapshot(ctx, filepath.Join(h.cfg.Profiles, "backlog-queued.metrics.txt"))); err != nil {
			return sr, err
		}
	}

	h.logf("backlog: %d deliveries queued in %v; receivers up", t.snapshot().expected, queued.Round(time.Millisecond))
	// From here VmHWM is the drain's own peak, where the kernel lets us
	// reset it; the sampler's figure keeps the whole scenario's peak.
	drainHWM := resetPeakRSS(pid)
	cpu := meterCPU(pid)
	up := time.Now()
	if err := h.rcv.setMode(ctx, in.listeners, modeOK); err != nil {
		return sr, err
	}
	if err := t.waitAll(ctx, max(h.cfg.Stall, 3*h.cfg.BacklogRetry)); err != nil {
		return sr, fmt.Errorf("drain: %w", err)
	}
	snap := t.snapshot()
	drain := snap.lastArrival().Sub(up)
	sr.Events, sr.Expected, sr.Delivered, sr.Duplicates = int64(events), snap.expected, int64(len(snap.arrivals)), snap.duplicates
	cpu.charge(&sr)
	sr.Seconds = drain.Seconds()
	sr.PerSecond = float64(sr.Delivered) / sr.Seconds
	hwm := procStatusKiB(pid, "VmHWM")
	sr.PeakRSSMiB = mib(max(hwm, queuedRSS, peakRSS.Load()))
	stopSampling()
	sr.Extra = map[string]float64{"queue_seconds": queued.Seconds(), "queue_deliveries_per_second": float64(snap.expected) / queued.Seconds(),
		"peak_rss_queued_mib": mib(queuedRSS), "drain_seconds": drain.Seconds(), "arrived_before_up": float64(early)}
	drainPeak := "not separable here"
	if drainHWM {
		sr.Extra["peak_rss_drain_mib"] = mib(hwm)
		drainPeak = fmt.Sprintf("%.0f MiB", mib(hwm))
	}
	sr.Note = fmt.Sprintf("queued in %.1fs (%.0f deliveries/s; peak RSS %.0f MiB by then); drained in %.1fs from receivers up (peak RSS of the drain %s); apps notice within %v (their retry interval)",
		queued.Seconds(), float64(snap.expected)/queued.Seconds(), mib(queuedRSS), drain.Seconds(), drainPeak, h.cfg.BacklogRetry)
	return sr, nil
}
