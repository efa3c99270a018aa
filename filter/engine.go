package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/dop251/goja"
	"github.com/pimhook/pimhook"
)

// Config sets the budgets of evaluations and the sizes of the engine's
// caches. Zero fields take their defaults.
type Config struct {
	Timeout   time.Duration // budget of one evaluation (one Match or one Apply); default 25ms
	MaxMemory int64         // heap the process may grow by during one evaluation; default 64 MiB
	MaxStack  int           // JS call-stack depth; default 256
	Runtimes  int           // idle JS runtimes kept for reuse; default 2*GOMAXPROCS
	Cache     int           // compiled filters/reducers kept; default 4096
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 25 * time.Millisecond
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = 64 << 20
	}
	if c.MaxStack <= 0 {
		c.MaxStack = 256
	}
	if c.Runtimes <= 0 {
		c.Runtimes = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Cache <= 0 {
		c.Cache = 4096
	}
	return c
}

// Run-time errors of Match and Apply wrap one of these when the
// evaluation was stopped for its budget.
var (
	ErrTimeout = errors.New("time budget exceeded")
	ErrMemory  = errors.New("memory budget exceeded")
)

// Engine compiles filters and reducers and evaluates them in a sandbox.
// It is safe for concurrent use.
type Engine struct {
	cfg  Config
	pool pool
	dog  *watchdog

	mu       sync.Mutex
	filters  map[string]*Filter
	reducers map[string]*Reducer

	evals sync.Pool

	// onCall, for tests, is called before each condition with its
	// argument, and returns the argument to use.
	onCall func(src string, vm *goja.Runtime, arg goja.Value) goja.Value
}

var _ pimhook.FilterCompiler = (*Engine)(nil)

// New returns an engine. It starts nothing: runtimes are made when first
// needed, and the watchdog goroutine runs only while evaluations do.
func New(cfg Config) *Engine {
	cfg = cfg.WithDefaults()
	e := &Engine{
		cfg:      cfg,
		pool:     pool{idle: make(chan *jsRuntime, cfg.Runtimes), maxStack: cfg.MaxStack},
		dog:      newWatchdog(cfg.MaxMemory),
		filters:  make(map[string]*Filter),
		reducers: make(map[string]*Reducer),
	}
	e.evals.New = func() any { return &evaluation{e: e} }
	return e
}

// Close stops the watchdog goroutine. An engine used again after Close
// starts it again.
func (e *Engine) Close() {
	e.dog.close()
}

// Default field names of compile errors from Filter and Reducer.
const (
	fieldFilter  = "filter_configuration"
	fieldReducer = "reducer_configuration"
)

// CheckFilter compiles f and reports the first error as a
// *pimhook.Error of code invalid_filter whose Field is field and the path
// inside f. It does not change f.
func (e *Engine) CheckFilter(f *pimhook.Filter, field string) error {
	_, err := e.filter(f, field)
	return err
}

// CheckReducer compiles r and reports the first error as a
// *pimhook.Error of code invalid_reducer whose Field is field and the key
// path inside r.
func (e *Engine) CheckReducer(r json.RawMessage, field string) error {
	_, err := e.reducer(r, field)
	return err
}

// Filter returns f compiled. Compiled filters are cached by content, so
// compiling the same filter again costs a map lookup.
func (e *Engine) Filter(f *pimhook.Filter) (*Filter, error) {
	return e.filter(f, fieldFilter)
}

// FilterAt is Filter, with compile errors reported at field as CheckFilter
// reports them.
func (e *Engine) FilterAt(f *pimhook.Filter, field string) (*Filter, error) {
	return e.filter(f, field)
}

// Reducer returns r compiled, cached by content like filters.
func (e *Engine) Reducer(r json.RawMessage) (*Reducer, error) {
	return e.reducer(r, fieldReducer)
}

// ReducerAt is Reducer, with compile errors reported at field as
// CheckReducer reports them.
func (e *Engine) ReducerAt(r json.RawMessage, field string) (*Reducer, error) {
	return e.reducer(r, field)
}

func (e *Engine) filter(f *pimhook.Filter, field string) (*Filter, error) {
	var buf [256]byte
	key := appendFilterKey(buf[:0], f, 0)
	return cached(e, e.filters, key, func() (*Filter, error) { return compileFilter(e, f, field) })
}

