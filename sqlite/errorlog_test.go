package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// TestErrorLogPlans checks that every listing of the error log reads one of
// its indexes in id order, from the cursor on, without sorting: a page
// costs the same however long the log.
func TestErrorLogPlans(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	since := time.Unix(1700000000, 0)
	for _, c := range []struct {
		f    pimhook.ErrorLogFilter
		want string
	}{
		{pimhook.ErrorLogFilter{}, "error_log_company (company_id=?)"},
		{pimhook.ErrorLogFilter{BeforeID: "err_1"}, "error_log_company (company_id=? AND id<?)"},
		{pimhook.ErrorLogFilter{Since: since, Until: since.Add(time.Hour)}, "error_log_company (company_id=?)"},
		{pimhook.ErrorLogFilter{Source: pimhook.ErrorSourceBulk}, "error_log_source (company_id=? AND source=?)"},
		{pimhook.ErrorLogFilter{Source: pimhook.ErrorSourceBulk, BeforeID: "err_1"}, "error_log_source (company_id=? AND source=? AND id<?)"},
		{pimhook.ErrorLogFilter{WebhookID: "wh_1", BeforeID: "err_1"}, "error_log_webhook (company_id=? AND webhook_id=? AND id<?)"},
		{pimhook.ErrorLogFilter{EventID: "evt_1"}, "error_log_event (company_id=? AND event_id=?)"},
		{pimhook.ErrorLogFilter{OperationName: "sync", BeforeID: "err_1"}, "error_log_operation (company_id=? AND operation_name=? AND id<?)"},
		{pimhook.ErrorLogFilter{Source: pimhook.ErrorSourceFilter, WebhookID: "wh_1", EventID: "evt_1", Since: since}, "USING INDEX error_log_"},
	} {
		c.f.CompanyID = "co_1"
		query, args := errorLogQuery(c.f)
		plan := queryPlan(t, s, query, args...)
		if !slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("plan of %+v: %q lacks %q", c.f, plan, c.want)
		}
		if slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, "TEMP B-TREE") }) {
			t.Errorf("plan of %+v sorts: %q", c.f, plan)
		}
	}
}
