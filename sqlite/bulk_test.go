package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBulkPlans checks that the run listings read the operation's index
// in id order from the cursor on, and that the pages of Products walk the
// primary key of entities from where the last page ended, without sorting.
func TestBulkPlans(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	for _, c := range []struct {
		query string
		args  []any
		want  string
	}{
		{bulkRunsQuery, []any{"co_1", "sync", 10}, "bulk_runs_operation (company_id=? AND operation_name=?)"},
		{bulkRunsBeforeQuery, []any{"co_1", "sync", "brun_1", 10}, "bulk_runs_operation (company_id=? AND operation_name=? AND id<?)"},
		{productsFirstQuery, []any{"co_1", productsPage}, "sqlite_autoindex_entities_1 (company_id=? AND type=?)"},
		{productsNextQuery, []any{"co_1", "p1", productsPage}, "sqlite_autoindex_entities_1 (company_id=? AND type=? AND id>?)"},
	} {
		plan := queryPlan(t, s, c.query, c.args...)
		if !slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("plan of %s: %q lacks %q", c.query, plan, c.want)
		}
		if slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, "TEMP B-TREE") }) {
			t.Errorf("plan of %s sorts: %q", c.query, plan)
		}
	}
}
