package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pimhook/pimhook"
)

// Job state is kept as product sets (migration 002). Each run stages its
// products as a new set beside the job's current one; Commit points the job
// at the new set, and the old set, no longer anyone's state, is swept in
// the background a chunk at a time. Sets of runs that aborted, failed or
// were cut short by a crash are swept the same way, at the latest after the
// next Open.

var _ pimhook.JobStore = (*Store)(nil)

// setShift places the rows of a set: their ids run from set<<setShift up to
// (set+1)<<setShift, in staging order, so a set is one range of the table:
// read in run order without an index of its own, and deleted range by range.
// It leaves room for 2^36 rows per set and 2^27 sets.
const setShift = 36

// setRange returns the ids of set's rows, from lo up to but excluding hi.
func setRange(set int64) (lo, hi int64) { return set << setShift, (set + 1) << setShift }

// How many rows one sweeping write request deletes: few enough that the
// writer is never held long. A payload holds a whole job delivery.
const (
	sweepProducts = 5000
	sweepKeys     = 20_000
	sweepPayloads = 16
)

// Log attribute keys of job state.
const (
	attrSet   = "set"
	attrError = "error"
)

// BeginJobRun starts staging a run of a job as a new product set. Runs of one
// job are serialized within the process: a second BeginJobRun waits until
// the first run commits or aborts, or returns ctx's error when ctx ends
// first. A store file is served by one process, so that is enough.
func (s *Store) BeginJobRun(ctx context.Context, companyID, jobID, runID string) (pimhook.JobRunTx, error) {
	if companyID == "" || jobID == "" || runID == "" {
		return nil, fmt.Errorf("begin job run: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun,
			"a job run needs a company, a job and a run ID"))
	}
	unlock, err := s.jobLocks.Lock(ctx, jobKey{companyID, jobID})
	if err != nil {
		return nil, fmt.Errorf("begin job run %s: %w", runID, err)
	}
	var set, current int64
	err = s.w.do(ctx, func(tx *wtx) error {
		var err error
		if current, err = jobState(tx, companyID, jobID); err != nil {
			return err
		}
		res, err := tx.exec(`INSERT INTO job_sets (company_id, job_id, run_id, created_at) VALUES (?, ?, ?, ?)`,
			companyID, jobID, runID, time.Now().UnixNano())
		if err != nil {
			return fmt.Errorf("create product set: %w", err)
		}
		set, err = res.LastInsertId()
		return err
	})
	if err == nil && set >= 1<<(63-setShift) {
		err = fmt.Errorf("product set %d is beyond the last usable one", set)
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("begin job run %s: %w", runID, err)
	}
	return &jobRunTx{
		s: s, companyID: companyID, jobID: jobID, runID: runID,
		set: set, current: current, unlock: unlock,
		apps: map[string]bool{}, pending: &stageBatch{},
	}, nil
}

// JobRuns lists a job's runs, newest first.
func (s *Store) JobRuns(ctx context.Context, companyID, jobID string) ([]*pimhook.JobRun, error) {
	runs, err := queryAll(ctx, s.rdb, scanJobRun, `SELECT `+jobRunColumns+` FROM job_runs
		WHERE company_id = ? AND job_id = ? ORDER BY created_at DESC, n DESC`, companyID, jobID)
	if err != nil {
		return nil, fmt.Errorf("job runs: %w", err)
	}
	return runs, nil
}

// RecordFailedJobRun stores the record of a refused run, with status failed
// whatever run.Status says, and sets run.Status. A run ID that is taken is
// a KindConflict.
func (s *Store) RecordFailedJobRun(ctx context.Context, run *pimhook.JobRun) error {
	if run.ID == "" || run.CompanyID == "" || run.JobID == "" {
		return fmt.Errorf("record failed job run: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun,
			"a job run needs an ID, a company and a job"))
	}
	err := s.w.do(ctx, func(tx *wtx) error { return insertJobRun(tx, run, pimhook.JobRunFailed) })
	if err != nil {
		return fmt.Errorf("record failed job run %s: %w", run.ID, err)
	}
	run.Status = pimhook.JobRunFailed
	return nil
}

