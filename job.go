package pimhook

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// A job run is the complete output data set of a data job at one moment
// (reference document 2). pimhook compares it with the job's previous run:
// products new in this run are ADDED, products gone are REMOVED, products
// whose data differ are UPDATED with their changed fields.

// JobRunStatus is where a job run stands.
type JobRunStatus string

// Job run statuses.
const (
	JobRunAccepted JobRunStatus = "accepted" // compared, became the job's state, deliveries queued
	JobRunFailed   JobRunStatus = "failed"   // refused half-way; the job's state is untouched
)

// DefaultJobKey is the product field that identifies a product in a run,
// unless the run names another.
const DefaultJobKey = "id"

// JobRun is one run of a data job and what came of it.
type JobRun struct {
	ID         string       `json:"id"`
	CompanyID  string       `json:"-"`
	JobID      string       `json:"job_id"`
	KeyField   string       `json:"key"`
	Status     JobRunStatus `json:"status"`
	Products   int          `json:"products"`
	Added      int          `json:"added"`
	Updated    int          `json:"updated"`
	Removed    int          `json:"removed"`
	Deliveries int          `json:"deliveries"`
	// Error and Line say why and where a failed run was refused.
	Error      string    `json:"error,omitempty"`
	Line       int       `json:"line,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// JobProduct is one product in a job's state: its key, its position in the
// run it came from, and its data.
type JobProduct struct {
	Key  string
	Pos  int64
	Data json.RawMessage
	// Hash is a digest of the product's canonical data: equal hashes mean
	// equal data, so unchanged products are found without a diff.
	Hash []byte
}

// JobStore is the part of the storage contract that keeps job state. Stores
// implement it beside Store; the conformance suite covers both.
type JobStore interface {
	// BeginJobRun starts staging a run of a job. Staging holds the run's
	// products outside the job's state, so a run that fails half-way
	// changes nothing. Runs of one job are serialized: a second BeginJobRun
	// for the same job waits until the first commits or aborts (or ctx ends).
	BeginJobRun(ctx context.Context, companyID, jobID, runID string) (JobRunTx, error)
	// JobRuns lists a job's runs, newest first (failed ones included).
	JobRuns(ctx context.Context, companyID, jobID string) ([]*JobRun, error)
	// RecordFailedJobRun stores the record of a run that was refused.
	RecordFailedJobRun(ctx context.Context, run *JobRun) error
}

// JobRunTx stages one job run. Exactly one of Commit or Abort ends it.
type JobRunTx interface {
	// Previous returns the products with these keys in the job's current
	// state, by key; keys the state lacks are absent from the map. Callers
	// batch their lookups (a thousand keys at a time, say).
	Previous(ctx context.Context, keys []string) (map[string]*JobProduct, error)
	// Put stages products of the new run, in run order. Stores write them
	// in batches. A key staged twice in one run is a KindInvalid error with
	// CodeDuplicateKey, reported at the latest by Commit.
	Put(ctx context.Context, ps []*JobProduct) error
	// Removed calls fn, in their previous order, for the products of the
	// current state that the new run does not have.
	Removed(ctx context.Context, fn func(*JobProduct) error) error
	// StageDelivery keeps a delivery of the run aside until Commit; staged
	// deliveries are invisible to the dispatcher.
	StageDelivery(ctx context.Context, d *Delivery) error
	// Commit atomically makes the staged products the job's state, stores
	// the run record, and appends the staged deliveries to their apps'
	// queues in the order they were staged (assigning their Seq then). It
	// returns the IDs of the apps that received deliveries.
	Commit(ctx context.Context, run *JobRun) (appIDs []string, err error)
	// Abort drops everything staged.
	Abort(ctx context.Context) error
}

// JobRunRequest is a job run as posted.
type JobRunRequest struct {
	JobID string
	// KeyField names the product field that identifies a product; empty
	// means DefaultJobKey.
	KeyField string
	// Body is the run: NDJSON when NDJSON is set, else a JSON array.
	Body   io.Reader
	NDJSON bool
	// AllowEmpty accepts a run without products, which removes every
	// product of the job. Without it such a run is refused: an empty file
	// from a failed export must not empty the catalogue downstream.
	AllowEmpty bool
}
