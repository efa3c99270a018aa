// Command pimhook-jobbench measures job runs (reference document 2): it
// writes two runs of a job as NDJSON files, runs the first through the
// dispatcher's RunJob against a real SQLite store, then measures the second,
// in which a share of the products changed, and, in the same process,
// merely decoding the second file: reading it line by line with a
// bufio.Reader and json.Unmarshal-ing each line into a map[string]any. It
// prints both times, their ratio and the peak resident memory.
//
// Usage:
//
//	go run ./cmd/pimhook-jobbench -n 1000000
//	go run ./cmd/pimhook-jobbench -n 10000   # the short run
//
// See BENCHMARKS.md for the figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pimhook-jobbench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pimhook-jobbench", flag.ContinueOnError)
	var cfg Config
	fs.IntVar(&cfg.Products, "n", 1_000_000, "products per run")
	fs.Float64Var(&cfg.Changed, "changed", 0.01, "share of the products that change from one run to the next")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "measured runs, each followed by a decode-only of the same file")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the run files and the database (default: a new temporary directory, removed afterwards)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the first measured run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Profile = func() func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "cpu profile:", err)
				return func() {}
			}
			return pprof.StopCPUProfile
		}
	}
	res, err := Measure(context.Background(), cfg, stdout)
	if err != nil {
		return err
	}
	res.Print(stdout)
	return nil
}
