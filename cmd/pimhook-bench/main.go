// Command pimhook-bench measures pimhook end to end (issue 6): it builds and
// starts the real pimhook binary as its own process (embedded store in a
// temporary directory, fsync on), starts the receivers as another process
// (this binary again, in its hidden receiver role, serving loopback
// listeners), drives the public ingest API over HTTP with many keep-alive
// clients, and measures each delivery from the POST of its event (the
// timestamp travels in the event's data) to its arrival at a receiver.
//
// The scenarios are those of the issue: throughput with single-event and
// batch POSTs, latency at half that throughput, one app, fan-out, backlog,
// noisy neighbours, and the ceilings they are compared with: a bare relay
// that forwards each POST synchronously (its own process too) and a bare
// serial POST loop. It prints a table and, with -out, writes JSON.
//
// Usage:
//
//	go run ./cmd/pimhook-bench                      # the full run of BENCHMARKS.md
//	go run ./cmd/pimhook-bench -short               # every scenario, tiny
//	go run ./cmd/pimhook-bench -scenarios relay,throughput -duration 10s
//
// See BENCHMARKS.md for the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pimhook-bench:", err)
		os.Exit(1)
	}
}

// run runs the hidden child roles (receiver, relay) or the benchmark.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case roleReceiver, roleRelay:
			return runRole(ctx, args[0], os.Stdin, stdout)
		}
	}
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	res, err := Measure(ctx, cfg, stderr)
	if res != nil {
		res.Print(stdout)
		if cfg.Out != "" {
			if werr := res.WriteJSON(cfg.Out); werr != nil {
				return errors.Join(err, werr)
			}
		}
	}
	return err
}

// runRole runs one of the child roles until stdin closes (the harness is
// gone or done) or ctx ends.
func runRole(ctx context.Context, role string, stdin io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The harness holds our stdin open; EOF means it ended, however it
		// ended, and the child must not outlive it.
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	switch role {
	case roleReceiver:
		// Arrivals go to the pipe the harness passed as file descriptor 3.
		records := os.NewFile(3, "records")
		if records == nil {
			return errors.New("receiver: no records pipe on file descriptor 3")
		}
		defer records.Close()
		return serveReceivers(ctx, stdout, records)
	case roleRelay:
		return serveRelay(ctx, stdout)
	}
	return fmt.Errorf("unknown role %q", role)
}
