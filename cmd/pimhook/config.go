package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// Config is the configuration of `pimhook serve`.
type Config struct {
	Listen        string
	DataDir       string
	APIKey        string
	AllowTargets  []netip.Prefix
	SharedWorkers int
	TypeWorkers   map[string]int
	DrainTimeout  time.Duration
	LogLevel      slog.Level
	// FilterTimeout and FilterMemory bound one evaluation of a filter or
	// reducer; zero means the filter package's defaults.
	FilterTimeout time.Duration
	FilterMemory  int64
	// DisableAfter is how long a webhook may fail without a success before
	// it is disabled; negative never.
	DisableAfter time.Duration
	// Database, a postgres:// URL, selects PostgreSQL instead of the
	// embedded SQLite file; several nodes may share it.
	Database string
	// LeaseTTL is how long a node's claim on an app lasts unrenewed, with
	// PostgreSQL: how soon a dead node's apps are taken over.
	LeaseTTL time.Duration
	// Retention is how long finished deliveries, their attempts and the
	// error log are kept; zero keeps them forever.
	Retention time.Duration
	// DebugListen, when set, is the address of a second listener that
	// serves the Go runtime's profiles (/debug/pprof/).
	DebugListen string
}

func (c Config) dbPath() string { return filepath.Join(c.DataDir, "pimhook.db") }

// parseConfig reads flags, each of which falls back to an environment
// variable PIMHOOK_<NAME> and then to its default.
func parseConfig(name string, args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("pimhook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen   = fs.String("listen", env("PIMHOOK_LISTEN", "127.0.0.1:8080"), "address to listen on (PIMHOOK_LISTEN)")
		dataDir  = fs.String("data-dir", env("PIMHOOK_DATA_DIR", "./pimhook-data"), "directory of the SQLite database (PIMHOOK_DATA_DIR)")
		apiKey   = fs.String("api-key", env("PIMHOOK_API_KEY", ""), "API key of the default company; generated and printed once when absent at first start (PIMHOOK_API_KEY)")
		allow    = fs.String("allow-targets", env("PIMHOOK_ALLOW_TARGETS", ""), "comma-separated CIDRs deliveries may reach although private or loopback (PIMHOOK_ALLOW_TARGETS)")
		shared   = fs.String("shared-workers", env("PIMHOOK_SHARED_WORKERS", "32"), "size of the general shared worker pool (PIMHOOK_SHARED_WORKERS)")
		types    = fs.String("type-workers", env("PIMHOOK_TYPE_WORKERS", ""), "shared pools per app type, e.g. shopware=8,magento=4 (PIMHOOK_TYPE_WORKERS)")
		drain    = fs.String("drain-timeout", env("PIMHOOK_DRAIN_TIMEOUT", "10s"), "how long shutdown waits for in-flight deliveries (PIMHOOK_DRAIN_TIMEOUT)")
		fTimeout = fs.String("filter-timeout", env("PIMHOOK_FILTER_TIMEOUT", "25ms"), "time budget of one filter or reducer evaluation (PIMHOOK_FILTER_TIMEOUT)")
		fMemory  = fs.String("filter-memory-mb", env("PIMHOOK_FILTER_MEMORY_MB", "64"), "heap growth in MiB one filter evaluation may cause before it is stopped (PIMHOOK_FILTER_MEMORY_MB)")
		disable  = fs.String("disable-after", env("PIMHOOK_DISABLE_AFTER", "120h"), "disable a webhook whose attempts all failed for this long; 0 never (PIMHOOK_DISABLE_AFTER)")
		database = fs.String("database", env("PIMHOOK_DATABASE", ""), "postgres:// URL of a PostgreSQL database several nodes share; default: SQLite in --data-dir (PIMHOOK_DATABASE)")
		leaseTTL = fs.String("lease-ttl", env("PIMHOOK_LEASE_TTL", "10s"), "with --database: how long a node's claim on an app lasts unrenewed (PIMHOOK_LEASE_TTL)")
		retain   = fs.String("retention", env("PIMHOOK_RETENTION", "720h"), "how long finished deliveries, their attempts and the error log are kept; 0 forever (PIMHOOK_RETENTION)")
		logLevel = fs.String("log-level", env("PIMHOOK_LOG_LEVEL", "info"), "debug, info, warn or error (PIMHOOK_LOG_LEVEL)")
		debug    = fs.String("debug-listen", env("PIMHOOK_DEBUG_LISTEN", ""), "address of a listener serving /debug/pprof/ profiles; off when empty, keep it private (PIMHOOK_DEBUG_LISTEN)")
	)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := Config{Listen: *listen, DataDir: *dataDir, APIKey: *apiKey, Database: *database, DebugListen: *debug}
	if cfg.Database != "" && !strings.HasPrefix(cfg.Database, "postgres://") && !strings.HasPrefix(cfg.Database, "postgresql://") {
		return Config{}, fmt.Errorf("--database: want a postgres:// URL")
	}
	var err error
	if cfg.AllowTargets, err = dispatch.ParseCIDRs(*allow); err != nil {
		return Config{}, fmt.Errorf("--allow-targets: %w", err)
	}
	if cfg.SharedWorkers, err = strconv.Atoi(*shared); err != nil || cfg.SharedWorkers < 1 {
		return Config{}, fmt.Errorf("--shared-workers: want a positive number, got %q", *shared)
	}
	if cfg.TypeWorkers, err = parsePools(*types); err != nil {
		return Config{}, fmt.Errorf("--type-workers: %w", err)
	}
	if cfg.DrainTimeout, err = time.ParseDuration(*drain); err != nil || cfg.DrainTimeout <= 0 {
		return Config{}, fmt.Errorf("--drain-timeout: want a duration such as 10s, got %q", *drain)
	}
	if cfg.FilterTimeout, err = time.ParseDuration(*fTimeout); err != nil || cfg.FilterTimeout <= 0 {
		return Config{}, fmt.Errorf("--filter-timeout: want a duration such as 25ms, got %q", *fTimeout)
	}
	if cfg.Retention, err = time.ParseDuration(*retain); err != nil || cfg.Retention < 0 {
		return Config{}, fmt.Errorf("--retention: want a duration such as 720h (0: forever), got %q", *retain)
	}
	if cfg.LeaseTTL, err = time.ParseDuration(*leaseTTL); err != nil || cfg.LeaseTTL < pimhook.MinLeaseTTL {
		return Config{}, fmt.Errorf("--lease-ttl: want a duration of at least %s, got %q", pimhook.MinLeaseTTL, *leaseTTL)
	}
	if cfg.DisableAfter, err = time.ParseDuration(*disable); err != nil || cfg.DisableAfter < 0 {
		return Config{}, fmt.Errorf("--disable-after: want a duration such as 120h (0: never), got %q", *disable)
	}
	if cfg.DisableAfter == 0 {
		cfg.DisableAfter = -1
	}
	mb, err := strconv.Atoi(*fMemory)
	if err != nil || mb < 1 {
		return Config{}, fmt.Errorf("--filter-memory-mb: want a positive number, got %q", *fMemory)
	}
	cfg.FilterMemory = int64(mb) << 20
	if err := cfg.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return Config{}, fmt.Errorf("--log-level: %w", err)
	}
	return cfg, nil
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// parsePools parses "type=size,type=size".
func parsePools(s string) (map[string]int, error) {
	out := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, size, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(size))
		if !ok || err != nil || n < 1 || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("want app_type=size with a positive size, got %q", part)
		}
		out[strings.ToLower(strings.TrimSpace(name))] = n
	}
	return out, nil
}
