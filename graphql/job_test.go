package graphql_test

import (
	"context"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql"
)

func TestJobRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	run := &pimhook.JobRun{
		ID: "run_1", CompanyID: e.company.ID, JobID: "644", KeyField: "sku", Status: pimhook.JobRunFailed,
		Error: "duplicate_product_key: product \"A\" appears twice", Line: 7, CreatedAt: now, FinishedAt: now,
	}
	if err := e.store.RecordFailedJobRun(context.Background(), run); err != nil {
		t.Fatalf("record run: %v", err)
	}
	var out struct {
		JobRuns []struct {
			ID, JobID, Key, Status string
			Products, Added        int
			Error                  *string
			Line                   *int
			CreatedAt              string
		}
	}
	q := `query($job: ID!) { jobRuns(jobID: $job) { id jobID key status products added error line createdAt } }`
	e.do(q, map[string]any{"job": "644"}, &out)
	if len(out.JobRuns) != 1 {
		t.Fatalf("job runs: %+v", out.JobRuns)
	}
	r := out.JobRuns[0]
	if r.ID != "run_1" || r.JobID != "644" || r.Key != "sku" || r.Status != "FAILED" || r.Error == nil || *r.Error != run.Error ||
		r.Line == nil || *r.Line != 7 || r.CreatedAt != now.Format(time.RFC3339) {
		t.Errorf("job run: %+v", r)
	}
	e.do(q, map[string]any{"job": "never-ran"}, &out)
	if out.JobRuns == nil || len(out.JobRuns) != 0 {
		t.Errorf("runs of a job that never ran: %+v, want []", out.JobRuns)
	}
	e.fail(q, map[string]any{"job": "bad\njob"}, "validation_failed", "jobID")
}

func TestJobRunsWithoutAJobStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *graphql.Config) { c.Jobs = nil })
	e.fail(`{ jobRuns(jobID: "644") { id } }`, nil, "shutting_down", "")
}
