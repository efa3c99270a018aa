package postgres

import (
	"strings"
	"testing"
)

// TestBulkPlans checks that the run listings read the operation's index
// in id order from the cursor on, and that the pages of Products walk the
// primary key of entities from where the last page ended, without sorting.
func TestBulkPlans(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for _, c := range []struct {
		query string
		args  []any
		want  string
	}{
		{bulkRunsQuery, []any{"co_1", "sync", 10}, "bulk_runs_operation"},
		{bulkRunsBeforeQuery, []any{"co_1", "sync", "brun_1", 10}, "bulk_runs_operation"},
		{productsFirstQuery, []any{"co_1", productsPage}, "entities_pkey"},
		{productsNextQuery, []any{"co_1", "p1", productsPage}, "entities_pkey"},
	} {
		plan := queryPlan(t, s, c.query, c.args...)
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of %s: want an ordered scan of %s, got\n%s", c.query, c.want, plan)
		}
	}
}
