package sqlite

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointerKeepsUpNearFull: below nearFull the checkpointer rests a
// gap between checkpoints; from nearFull on it checkpoints at every poke.
func TestCheckpointerKeepsUpNearFull(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	if err := s.CreateCompany(t.Context(), newCompany("co_1")); err != nil {
		t.Fatal(err) // the WAL has frames
	}
	runs := func(c *checkpointer, want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for c.runs.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d checkpoints after 10s, want %d", c.runs.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	log := slog.New(slog.DiscardHandler)

	resting := startCheckpointerWith(s.cdb, log, time.Hour, 1<<30)
	defer resting.stop()
	resting.poke()
	runs(resting, 1)
	resting.poke()
	time.Sleep(100 * time.Millisecond)
	if n := resting.runs.Load(); n != 1 {
		t.Errorf("a WAL far from full: %d checkpoints within the gap, want 1", n)
	}

	keeping := startCheckpointerWith(s.cdb, log, time.Hour, 1)
	defer keeping.stop()
	keeping.poke()
	runs(keeping, 1)
	keeping.poke()
	runs(keeping, 2)
}