func (e *Engine) reducer(r json.RawMessage, field string) (*Reducer, error) {
	return cached(e, e.reducers, r, func() (*Reducer, error) { return compileReducer(e, r, field) })
}

// cached returns m's entry for key, compiling and storing it on a miss.
// Two goroutines that miss together both compile; the first stored wins.
func cached[V any](e *Engine, m map[string]V, key []byte, compile func() (V, error)) (V, error) {
	e.mu.Lock()
	c, ok := m[string(key)]
	e.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := compile()
	if err != nil {
		return c, err
	}
	e.mu.Lock()
	if old, ok := m[string(key)]; ok {
		c = old
	} else {
		evictOne(m, e.cfg.Cache)
		m[string(key)] = c
	}
	e.mu.Unlock()
	return c, nil
}

// evictOne makes room in a full cache by dropping an arbitrary entry.
func evictOne[V any](m map[string]V, size int) {
	if len(m) < size {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}

// appendFilterKey appends a spelling of f that differs for filters that
// differ: every string is prefixed by its length.
func appendFilterKey(b []byte, f *pimhook.Filter, depth int) []byte {
	if f == nil {
		return append(b, 'n')
	}
	if depth > pimhook.MaxFilterDepth {
		// Past the limit Normalize refuses it anyway; keep the key short.
		return append(b, 'x')
	}
	for _, s := range [...]string{f.Query, f.Condition, f.Logic} {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	b = append(b, '[')
	for _, c := range f.Conditions {
		b = appendFilterKey(b, c, depth+1)
	}
	return append(b, ']')
}

// begin starts an evaluation and puts it under the watchdog.
func (e *Engine) begin() *evaluation {
	ev := e.evals.Get().(*evaluation)
	ev.deadline = time.Now().Add(e.cfg.Timeout)
	ev.reason.Store(reasonNone)
	ev.values = e.maxValues()
	e.dog.add(ev)
	return ev
}

// end takes ev from the watchdog, returns its runtime to the pool and
// recycles ev.
func (ev *evaluation) end() {
	e := ev.e
	e.dog.remove(ev)
	if rt := ev.rt; rt != nil {
		ev.rt = nil
		if !ev.broken {
			rt.vm.ClearInterrupt()
			e.pool.put(rt)
		}
	}
	ev.broken = false
	e.evals.Put(ev)
}

// maxValues is how many JavaScript values one evaluation may make from
// the document for its conditions: a value costs some 64 bytes or more.
func (e *Engine) maxValues() int {
	return int(e.cfg.MaxMemory / 64)
}

// runtime returns the runtime of ev, taking one from the pool on first use.
// Making a new runtime takes some 10ms, which is not charged to ev.
func (ev *evaluation) runtime() (*jsRuntime, error) {
	if ev.rt != nil {
		return ev.rt, nil
	}
	start := time.Now()
	rt, made, err := ev.e.pool.get()
	if err != nil {
		return nil, err
	}
	var spent time.Duration
	if made {
		spent = time.Since(start)
	}
	ev.e.dog.setRuntime(ev, rt, spent)
	return rt, nil
}

// budgetError is an evaluation stopped by the watchdog, or one that would
// have exceeded a budget.
type budgetError struct {
	where  string // "conditions[1]", "product.sku"; empty for a filter's root
	part   string // "condition", "query", "reducer"
	reason int32
	e      *Engine
	detail string
}

func (b *budgetError) Error() string {
	prefix := ""
	if b.where != "" {
		prefix = b.where + ": "
	}
	if b.detail != "" {
		return prefix + b.part + " " + b.detail
	}
	if b.reason == reasonMemory {
		return fmt.Sprintf("%s%s ran past its %s memory budget", prefix, b.part, formatBytes(b.e.cfg.MaxMemory))
	}
	return fmt.Sprintf("%s%s ran past its %v budget", prefix, b.part, b.e.cfg.Timeout)
}

func (b *budgetError) Unwrap() error {
	if b.reason == reasonMemory {
		return ErrMemory
	}
	return ErrTimeout
}

// stopped returns the error of an evaluation the watchdog stopped, or nil.
func (ev *evaluation) stopped(where, part string) error {
	if r := ev.reason.Load(); r != reasonNone {
		return &budgetError{where: where, part: part, reason: r, e: ev.e}
	}
	return nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// prefixed prefixes a message with where it happened, if anywhere.
func prefixed(where, msg string) string {
	if where == "" {
		return msg
	}
	return where + ": " + msg
}
