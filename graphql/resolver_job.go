package graphql

import (
	"context"
	"fmt"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/model"
	pimhttp "github.com/pimhook/pimhook/http"
)

// JobRuns lists a job's runs, newest first, failed ones included, as GET
// /v1/jobs/{jobID}/runs does: a job that never ran has none, and a job ID
// is 1 to pimhttp.MaxJobIDLength printable characters.
func (q queryResolver) JobRuns(ctx context.Context, jobID string) ([]*model.JobRun, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	if q.cfg.Jobs == nil {
		return nil, pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "job runs are not running")
	}
	if jobID == "" || len(jobID) > pimhttp.MaxJobIDLength || !pimhook.Printable(jobID) {
		return nil, pimhook.FieldError(pimhook.CodeValidation, "jobID", "a job ID is 1 to %d printable characters", pimhttp.MaxJobIDLength)
	}
	runs, err := q.cfg.Jobs.JobRuns(ctx, co.ID, jobID)
	if err != nil {
		return nil, fmt.Errorf("list job runs: %w", err)
	}
	return mapList(runs, toJobRun), nil
}
