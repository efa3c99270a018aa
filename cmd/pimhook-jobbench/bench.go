package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	"github.com/pimhook/pimhook/sqlite"
)

// Config says what to measure.
type Config struct {
	Products int     // per run
	Changed  float64 // share of products that change from one run to the next
	Rounds   int     // compare runs measured, each followed by a decode-only; 0 means 1
	Dir      string  // "" for a temporary directory
	// Profile, if set, is called when the first measured run starts; what
	// it returns, when that run ends.
	Profile func() (stop func())
}

// Round is one measured compare run and the decode-only of the same file
// right after it.
type Round struct {
	Run            *pimhook.JobRun
	Time, Decode   time.Duration
	CPU, DecodeCPU time.Duration // user and system time, all threads
	PeakRSS        int64         // VmHWM during the run, bytes
	PeakGo         int64         // the Go runtime's peak of mapped memory during the run, bytes
}

// Ratio is the run's time over the decode-only time.
func (r *Round) Ratio() float64 { return r.Time.Seconds() / r.Decode.Seconds() }

// Result is what Measure found.
type Result struct {
	Products  int
	FileBytes int64         // size of one run's NDJSON file
	First     time.Duration // the first run: every product ADDED
	Rounds    []Round
}

// Print writes the figures.
func (r *Result) Print(w io.Writer) {
	mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	fmt.Fprintf(w, "products per run  %d, %.0f bytes each, %s per file\n", r.Products, float64(r.FileBytes)/float64(r.Products), mib(r.FileBytes))
	fmt.Fprintf(w, "first run         %s (every product ADDED)\n", sec(r.First))
	fmt.Fprintf(w, "%-6s %8s %8s %8s %8s %8s %6s %9s %9s %9s\n", "round", "updated", "deliv.", "run", "decode", "ratio", "cpu", "cpu ratio", "peak RSS", "peak Go")
	for i, rd := range r.Rounds {
		fmt.Fprintf(w, "%-6d %8d %8d %8s %8s %8.2f %6s %9.2f %9s %9s\n", i+1, rd.Run.Updated, rd.Run.Deliveries,
			sec(rd.Time), sec(rd.Decode), rd.Ratio(), sec(rd.CPU), rd.CPU.Seconds()/rd.DecodeCPU.Seconds(), mib(rd.PeakRSS), mib(rd.PeakGo))
	}
	m := r.Median()
	fmt.Fprintf(w, "median ratio      %.2f (run %s, decode %s); highest peak RSS %s\n", m.Ratio(), sec(m.Time), sec(m.Decode), mib(r.PeakRSS()))
}

// Median returns the round with the median ratio.
func (r *Result) Median() Round {
	rs := slices.Clone(r.Rounds)
	slices.SortFunc(rs, func(a, b Round) int { return cmp.Compare(a.Ratio(), b.Ratio()) })
	return rs[len(rs)/2]
}

// PeakRSS is the highest peak RSS of any round.
func (r *Result) PeakRSS() int64 {
	var p int64
	for _, rd := range r.Rounds {
		p = max(p, rd.PeakRSS)
	}
	return p
}

