package postgres

import (
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
	s := openTest(t)
	since := time.Unix(1700000000, 0)
	for _, c := range []struct {
		f    pimhook.ErrorLogFilter
		want string
	}{
		{pimhook.ErrorLogFilter{}, "error_log_company"},
		{pimhook.ErrorLogFilter{BeforeID: "err_1"}, "error_log_company"},
		{pimhook.ErrorLogFilter{Since: since, Until: since.Add(time.Hour)}, "error_log_company"},
		{pimhook.ErrorLogFilter{Source: pimhook.ErrorSourceBulk}, "error_log_source"},
		{pimhook.ErrorLogFilter{Source: pimhook.ErrorSourceBulk, BeforeID: "err_1"}, "error_log_source"},
		{pimhook.ErrorLogFilter{WebhookID: "wh_1", BeforeID: "err_1"}, "error_log_webhook"},
		{pimhook.ErrorLogFilter{EventID: "evt_1"}, "error_log_event"},
		{pimhook.ErrorLogFilter{OperationName: "sync", BeforeID: "err_1"}, "error_log_operation"},
		{pimhook.ErrorLogFilter{Source: pimhook.ErrorSourceFilter, WebhookID: "wh_1", EventID: "evt_1", Since: since}, "error_log_"},
	} {
		c.f.CompanyID = "co_1"
		query, args := errorLogQuery(c.f)
		plan := queryPlan(t, s, query, args...)
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of %+v: want an ordered scan of %s, got\n%s", c.f, c.want, plan)
		}
	}
}
