package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Result is one run of the benchmark.
type Result struct {
	Started   time.Time        `json:"started"`
	Machine   Machine          `json:"machine"`
	Config    ConfigSummary    `json:"config"`
	Scenarios []ScenarioResult `json:"scenarios"`
	Ratios    []Ratio          `json:"ratios"`
	Targets   []Target         `json:"targets"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGiB float64 `json:"memory_gib"`
	Go        string  `json:"go"`
	OS        string  `json:"os"`
	// LoadAverage is the one-minute load average when the run began: the
	// machine may be shared.
	LoadAverage string `json:"load_average"`
}

// ConfigSummary is the configuration that shapes the figures.
type ConfigSummary struct {
	Short             bool    `json:"short"`
	Clients           int     `json:"clients"`
	Apps              int     `json:"apps"`
	Listeners         int     `json:"listeners"`
	PayloadBytes      int     `json:"payload_bytes"`
	WarmupSeconds     float64 `json:"warmup_seconds"`
	DurationSeconds   float64 `json:"duration_seconds"`
	BatchSize         int     `json:"batch_size"`
	MaxOutstanding    int     `json:"max_outstanding"`
	SharedWorkers     int     `json:"shared_workers"`
	HangTimeoutMS     int64   `json:"hang_timeout_ms"`
	NoisyEvery        int     `json:"noisy_every"`
	OneAppQueue       int     `json:"oneapp_queue"`
	FanoutWebhooks    int     `json:"fanout_webhooks"`
	FanoutRounds      int     `json:"fanout_rounds"`
	BacklogDeliveries int     `json:"backlog_deliveries"`
	BacklogApps       int     `json:"backlog_apps"`
	BacklogRetryS     float64 `json:"backlog_retry_seconds"`
}

// ScenarioResult is what one scenario measured. Deliveries per second count
// arrivals at the receivers within the measured window; latencies run from
// the POST of an event to the arrival of its delivery.
type ScenarioResult struct {
	Name       string  `json:"name"`
	Title      string  `json:"title"`
	Events     int64   `json:"events"`
	Expected   int64   `json:"expected_deliveries"`
	Delivered  int64   `json:"delivered"`
	Duplicates int64   `json:"duplicates"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"deliveries_per_second"`
	// IngestPerSecond is events accepted per second while the load ran.
	IngestPerSecond float64 `json:"ingest_events_per_second,omitempty"`
	P50MS           float64 `json:"p50_ms,omitempty"`
	P99MS           float64 `json:"p99_ms,omitempty"`
	P999MS          float64 `json:"p999_ms,omitempty"`
	MaxMS           float64 `json:"max_ms,omitempty"`
	// PeakRSSMiB is pimhook's VmHWM: its peak resident memory since it
	// started (a fresh process per group of scenarios).
	PeakRSSMiB float64 `json:"pimhook_peak_rss_mib,omitempty"`
	// Cores is the server's (pimhook's, or the relay's) CPU time over the
	// wall time from the start of the load until every delivery arrived;
	// CPUPerDeliveryUS is that CPU time per delivery.
	Cores            float64            `json:"server_cores,omitempty"`
	CPUPerDeliveryUS float64            `json:"server_cpu_us_per_delivery,omitempty"`
	Extra            map[string]float64 `json:"extra,omitempty"`
	Note             string             `json:"note,omitempty"`
}

// Ratio compares two scenarios' figures.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Target is one performance target of the issue and whether it held.
type Target struct {
	Name     string  `json:"name"`
	Want     string  `json:"want"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Holds    bool    `json:"holds"`
}

