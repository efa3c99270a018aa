package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Scenario names, as -scenarios takes them, in the order they run. The relay
// and the serial loop run first: they are the ceilings the others are
// compared with.
const (
	scRelay      = "relay"      // 7a: the bare store-nothing relay under the load of throughput
	scSerial     = "serial"     // 7b: a bare serial POST loop to one receiver
	scThroughput = "throughput" // 1: single-event POSTs
	scBatch      = "batch"      // 1: the batch API
	scLatency    = "latency"    // 2: fixed rate, half of throughput
	scNoisy      = "noisy"      // 6: part of the receivers hang
	scOneApp     = "oneapp"     // 3: one app, serial by design
	scFanout     = "fanout"     // 4: one event to many webhooks
	scBacklog    = "backlog"    // 5: a queue built while receivers are down, then drained
)

var allScenarios = []string{scRelay, scSerial, scThroughput, scBatch, scLatency, scNoisy, scOneApp, scFanout, scBacklog}

// Config is what one run of the benchmark does. The zero value is not
// usable; parseConfig fills it from flags, FullConfig and ShortConfig give
// the two presets.
type Config struct {
	// Pimhook is the pimhook binary; empty builds ./cmd/pimhook into Dir.
	Pimhook string
	// Dir holds the binary, the data directories and pimhook's logs; empty
	// means a new temporary directory, removed afterwards.
	Dir string
	// Out, when set, receives the result as JSON.
	Out string
	// Scenarios to run, a subset of allScenarios; they run in that order.
	Scenarios []string
	// Short marks the tiny preset, whose figures mean nothing.
	Short bool
	// Profiles, when set, is a directory that receives a CPU profile of
	// pimhook over each timed scenario's measured window, and a heap
	// profile at the backlog's peak.
	Profiles string

	// Load.
	Clients        int           // concurrent keep-alive HTTP clients posting events
	Apps           int           // apps (one webhook each) of throughput, latency and noisy
	Listeners      int           // at most this many receiver listeners; apps share them beyond
	PayloadBytes   int           // size of an event's data
	Products       int           // entities per app that events update in turn
	Warmup         time.Duration // load before the measured window
	Duration       time.Duration // the measured window
	BatchSize      int           // events per POST in the batch scenario
	MaxOutstanding int           // closed-loop clients pause while this many deliveries have not arrived
	Rate           float64       // latency rate (events/s) when throughput does not run first

	// pimhook.
	SharedWorkers int
	LogLevel      string
	// HangTimeout is the webhooks' timeout_ms in the noisy scenario: how
	// long a hanging receiver holds an attempt.
	HangTimeout time.Duration
	NoisyEvery  int // one app in this many has a hanging receiver

	// OneAppQueue is how many deliveries the one-app scenario queues after
	// its sustained load, to measure the drain of one app's queue.
	OneAppQueue int

	FanoutWebhooks int
	FanoutRounds   int

	BacklogDeliveries int
	BacklogApps       int
	// BacklogRetry is the backlog webhooks' linear retry interval: how
	// often each app's head delivery finds its receiver down while the
	// queue builds, and so how long apps take to notice it came up.
	BacklogRetry time.Duration

	// Stall is how long to wait without a single arrival before declaring
	// deliveries lost.
	Stall time.Duration
}

// FullConfig returns the sizes of the issue.
func FullConfig() Config {
	return Config{
		Scenarios:         slices.Clone(allScenarios),
		Clients:           64,
		Apps:              1000,
		Listeners:         1000,
		PayloadBytes:      1024,
		Products:          100,
		Warmup:            5 * time.Second,
		Duration:          20 * time.Second,
		BatchSize:         100,
		MaxOutstanding:    5000,
		SharedWorkers:     256,
		LogLevel:          "warn",
		HangTimeout:       2500 * time.Millisecond,
		NoisyEvery:        10,
		OneAppQueue:       20_000,
		FanoutWebhooks:    1000,
		FanoutRounds:      5,
		BacklogDeliveries: 1_000_000,
		BacklogApps:       10_000,
		BacklogRetry:      10 * time.Second,
		Stall:             60 * time.Second,
	}
}

// ShortConfig returns the tiny sizes of -short: every scenario in a few
// seconds, to prove the harness works, not to measure.
func ShortConfig() Config {
	c := FullConfig()
	c.Short = true
	c.Clients = 8
	c.Apps = 20
	c.Listeners = 20
	c.Products = 5
	c.Warmup = 200 * time.Millisecond
	c.Duration = 800 * time.Millisecond
	c.BatchSize = 10
	c.MaxOutstanding = 200
	c.SharedWorkers = 16
	c.HangTimeout = 300 * time.Millisecond
	c.OneAppQueue = 300
	c.FanoutWebhooks = 20
	c.FanoutRounds = 2
	c.BacklogDeliveries = 1000
	c.BacklogApps = 50
	c.BacklogRetry = 500 * time.Millisecond
	c.Stall = 20 * time.Second
	return c
}

