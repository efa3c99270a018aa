// Command pimhook is the pimhook webhook dispatcher: `pimhook serve` runs the
// server on an embedded SQLite file, `pimhook migrate` applies migrations,
// the client commands (webhooks, events, deliveries, report) talk to a
// running server, and `pimhook listen` receives deliveries for development.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pimhook:", err)
		os.Exit(1)
	}
}

const usage = `pimhook: the webhook dispatcher of the PIM.

Usage:
  pimhook [serve] [flags]   run the server (default: embedded SQLite in ./pimhook-data)
  pimhook migrate [flags]   apply database migrations and exit
  pimhook help              show this help

Run "pimhook serve -h" for the flags; each flag is also an environment
variable (PIMHOOK_LISTEN for --listen, and so on).

Against a running server (--url, default $PIMHOOK_URL or http://127.0.0.1:8080;
--key, default $PIMHOOK_API_KEY; --json prints the API's answers as they are):
  pimhook webhooks list|create|delete    manage webhooks
  pimhook events send                    post a test event
  pimhook deliveries tail|redeliver      follow deliveries; queue one again
  pimhook report                         response times per interval and per webhook

For development:
  pimhook listen --secret whsec_...      receive deliveries, verify and print them

Run "pimhook <command> help" or "pimhook <command> <subcommand> -h" for more.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "migrate":
		return migrate(ctx, args, stdout, stderr)
	case "webhooks", "events", "deliveries", "report":
		return runClientCommand(ctx, cmd, args, stdout, stderr)
	case "listen":
		return listenCommand(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// serve runs the server until ctx is done (SIGINT or SIGTERM), then shuts
// down gracefully.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseConfig("serve", args, stderr)
	if err != nil {
		return err
	}
	tuneGC()
	m := NewMain(cfg, stderr)
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	return m.Close()
}

// The garbage collector's settings of a server, unless the Go runtime's
// GOGC and GOMEMLIMIT environment variables say otherwise. Most of what the
// server allocates (request bodies, rendered payloads, rows read) is garbage
// within a request, so collecting when the heap has grown by four times the
// live data instead of once costs far less CPU; the soft limit keeps the
// process's footprint small all the same, by collecting earlier once the
// heap nears it.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 128 << 20
)

func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGCPercent)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig("migrate", args, stderr)
	if err != nil {
		return err
	}
	s, unlock, err := openStore(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer unlock()
	where := cfg.dbPath()
	if cfg.Database != "" {
		where = "the PostgreSQL database"
	}
	fmt.Fprintf(stdout, "migrated %s\n", where)
	return s.Close()
}
