package sqlite

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointerKeepsUpNearFull: below nearFull the checkpointer rests a
// gap between checkpoints; from nearFull on it checkpoints at every poke,
// until a checkpoint copies nothing new.
func TestCheckpointerKeepsUpNearFull(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	if err := s.CreateCompany(t.Context(), newCompany("co_1")); err != nil {
		t.Fatal(err) // the WAL has frames
	}
	runs := func(c *checkpointer, want int64) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("%d checkpoints", want), func() bool { return c.runs.Load() >= want })
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
	runs(keeping, 1) // it copied the frames, as far as it knows
	keeping.poke()
	runs(keeping, 2) // nothing new to copy: it rests after this one
	keeping.poke()
	time.Sleep(100 * time.Millisecond)
	if n := keeping.runs.Load(); n != 2 {
		t.Errorf("a checkpoint that copied nothing new: %d checkpoints within the gap after it, want 2", n)
	}
}