func (c Config) validate() error {
	var errs []error
	for _, s := range c.Scenarios {
		if !slices.Contains(allScenarios, s) {
			errs = append(errs, fmt.Errorf("-scenarios: unknown scenario %q (want some of %s)", s, strings.Join(allScenarios, ",")))
		}
	}
	positive := map[string]int{
		"-clients": c.Clients, "-apps": c.Apps, "-listeners": c.Listeners, "-products": c.Products,
		"-batch": c.BatchSize, "-max-outstanding": c.MaxOutstanding, "-shared-workers": c.SharedWorkers,
		"-noisy-every": c.NoisyEvery, "-oneapp-queue": c.OneAppQueue, "-fanout": c.FanoutWebhooks, "-fanout-rounds": c.FanoutRounds,
		"-backlog": c.BacklogDeliveries, "-backlog-apps": c.BacklogApps,
	}
	for name, v := range positive {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s: want a positive number, got %d", name, v))
		}
	}
	if c.BatchSize > 1000 {
		errs = append(errs, fmt.Errorf("-batch: pimhook takes at most 1000 events per POST, got %d", c.BatchSize))
	}
	if c.PayloadBytes < 200 {
		errs = append(errs, fmt.Errorf("-payload: want at least 200 bytes, got %d", c.PayloadBytes))
	}
	if c.Duration <= 0 || c.Warmup < 0 || c.HangTimeout < time.Millisecond || c.BacklogRetry < time.Millisecond || c.Stall <= 0 {
		errs = append(errs, errors.New("-duration, -hang-timeout, -backlog-retry and -stall must be positive, -warmup not negative"))
	}
	if c.HangTimeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("-hang-timeout: pimhook allows at most 10s, got %v", c.HangTimeout))
	}
	if c.BacklogDeliveries%c.BacklogApps != 0 {
		errs = append(errs, fmt.Errorf("-backlog %d is not a multiple of -backlog-apps %d: the backlog is events fanned out to every app", c.BacklogDeliveries, c.BacklogApps))
	}
	if c.runs(scLatency) && !c.runs(scThroughput) && c.Rate <= 0 {
		errs = append(errs, errors.New("-rate: the latency scenario needs a rate when throughput does not run"))
	}
	return errors.Join(errs...)
}

// runs reports whether scenario s is selected.
func (c Config) runs(s string) bool { return slices.Contains(c.Scenarios, s) }

// parseConfig reads the flags. -short picks the tiny preset; flags given
// explicitly override either preset.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	short := slices.ContainsFunc(args, func(a string) bool {
		return a == "-short" || a == "--short" || a == "-short=true" || a == "--short=true"
	})
	c := FullConfig()
	if short {
		c = ShortConfig()
	}
	fs := flag.NewFlagSet("pimhook-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("short", false, "run every scenario tiny: proves the harness works in seconds, measures nothing")
	fs.StringVar(&c.Pimhook, "pimhook", c.Pimhook, "pimhook binary to run (default: build ./cmd/pimhook)")
	fs.StringVar(&c.Dir, "dir", c.Dir, "working directory for the binary, data and logs (default: a temporary directory, removed afterwards)")
	fs.StringVar(&c.Out, "out", c.Out, "write the result as JSON to this file")
	fs.StringVar(&c.Profiles, "profiles", c.Profiles, "write pprof profiles of pimhook (CPU per timed scenario, heap of the backlog) to this directory; profiling costs pimhook CPU, so compare figures only between runs that both profile or both do not")
	scenarios := fs.String("scenarios", strings.Join(c.Scenarios, ","), "scenarios to run, comma-separated")
	fs.IntVar(&c.Clients, "clients", c.Clients, "concurrent keep-alive HTTP clients")
	fs.IntVar(&c.Apps, "apps", c.Apps, "apps (one webhook each) for throughput, latency and noisy")
	fs.IntVar(&c.Listeners, "listeners", c.Listeners, "receiver listeners at most; apps share them beyond that")
	fs.IntVar(&c.PayloadBytes, "payload", c.PayloadBytes, "bytes of event data")
	fs.IntVar(&c.Products, "products", c.Products, "entities per app that the events update in turn")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "load before each measured window")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured window of each timed scenario")
	fs.IntVar(&c.BatchSize, "batch", c.BatchSize, "events per POST in the batch scenario")
	fs.IntVar(&c.MaxOutstanding, "max-outstanding", c.MaxOutstanding, "closed-loop clients pause while this many deliveries have not arrived")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "events/s of the latency and noisy scenarios when throughput does not run (default: half of throughput)")
	fs.IntVar(&c.SharedWorkers, "shared-workers", c.SharedWorkers, "pimhook --shared-workers")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "pimhook --log-level")
	fs.DurationVar(&c.HangTimeout, "hang-timeout", c.HangTimeout, "webhook timeout of the noisy scenario, which hanging receivers run into")
	fs.IntVar(&c.NoisyEvery, "noisy-every", c.NoisyEvery, "one app in this many hangs in the noisy scenario")
	fs.IntVar(&c.OneAppQueue, "oneapp-queue", c.OneAppQueue, "deliveries queued for the one app, whose drain is then measured")
	fs.IntVar(&c.FanoutWebhooks, "fanout", c.FanoutWebhooks, "webhooks (one per app) that hear the fan-out event")
	fs.IntVar(&c.FanoutRounds, "fanout-rounds", c.FanoutRounds, "fan-out events, one after the other")
	fs.IntVar(&c.BacklogDeliveries, "backlog", c.BacklogDeliveries, "deliveries queued in the backlog scenario")
	fs.IntVar(&c.BacklogApps, "backlog-apps", c.BacklogApps, "apps (one webhook each) the backlog is spread across")
	fs.DurationVar(&c.BacklogRetry, "backlog-retry", c.BacklogRetry, "linear retry interval of the backlog webhooks while their receivers are down")
	fs.DurationVar(&c.Stall, "stall", c.Stall, "give up on deliveries after this long without any arrival")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.Scenarios = nil
	for s := range strings.SplitSeq(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Scenarios = append(c.Scenarios, s)
		}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