// scenario returns the result of the named scenario, or nil.
func (r *Result) scenario(name string) *ScenarioResult {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// judge works out the ratios and targets from the scenarios that ran.
func (r *Result) judge() {
	r.Ratios, r.Targets = nil, nil
	get := func(name string) *ScenarioResult {
		s := r.scenario(name)
		if s == nil || s.PerSecond == 0 && s.P99MS == 0 {
			return nil
		}
		return s
	}
	relay, serial, thr, batch := get(scRelay), get(scSerial), get(scThroughput), get(scBatch)
	lat, noisy, one, backlog := get(scLatency), get(scNoisy), get(scOneApp), get(scBacklog)
	ratio := func(name string, a, b float64) float64 {
		v := 0.0
		if b > 0 {
			v = a / b
		}
		r.Ratios = append(r.Ratios, Ratio{Name: name, Value: v})
		return v
	}
	if thr != nil && relay != nil {
		v := ratio("throughput / relay", thr.PerSecond, relay.PerSecond)
		r.Targets = append(r.Targets, Target{Name: "throughput, single-event POSTs", Want: ">= 0.5x relay", Measured: v, Unit: "x relay", Holds: v >= 0.5})
	}
	if batch != nil && relay != nil {
		ratio("batch throughput / relay", batch.PerSecond, relay.PerSecond)
	}
	if thr != nil && relay != nil && relay.CPUPerDeliveryUS > 0 {
		ratio("CPU per delivery: pimhook / relay", thr.CPUPerDeliveryUS, relay.CPUPerDeliveryUS)
	}
	if one != nil && serial != nil {
		// The target is judged on the drain of the queue the scenario
		// meant to build; when pimhook kept up with the posting and no
		// such queue built up, on the rate with ingest alongside.
		name, v := "one app, ingest alongside", ratio("one app, ingest alongside / serial loop", one.PerSecond, serial.PerSecond)
		if one.Extra["drain_queued"] >= float64(r.Config.OneAppQueue) && one.Extra["drain_per_second"] > 0 {
			name, v = "one app, queue draining", ratio("one app, queue draining / serial loop", one.Extra["drain_per_second"], serial.PerSecond)
		}
		r.Targets = append(r.Targets, Target{Name: name, Want: ">= 0.7x serial loop", Measured: v, Unit: "x serial loop", Holds: v >= 0.7})
	}
	if lat != nil {
		r.Targets = append(r.Targets, Target{Name: "latency p99 at half load", Want: "<= 25 ms", Measured: lat.P99MS, Unit: "ms", Holds: lat.P99MS <= 25})
	}
	if backlog != nil {
		r.Targets = append(r.Targets, Target{Name: "backlog peak RSS", Want: "<= 256 MiB", Measured: backlog.PeakRSSMiB, Unit: "MiB", Holds: backlog.PeakRSSMiB <= 256})
		if thr != nil {
			v := ratio("backlog drain / throughput", backlog.PerSecond, thr.PerSecond)
			r.Targets = append(r.Targets, Target{Name: "backlog drain rate", Want: "within 20% of throughput", Measured: v, Unit: "x throughput", Holds: v >= 0.8})
		}
	}
	if noisy != nil && lat != nil {
		v := ratio("noisy healthy p99 / latency p99", noisy.P99MS, lat.P99MS)
		r.Targets = append(r.Targets, Target{Name: "noisy neighbours, healthy p99", Want: "<= 2x latency p99", Measured: v, Unit: "x latency p99", Holds: v <= 2})
	}
}

// Print writes the table, the ratios and the targets.
func (r *Result) Print(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	m := r.Machine
	fmt.Fprintf(bw, "machine   %d CPUs, %s, %.0f GiB, %s %s, load average %s at start\n", m.CPUs, m.CPUModel, m.MemoryGiB, m.Go, m.OS, m.LoadAverage)
	c := r.Config
	fmt.Fprintf(bw, "load      %d clients, %d-byte data, %v warm-up + %v measured, pimhook --shared-workers %d\n",
		c.Clients, c.PayloadBytes, time.Duration(c.WarmupSeconds*float64(time.Second)), time.Duration(c.DurationSeconds*float64(time.Second)), c.SharedWorkers)
	fmt.Fprintf(bw, "%-34s %8s %9s %7s %8s %8s %8s %8s %7s %5s %7s\n", "scenario", "events", "delivered", "per s", "p50", "p99", "p99.9", "max", "RSS MiB", "cores", "cpu/dlv")
	for _, s := range r.Scenarios {
		cpu := "-"
		if s.CPUPerDeliveryUS > 0 {
			cpu = fmt.Sprintf("%.0fus", s.CPUPerDeliveryUS)
		}
		fmt.Fprintf(bw, "%-34s %8d %9d %7s %8s %8s %8s %8s %7s %5s %7s\n", s.Title, s.Events, s.Delivered, num(s.PerSecond, 0),
			ms(s.P50MS), ms(s.P99MS), ms(s.P999MS), ms(s.MaxMS), num(s.PeakRSSMiB, 0), num(s.Cores, 2), cpu)
	}
	for _, s := range r.Scenarios {
		if s.Note != "" {
			fmt.Fprintf(bw, "  %-12s %s\n", s.Name+":", s.Note)
		}
	}
	for _, q := range r.Ratios {
		fmt.Fprintf(bw, "ratio     %-34s %.2f\n", q.Name, q.Value)
	}
	for _, t := range r.Targets {
		verdict := "holds"
		if !t.Holds {
			verdict = "MISSES"
		}
		fmt.Fprintf(bw, "target    %-34s %-26s %8.2f %-14s %s\n", t.Name, t.Want, t.Measured, t.Unit, verdict)
	}
}

func num(v float64, prec int) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	if v < 10 {
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

// WriteJSON writes r to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// describeMachine reads what the run ran on, from /proc where there is one.
func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kib := procStatusKiBFile("/proc/meminfo", "MemTotal"); kib > 0 {
		m.MemoryGiB = float64(kib) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAverage = f[0]
		}
	}
	return m
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
