package pimhook_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// TestNewIDMonotonic checks that IDs made in one millisecond, or with a
// clock that went back, still sort in the order they were made.
func TestNewIDMonotonic(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := pimhook.NewID("x", now)
	for i := range 2000 {
		at := now
		if i%7 == 0 {
			at = now.Add(-time.Second) // a clock that stepped back
		}
		id := pimhook.NewID("x", at)
		if id <= prev {
			t.Fatalf("id %d: %s does not sort after %s", i, id, prev)
		}
		prev = id
	}
	later := pimhook.NewID("x", now.Add(time.Hour))
	if later <= prev || !strings.HasPrefix(later, "x_") || len(later) != len("x_")+26 {
		t.Errorf("an hour later: %s after %s", later, prev)
	}
}