// Measure writes two runs of a job that differ in cfg.Changed of their
// products, runs the first, then measures rounds: each runs the other file
// (so every measured run compares against a state from which that share
// changed) and decodes the same file right after. Progress goes to log.
func Measure(ctx context.Context, cfg Config, log io.Writer) (*Result, error) {
	if cfg.Products < 1 || cfg.Changed < 0 || cfg.Changed > 1 {
		return nil, errors.New("want at least one product and a changed share between 0 and 1")
	}
	rounds := max(cfg.Rounds, 1)
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pimhook-jobbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	every := 0 // every how many products one changes
	if cfg.Changed > 0 {
		every = max(1, int(1/cfg.Changed+0.5))
	}
	files := []string{filepath.Join(dir, "run1.ndjson"), filepath.Join(dir, "run2.ndjson")}
	fmt.Fprintf(log, "writing %d products per run to %s\n", cfg.Products, dir)
	res := &Result{Products: cfg.Products}
	for i, f := range files {
		size, err := writeRun(f, cfg.Products, i*every)
		if err != nil {
			return nil, err
		}
		res.FileBytes = size
	}

	rig, err := newRig(ctx, filepath.Join(dir, "pimhook.db"))
	if err != nil {
		return nil, err
	}
	defer rig.close()

	fmt.Fprintln(log, "first run")
	if res.First, _, err = rig.runFile(ctx, files[0]); err != nil {
		return nil, err
	}
	for i := range rounds {
		file := files[(i+1)%2]
		fmt.Fprintf(log, "round %d: run %s\n", i+1, filepath.Base(file))
		var rd Round
		runtime.GC()
		resetPeak()
		var stop func()
		if cfg.Profile != nil && i == 0 {
			stop = cfg.Profile()
		}
		sampler := sampleGoMemory()
		cpu := cpuTime()
		rd.Time, rd.Run, err = rig.runFile(ctx, file)
		rd.CPU = cpuTime() - cpu
		rd.PeakGo = sampler()
		if stop != nil {
			stop()
		}
		if err != nil {
			return nil, err
		}
		rd.PeakRSS = peakRSS()
		if want := cfg.Products / max(every, 1); every > 0 && rd.Run.Updated != want {
			return nil, fmt.Errorf("round %d found %d updated products, want %d", i+1, rd.Run.Updated, want)
		}

		fmt.Fprintf(log, "round %d: decode %s\n", i+1, filepath.Base(file))
		runtime.GC()
		cpu = cpuTime()
		if rd.Decode, err = decodeOnly(file); err != nil {
			return nil, err
		}
		rd.DecodeCPU = cpuTime() - cpu
		res.Rounds = append(res.Rounds, rd)
	}
	return res, nil
}

// sampleGoMemory samples the memory the Go runtime has mapped, every 50ms,
// until the returned function is called, which returns the peak. Beside
// RSS, it tells the Go heap from the memory SQLite allocates for itself.
func sampleGoMemory() (stop func() int64) {
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	read := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64())
	}
	done, result := make(chan struct{}), make(chan int64)
	go func() {
		peak := read()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				peak = max(peak, read())
			case <-done:
				result <- max(peak, read())
				return
			}
		}
	}()
	return func() int64 {
		close(done)
		return <-result
	}
}

// rig is a dispatcher over a SQLite store with two webhooks on the job: one
// for every change, one monitoring the price. Its workers are stopped, so
// nothing is sent: the benchmark measures the run, not the deliveries.
type rig struct {
	store *sqlite.Store
	d     *dispatch.Dispatcher
	co    *pimhook.Company
}

const benchJob = "bench"

func newRig(ctx context.Context, path string) (*rig, error) {
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	r := &rig{store: s}
	if err := r.setup(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return r, nil
}

func (r *rig) setup(ctx context.Context) error {
	now := time.Now()
	r.co = &pimhook.Company{ID: "co_bench", Name: "bench", CreatedAt: now}
	if err := r.store.CreateCompany(ctx, r.co); err != nil {
		return err
	}
	app := &pimhook.App{ID: "app_bench", CompanyID: r.co.ID, Name: "feed", AppType: "generic", Worker: pimhook.WorkerShared, CreatedAt: now, UpdatedAt: now}
	if err := r.store.CreateApp(ctx, app); err != nil {
		return err
	}
	for i, fields := range [][]string{nil, {"price"}} {
		w := &pimhook.Webhook{
			ID: "wh_bench_" + strconv.Itoa(i), CompanyID: r.co.ID, AppID: app.ID, URL: "http://127.0.0.1:9/",
			JobID: benchJob, Fields: fields, Enabled: true, Secret: pimhook.NewSecret(), CreatedAt: now, UpdatedAt: now,
		}
		if fields != nil {
			w.Events = []pimhook.Action{pimhook.ActionUpdated}
		}
		if err := w.Normalize(); err != nil {
			return err
		}
		if err := r.store.CreateWebhook(ctx, w); err != nil {
			return err
		}
	}
	cat := dispatch.NewCatalog(r.store)
	d, err := dispatch.New(dispatch.Config{
		Catalog: cat,
		Jobs:    r.store,
		Client:  dispatch.NewClient(dispatch.ClientConfig{Guard: dispatch.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})}),
	})
	if err != nil {
		return err
	}
	r.d = d
	return d.Stop(ctx) // before Start: the workers never run
}

