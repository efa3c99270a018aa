package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// Job state is kept as product sets (see the migration). Each run stages
// its products as a new set beside the job's current one; Commit points the
// job at the new set and marks the old one dead, and dead sets are swept in
// the background a chunk at a time. The set of a run that aborted is dead
// at once; that of a run whose node died is found, still staging, by the
// job's next run, which alone may judge it abandoned since it holds the
// job's lock.

var _ pimhook.JobStore = (*Store)(nil)

// How many rows one sweeping statement deletes: few enough that no
// statement takes long. A payload holds a whole job delivery.
const (
	sweepProducts   = 5000
	sweepDeliveries = 100
)

// BeginJobRun starts staging a run of a job as a new product set. Runs of
// one job are serialized across the nodes sharing the database: a second
// BeginJobRun waits until the first run commits or aborts, or returns ctx's
// error when ctx ends first. The run holds a connection of its own, outside
// the pool, for the lock, until it ends.
func (s *Store) BeginJobRun(ctx context.Context, companyID, jobID, runID string) (pimhook.JobRunTx, error) {
	if companyID == "" || jobID == "" || runID == "" {
		return nil, fmt.Errorf("begin job run: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun,
			"a job run needs a company, a job and a run ID"))
	}
	if err := s.live(); err != nil {
		return nil, fmt.Errorf("begin job run %s: %w", runID, err)
	}
	unlock, err := s.lockJob(ctx, companyID, jobID)
	if err != nil {
		return nil, fmt.Errorf("begin job run %s: %w", runID, err)
	}
	var (
		set, current int64
		orphans      []int64
	)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if current, err = jobState(ctx, tx, companyID, jobID, ""); err != nil {
			return err
		}
		// Holding the job's lock, this run is the only one of the job: a
		// set still staging is a run's that never ended.
		orphans, err = collect(ctx, tx, scanInt64, `UPDATE job_sets SET state = 'dead'
			WHERE company_id = $1 AND job_id = $2 AND state = 'staging' RETURNING id`, companyID, jobID)
		if err != nil {
			return fmt.Errorf("find abandoned runs: %w", err)
		}
		err = tx.QueryRow(ctx, `INSERT INTO job_sets (company_id, job_id, run_id, state, created_at)
			VALUES ($1, $2, $3, 'staging', now()) RETURNING id`, companyID, jobID, runID).Scan(&set)
		if err != nil {
			return fmt.Errorf("create product set: %w", err)
		}
		return nil
	})
	if err != nil {
		unlock()
		return nil, fmt.Errorf("begin job run %s: %w", runID, err)
	}
	s.sweep(orphans...)
	return &jobRunTx{
		s: s, companyID: companyID, jobID: jobID, runID: runID,
		set: set, current: current, unlock: unlock,
		apps: map[string]bool{}, pendingKeys: map[string]int64{},
	}, nil
}

// jobState returns the job's current set, 0 if it has none; lock is empty
// or a locking clause.
func jobState(ctx context.Context, q querier, companyID, jobID, lock string) (int64, error) {
	var current int64
	err := q.QueryRow(ctx, `SELECT current_set FROM jobs WHERE company_id = $1 AND job_id = $2 `+lock, companyID, jobID).Scan(&current)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("read job state: %w", err)
	}
	return current, nil
}