func insertJobRun(tx *wtx, run *pimhook.JobRun, status pimhook.JobRunStatus) error {
	if found, err := exists(tx, `SELECT 1 FROM job_runs WHERE id = ?`, run.ID); err != nil || found {
		return orConflict(err, "job run %q already exists", run.ID)
	}
	_, err := tx.exec(`INSERT INTO job_runs (`+jobRunColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		run.ID, run.CompanyID, run.JobID, run.KeyField, status, run.Products, run.Added, run.Updated, run.Removed,
		run.Deliveries, run.Error, run.Line, unixNano(run.CreatedAt), unixNano(run.FinishedAt))
	if err != nil {
		return fmt.Errorf("store job run: %w", err)
	}
	return nil
}

const jobRunColumns = `id, company_id, job_id, key_field, status, products, added, updated, removed,
	deliveries, error, line, created_at, finished_at`

func scanJobRun(row scanner) (*pimhook.JobRun, error) {
	var (
		r                 pimhook.JobRun
		created, finished int64
	)
	if err := row.Scan(&r.ID, &r.CompanyID, &r.JobID, &r.KeyField, &r.Status, &r.Products, &r.Added, &r.Updated,
		&r.Removed, &r.Deliveries, &r.Error, &r.Line, &created, &finished); err != nil {
		return nil, err
	}
	r.CreatedAt, r.FinishedAt = fromUnixNano(created), fromUnixNano(finished)
	return &r, nil
}

// sweepGarbage sweeps, in the background, the sets that are no job's state:
// those left by runs that never ended, and those a Close interrupted.
func (s *Store) sweepGarbage(ctx context.Context) error {
	sets, err := queryAll(ctx, s.rdb, scanInt64, `SELECT id FROM job_sets
		WHERE id NOT IN (SELECT current_set FROM jobs) ORDER BY id`)
	if err != nil {
		return fmt.Errorf("find stale job product sets: %w", err)
	}
	s.sweep(sets...)
	return nil
}

func scanInt64(row scanner) (int64, error) {
	var v int64
	err := row.Scan(&v)
	return v, err
}

// sweep deletes sets that are no job's state, in the background. Close stops
// it; the rest is swept after the next Open.
func (s *Store) sweep(sets ...int64) {
	if len(sets) == 0 {
		return
	}
	s.tasks.Go(func(ctx context.Context) {
		for _, set := range sets {
			if err := s.sweepSet(ctx, set); err != nil {
				if ctx.Err() == nil && !errors.Is(err, errClosed) {
					s.log.WarnContext(ctx, "sweep job product set", attrSet, set, attrError, err)
				}
				return
			}
		}
	})
}

// sweepSet deletes a set's rows a chunk per write request, so the ingest
// traffic goes on between chunks, then the set itself. The delivery
// payloads of a set that committed stay: its deliveries point at them.
func (s *Store) sweepSet(ctx context.Context, set int64) error {
	var committed bool
	err := s.rdb.QueryRowContext(ctx, `SELECT committed FROM job_sets WHERE id = ?`, set).Scan(&committed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep set %d: %w", set, err)
	}
	steps := []sweepStep{
		{`DELETE FROM job_products WHERE id IN (SELECT id FROM job_products WHERE id >= ?1 AND id < ?2 LIMIT ?3)`, sweepProducts},
		{`DELETE FROM job_keys WHERE set_id = ?4 AND key IN (SELECT key FROM job_keys WHERE set_id = ?4 LIMIT ?3)`, sweepKeys},
		{`DELETE FROM staged_deliveries WHERE id IN (SELECT id FROM staged_deliveries WHERE id >= ?1 AND id < ?2 LIMIT ?3)`, sweepKeys},
	}
	if !committed {
		steps = append(steps, sweepStep{
			`DELETE FROM delivery_payloads WHERE id IN (SELECT id FROM delivery_payloads WHERE id >= ?1 AND id < ?2 LIMIT ?3)`,
			sweepPayloads})
	}
	lo, hi := setRange(set)
	for _, step := range steps {
		for deleted := step.limit; deleted == step.limit; {
			err := s.w.do(ctx, func(tx *wtx) error {
				res, err := tx.exec(step.query, lo, hi, step.limit, set)
				if err != nil {
					return err
				}
				deleted, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return fmt.Errorf("sweep set %d: %w", set, err)
			}
		}
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM job_sets WHERE id = ?`, set)
		return err
	})
	if err != nil {
		return fmt.Errorf("sweep set %d: %w", set, err)
	}
	return nil
}

// sweepStep deletes up to limit rows of a set: ?1 and ?2 bound its ids, ?3
// is limit and ?4 the set.
type sweepStep struct {
	query string
	limit int64
}

// jobKey names a job.
type jobKey struct{ companyID, jobID string }