func (r *rig) close() { r.store.Close() }

// runFile runs the job with the products of an NDJSON file.
func (r *rig) runFile(ctx context.Context, path string) (time.Duration, *pimhook.JobRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	start := time.Now()
	run, err := r.d.RunJob(ctx, r.co, pimhook.JobRunRequest{JobID: benchJob, Body: f, NDJSON: true})
	if err != nil {
		return 0, nil, err
	}
	return time.Since(start), run, nil
}

// decodeOnly is the yardstick: read the file line by line and decode each
// line into a map, as the least any consumer of the run must do.
func decodeOnly(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	br := bufio.NewReaderSize(f, 256<<10)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				return 0, fmt.Errorf("decode line %d: %w", n+1, err)
			}
			n++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// writeRun writes n products as NDJSON; with every > 0, each every-th
// product (from the middle of the first stretch) is changed.
func writeRun(path string, n, every int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var b bytes.Buffer
	var size int64
	for i := range n {
		b.Reset()
		product(&b, i, every > 0 && i%every == every/2)
		b.WriteByte('\n')
		size += int64(b.Len())
		if _, err := bw.Write(b.Bytes()); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return size, f.Close()
}

var words = strings.Fields(`ergonomic chair desk lamp oak walnut steel cotton linen wool leather
	adjustable height armrest lumbar support swivel castor frame finish matte gloss natural
	sustainable sourced certified assembly required warranty years indoor outdoor modern classic`)

// product writes product i, about 1 KB, the same every time; changed
// products get another price and stock.
func product(b *bytes.Buffer, i int, changed bool) {
	rnd := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	cents, stock := 500+rnd.IntN(100000), rnd.IntN(500)
	if changed {
		cents, stock = cents+100, stock+7
	}
	fmt.Fprintf(b, `{"id":"p%07d","sku":"SKU-%07d-%02d","name":"%s %s %d","price":%d.%02d,"currency":"EUR","stock":%d,`,
		i, i, rnd.IntN(100), words[rnd.IntN(len(words))], words[rnd.IntN(len(words))], i, cents/100, cents%100, stock)
	fmt.Fprintf(b, `"brand":"brand-%d","category":"cat-%d","ean":"400%010d",`, rnd.IntN(200), rnd.IntN(1000), rnd.IntN(1e9))
	fmt.Fprintf(b, `"attrs":{"color":"%s","size":"%s","material":"%s","weight":%d.%d},`,
		[]string{"black", "white", "oak", "red", "blue"}[rnd.IntN(5)], []string{"S", "M", "L", "XL"}[rnd.IntN(4)],
		words[rnd.IntN(len(words))], rnd.IntN(50), rnd.IntN(10))
	fmt.Fprintf(b, `"images":["https://cdn.example.com/p/%07d/1.jpg","https://cdn.example.com/p/%07d/2.jpg"],`, i, i)
	fmt.Fprintf(b, `"tags":["%s","%s","%s"],"updated_at":"2024-07-31T12:%02d:%02dZ","description":"`,
		words[rnd.IntN(len(words))], words[rnd.IntN(len(words))], words[rnd.IntN(len(words))], rnd.IntN(60), rnd.IntN(60))
	start := b.Len()
	for b.Len()-start < 560 {
		if b.Len() > start {
			b.WriteByte(' ')
		}
		b.WriteString(words[rnd.IntN(len(words))])
	}
	b.WriteString(`"}`)
}

// resetPeak resets the process's peak resident set size (VmHWM), where
// Linux allows it.
func resetPeak() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns VmHWM, the peak resident set size, in bytes; 0 where
// /proc does not tell.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