// lockJob takes the lock of a job: first the process's, so that the runs of
// one node queue up without polling, then the session advisory lock of the
// job on a connection of its own, which the server releases should the
// node die. Another node holding it, lockJob polls for it, less and less
// often, until ctx ends.
func (s *Store) lockJob(ctx context.Context, companyID, jobID string) (unlock func(), err error) {
	unlockLocal, err := s.jobLocks.Lock(ctx, jobKey{companyID, jobID})
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		unlockLocal()
		return nil, fmt.Errorf("connect for the job lock: %w", err)
	}
	name := "pimhook.job:" + s.ns + ":" + companyID + ":" + jobID
	release := func(locked bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if locked {
			// Unlocking before closing lets the next run take the lock at
			// once instead of after the server has ended the session.
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, name); err != nil {
				s.log.WarnContext(ctx, "unlock job", attrError, err)
			}
		}
		conn.Close(ctx)
		unlockLocal()
	}
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, name).Scan(&locked); err != nil {
			release(false)
			return nil, fmt.Errorf("lock job %s: %w", jobID, orCtx(ctx, err))
		}
		if locked {
			return sync.OnceFunc(func() { release(true) }), nil
		}
		select {
		case <-ctx.Done():
			release(false)
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// orCtx returns ctx's error if ctx has ended, else err: a query cut short
// by its context fails with a network error that does not say why.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// JobRuns lists a job's runs, newest first.
func (s *Store) JobRuns(ctx context.Context, companyID, jobID string) ([]*pimhook.JobRun, error) {
	runs, err := queryAll(ctx, s, scanJobRun, `SELECT `+jobRunColumns+` FROM job_runs
		WHERE company_id = $1 AND job_id = $2 ORDER BY created_at DESC, n DESC`, companyID, jobID)
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
	if err := s.live(); err != nil {
		return fmt.Errorf("record failed job run %s: %w", run.ID, err)
	}
	if err := insertJobRun(ctx, s.pool, run, pimhook.JobRunFailed); err != nil {
		return fmt.Errorf("record failed job run %s: %w", run.ID, storeError(err))
	}
	run.Status = pimhook.JobRunFailed
	return nil
}

func insertJobRun(ctx context.Context, q querier, run *pimhook.JobRun, status pimhook.JobRunStatus) error {
	tag, err := q.Exec(ctx, `INSERT INTO job_runs (`+jobRunColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (id) DO NOTHING`,
		run.ID, run.CompanyID, run.JobID, run.KeyField, string(status), run.Products, run.Added, run.Updated, run.Removed,
		run.Deliveries, sanitize(run.Error), run.Line, run.CreatedAt, run.FinishedAt)
	if err != nil {
		return fmt.Errorf("store job run: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return conflictf("job run %q already exists", run.ID)
	}
	return nil
}

const jobRunColumns = `id, company_id, job_id, key_field, status, products, added, updated, removed,
	deliveries, error, line, created_at, finished_at`

func scanJobRun(row pgx.Row) (*pimhook.JobRun, error) {
	var r pimhook.JobRun
	if err := row.Scan(&r.ID, &r.CompanyID, &r.JobID, &r.KeyField, &r.Status, &r.Products, &r.Added, &r.Updated,
		&r.Removed, &r.Deliveries, &r.Error, &r.Line, &r.CreatedAt, &r.FinishedAt); err != nil {
		return nil, err
	}
	return &r, nil
}

func scanInt64(row pgx.Row) (int64, error) {
	var v int64
	err := row.Scan(&v)
	return v, err
}

// sweepDead sweeps, in the background, the dead sets: those a sweep did
// not finish before its node stopped.
func (s *Store) sweepDead() {
	s.tasks.Go(func(ctx context.Context) {
		sets, err := queryAll(ctx, s, scanInt64, `SELECT id FROM job_sets WHERE state = 'dead' ORDER BY id`)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "find dead job product sets", attrError, err)
			}
			return
		}
		s.sweepNow(ctx, sets)
	})
}

// sweep deletes dead sets in the background. Close stops it; the rest is
// swept after the next Open.
func (s *Store) sweep(sets ...int64) {
	if len(sets) == 0 {
		return
	}
	s.tasks.Go(func(ctx context.Context) { s.sweepNow(ctx, sets) })
}

func (s *Store) sweepNow(ctx context.Context, sets []int64) {
	for _, set := range sets {
		if err := s.sweepSet(ctx, set); err != nil {
			if ctx.Err() == nil && !errors.Is(err, errClosed) {
				s.log.WarnContext(ctx, "sweep job product set", attrSet, set, attrError, err)
			}
			return
		}
	}
}

// sweepSet deletes a dead set's rows a chunk per statement, then the set
// itself. The staged deliveries of a set that committed were queued, so the
// payloads they left in delivery_payloads stay; those of a set that did not
// go with its staged deliveries.
func (s *Store) sweepSet(ctx context.Context, set int64) error {
	var state string
	err := s.queryRow(ctx, `SELECT state FROM job_sets WHERE id = $1`, set).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && state != "dead" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep set %d: %w", set, err)
	}
	steps := []struct {
		query string
		limit int64
	}{
		{`WITH gone AS (
			DELETE FROM job_products WHERE set_id = $1 AND n IN (
				SELECT n FROM job_products WHERE set_id = $1 ORDER BY n LIMIT $2)
			RETURNING 1)
		SELECT count(*) FROM gone`, sweepProducts},
		{`WITH gone AS (
			DELETE FROM staged_deliveries WHERE set_id = $1 AND n IN (
				SELECT n FROM staged_deliveries WHERE set_id = $1 ORDER BY n LIMIT $2)
			RETURNING delivery_id
		), payloads AS (
			DELETE FROM delivery_payloads WHERE delivery_id IN (SELECT delivery_id FROM gone)
		)
		SELECT count(*) FROM gone`, sweepDeliveries},
	}
	for _, step := range steps {
		for deleted := step.limit; deleted == step.limit; {
			if err := s.queryRow(ctx, step.query, set, step.limit).Scan(&deleted); err != nil {
				return fmt.Errorf("sweep set %d: %w", set, err)
			}
		}
	}
	if _, err := s.exec(ctx, `DELETE FROM job_sets WHERE id = $1 AND state = 'dead'`, set); err != nil {
		return fmt.Errorf("sweep set %d: %w", set, err)
	}
	return nil
}

// jobKey names a job.
type jobKey struct{ companyID, jobID string }
