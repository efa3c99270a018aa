package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	"github.com/pimhook/pimhook/filter"
	"github.com/pimhook/pimhook/graphql"
	pimhttp "github.com/pimhook/pimhook/http"
	"github.com/pimhook/pimhook/postgres"
	"github.com/pimhook/pimhook/sqlite"
)

// DefaultCompanyID is the company that the --api-key belongs to.
const DefaultCompanyID = "co_default"

// Main is a running pimhook server: store, dispatcher and HTTP API. The
// end-to-end tests use it as the binary does.
type Main struct {
	Config Config
	Logger *slog.Logger

	Store      store
	Catalog    *dispatch.Catalog
	Dispatcher *dispatch.Dispatcher
	Server     *http.Server
	Listener   net.Listener
	// DebugListener serves the Go runtime's profiles when
	// Config.DebugListen is set.
	DebugListener net.Listener

	stderr    io.Writer
	served    chan error
	unlock    func()
	filters   *filter.Engine
	stopPrune context.CancelFunc
	debug     *http.Server
}

// NewMain returns a Main that logs to stderr.
func NewMain(cfg Config, stderr io.Writer) *Main {
	return &Main{
		Config: cfg,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})),
		stderr: stderr,
	}
}

// Run opens the store, starts the dispatcher and starts serving HTTP. It
// returns once the server listens.
func (m *Main) Run(ctx context.Context) error {
	s, unlock, err := openStore(ctx, m.Config, m.Logger)
	if err != nil {
		return err
	}
	m.Store, m.unlock = s, unlock
	if err := m.bootstrap(ctx); err != nil {
		return err
	}
	if m.Config.Database != "" {
		m.Catalog = dispatch.NewClusterCatalog(s)
	} else {
		m.Catalog = dispatch.NewCatalog(s)
	}
	// On PostgreSQL every node shares the queues: apps are served under
	// leases.
	var leaser pimhook.Leaser
	if l, ok := s.(pimhook.Leaser); ok && m.Config.Database != "" {
		leaser = l
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.filters = filter.New(filter.Config{Timeout: m.Config.FilterTimeout, MaxMemory: m.Config.FilterMemory})
	guard := dispatch.NewGuard(m.Config.AllowTargets)
	m.Dispatcher, err = dispatch.New(dispatch.Config{
		Catalog:       m.Catalog,
		Jobs:          m.Store,
		Client:        dispatch.NewClient(dispatch.ClientConfig{Guard: guard}),
		Logger:        m.Logger,
		SharedWorkers: m.Config.SharedWorkers,
		TypeWorkers:   m.Config.TypeWorkers,
		DrainTimeout:  m.Config.DrainTimeout,
		Filters:       m.filters,
		Metrics:       dispatch.NewMetrics(reg),
		Leaser:        leaser,
		LeaseTTL:      m.Config.LeaseTTL,
		DisableAfter:  m.Config.DisableAfter,
	})
	if err != nil {
		return err
	}
	if err := m.Dispatcher.Start(ctx); err != nil {
		return err
	}
	reg.MustRegister(m.Dispatcher.Collector())
	gql := graphql.NewHandler(graphql.Config{
		Store:   m.Catalog,
		Jobs:    m.Dispatcher,
		Targets: guard,
		Filters: m.Dispatcher.Filters(),
		Logger:  m.Logger,
	})
	api := &pimhttp.Server{
		Store:    m.Catalog,
		Ingester: m.Dispatcher,
		Jobs:     m.Dispatcher,
		Bulk:     m.Dispatcher,
		Operator: m.Dispatcher,
		Ready:    m.Dispatcher.Ready,
		Extra:    map[string]http.Handler{"GET /metrics": promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
		Filters:  m.Dispatcher.Filters(),
		Targets:  guard,
		Logger:   m.Logger,
		Authed:   map[string]http.Handler{"POST /graphql": gql, "GET /graphql": gql},
	}
	if m.Config.DebugListen != "" {
		if err := m.serveDebug(); err != nil {
			return err
		}
	}
	m.Listener, err = net.Listen("tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.Server = &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	if m.Config.Retention > 0 {
		pctx, cancel := context.WithCancel(context.Background())
		m.stopPrune = cancel
		go m.prune(pctx)
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.Server.Serve(m.Listener) }()
	m.Logger.Info("pimhook listening", "addr", "http://"+m.Listener.Addr().String(), "data_dir", m.Config.DataDir)
	return nil
}

// Close shuts down in order: stop taking requests, let in-flight deliveries
// finish (bounded by the drain timeout), close the store.
func (m *Main) Close() error {
	var errs []error
	if m.Server != nil && m.served != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.Server.Shutdown(ctx))
		cancel()
		if err := <-m.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if m.debug != nil {
		errs = append(errs, m.debug.Close())
	}
	if m.stopPrune != nil {
		m.stopPrune()
	}
	if m.Dispatcher != nil {
		errs = append(errs, m.Dispatcher.Stop(context.Background()))
	}
	if m.filters != nil {
		m.filters.Close()
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
		m.unlock()
	}
	return errors.Join(errs...)
}

// serveDebug serves the Go runtime's profiles on their own listener, so
// that they are never exposed with the API.
func (m *Main) serveDebug() error {
	l, err := net.Listen("tcp", m.Config.DebugListen)
	if err != nil {
		return fmt.Errorf("debug listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.DebugListener = l
	go func() { _ = m.debug.Serve(l) }()
	m.Logger.Info("profiles served", "addr", "http://"+l.Addr().String()+"/debug/pprof/")
	return nil
}

// pruneEvery is how often the retention setting is applied.
const pruneEvery = time.Hour

// prune applies the retention setting now and every pruneEvery until ctx
// ends. With several nodes each prunes; deleting twice is harmless.
func (m *Main) prune(ctx context.Context) {
	for {
		n, err := m.Store.Prune(ctx, time.Now().Add(-m.Config.Retention))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.Logger.Error("apply retention", "err", err)
		case n > 0:
			m.Logger.Info("retention applied", "deliveries_deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneEvery):
		}
	}
}

// bootstrap creates the default company at first start, and makes sure the
// configured API key opens it. With no key configured at first start, one is
// generated and printed once; only its hash is stored.
func (m *Main) bootstrap(ctx context.Context) error {
	now := time.Now().UTC()
	created := false
	if _, err := m.Store.Company(ctx, DefaultCompanyID); pimhook.IsNotFound(err) {
		co := &pimhook.Company{ID: DefaultCompanyID, Name: "default", CreatedAt: now}
		err := m.Store.CreateCompany(ctx, co)
		switch {
		case pimhook.ErrorKind(err) == pimhook.KindConflict:
			// Another node of the cluster made it first.
		case err != nil:
			return fmt.Errorf("create default company: %w", err)
		default:
			created = true
		}
	} else if err != nil {
		return fmt.Errorf("read default company: %w", err)
	}
	key := m.Config.APIKey
	switch {
	case key != "":
		co, err := m.Store.CompanyByAPIKey(ctx, pimhook.HashAPIKey(key))
		if err == nil && co.ID == DefaultCompanyID {
			return nil
		}
		if err == nil {
			return errors.New("--api-key belongs to another company")
		}
	case created:
		key = pimhook.NewAPIKey()
		fmt.Fprintf(m.stderr, "\nAPI key of the default company (shown once, stored hashed):\n\n    %s\n\n", key)
	default:
		return nil
	}
	k := &pimhook.APIKey{ID: pimhook.NewID(pimhook.PrefixAPIKey, now), CompanyID: DefaultCompanyID, Hash: pimhook.HashAPIKey(key), Prefix: pimhook.KeyPrefix(key), CreatedAt: now}
	if err := m.Store.CreateAPIKey(ctx, k); err != nil {
		// Another node of the cluster may have stored the same key.
		if co, lerr := m.Store.CompanyByAPIKey(ctx, k.Hash); lerr == nil && co.ID == DefaultCompanyID {
			return nil
		}
		return fmt.Errorf("store API key: %w", err)
	}
	return nil
}

// store is what Main needs of a store: the storage contract and job runs.
type store interface {
	pimhook.Store
	pimhook.JobStore
}

// openStore opens PostgreSQL when cfg.Database is set. Otherwise it locks the data directory and opens the store in it. The lock
// keeps a second process off the same file: two dispatchers on one queue
// would send every delivery twice, and in parallel. It is released by the
// returned function, or by the kernel when the process dies.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store, func(), error) {
	if cfg.Database != "" {
		s, err := postgres.Open(ctx, cfg.Database, postgres.Options{Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return s, func() {}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "pimhook.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("data dir %s is in use by another pimhook process (%s is locked)", cfg.DataDir, path)
	}
	unlock := func() { f.Close() }
	s, err := sqlite.Open(ctx, cfg.dbPath(), sqlite.Options{Logger: log})
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("open %s: %w", cfg.dbPath(), err)
	}
	return s, unlock, nil
}
