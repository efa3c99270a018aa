package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestShortRun is the benchmark's short mode, which CI can afford: the same
// harness with 10,000 products (2,000 with -short). It checks what the runs
// found, not how fast they were.
func TestShortRun(t *testing.T) {
	t.Parallel()
	n := 10_000
	if testing.Short() {
		n = 2_000
	}
	res, err := Measure(context.Background(), Config{Products: n, Changed: 0.01, Rounds: 2, Dir: t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || res.FileBytes < int64(n)*900 {
		t.Fatalf("result %+v", res)
	}
	for i, rd := range res.Rounds {
		r := rd.Run
		if r.Products != n || r.Updated != n/100 || r.Added != 0 || r.Removed != 0 || r.Deliveries != 2 {
			t.Errorf("round %d: %+v, want %d products of which %d updated, in two deliveries", i+1, r, n, n/100)
		}
		if rd.Time <= 0 || rd.Decode <= 0 {
			t.Errorf("round %d: figures %+v", i+1, rd)
		}
	}
	var out strings.Builder
	res.Print(&out)
	if !strings.Contains(out.String(), "median ratio") {
		t.Errorf("printed %s", out.String())
	}
}
