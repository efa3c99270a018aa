package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/change"
)

// Job run limits.
const (
	// MaxJobProductBytes caps one product of a run: one NDJSON line or one
	// element of a JSON array.
	MaxJobProductBytes = 8 << 20
	// MaxJobKeyLength caps a product key, as MaxEventIDLength caps an
	// entity id in the API.
	MaxJobKeyLength = 255
	// jobBatch is how many products are compared with the previous run, and
	// staged, at once. It bounds the memory a run holds besides the
	// webhooks' chunks.
	jobBatch = 1000
	// jobBatchBytes ends a batch early when its products are large.
	jobBatchBytes = 16 << 20
	// jobChunkBytes ends a delivery's chunk before batch_size products when
	// they are large, so that a webhook's chunk, and the delivery it makes,
	// stays a few MiB whatever batch_size says.
	jobChunkBytes = 8 << 20
)

// RunJob compares a job run, the job's complete output data set read from
// body, with the job's previous run, and queues the differences for the
// job's webhooks in the payload of reference document 2: products new in
// this run are ADDED, products gone are REMOVED, products whose data differ
// are UPDATED with their changed fields.
//
// body holds NDJSON, one product per line (blank lines are skipped), when
// ndjson is set, and a JSON array of products otherwise. Each product is a
// JSON object whose member keyField ("id" when empty) is a non-empty string
// or an integer. Products are read, compared and staged a batch at a time,
// so memory is bounded by the batch and the webhooks' batch sizes, never by
// the size of the run.
//
// The run becomes the job's state, and its deliveries are queued, only once
// every product has been read and accepted. A run refused half-way (an
// invalid product, a body that cannot be read) changes nothing: it is
// recorded as failed, and the KindInvalid CodeInvalidJobRun error names the
// line (NDJSON) or element (array), 1-based, which the returned run's Line
// also holds. A key given twice is CodeDuplicateKey: within one batch it
// names the line; further apart, the store names both product numbers. A
// run without products is refused unless req.AllowEmpty. RunJob returns the
// run's record whenever it made one, with the error if the run failed.
func (d *Dispatcher) RunJob(ctx context.Context, co *pimhook.Company, req pimhook.JobRunRequest) (*pimhook.JobRun, error) {
	jobID, keyField, body, ndjson := req.JobID, req.KeyField, req.Body, req.NDJSON
	if d.jobs == nil {
		return nil, errors.New("run job: the dispatcher has no job store (Config.Jobs)")
	}
	if jobID == "" {
		return nil, pimhook.FieldError(pimhook.CodeValidation, "job_id", "a job run needs a job ID")
	}
	if keyField == "" {
		keyField = pimhook.DefaultJobKey
	}
	now := d.clock.Now().UTC()
	run := &pimhook.JobRun{
		ID: pimhook.NewID(pimhook.PrefixJobRun, now), CompanyID: co.ID, JobID: jobID,
		KeyField: keyField, CreatedAt: now,
	}
	tx, err := d.jobs.BeginJobRun(ctx, co.ID, jobID, run.ID)
	if err != nil {
		return nil, fmt.Errorf("run job %s: %w", jobID, err)
	}
	// Read the webhooks once the job is ours: edits made while an earlier
	// run of the job held it apply to this run.
	cw, err := d.cat.webhooks(ctx, co.ID)
	if err != nil {
		_ = tx.Abort(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("run job %s: %w", jobID, err)
	}
	r := &jobRunner{
		d: d, ctx: ctx, tx: tx, run: run,
		qkey: change.AppendString(nil, keyField),
		seen: make(map[string]int, jobBatch),
	}
	for _, w := range cw.list {
		if w.Enabled && w.JobID == jobID && w.Format == pimhook.FormatJob {
			size := w.BatchSize
			if size <= 0 {
				size = pimhook.DefaultBatchSize
			}
			r.hooks = append(r.hooks, &jobHook{w: w, size: size, chunk: newJobChunk(now, jobID)})
		}
	}
	var src productSource
	if ndjson {
		src = newNDJSONSource(body)
	} else {
		src = newArraySource(body)
	}
	if err := r.read(src); err != nil {
		return r.fail(err)
	}
	if r.run.Products == 0 && !req.AllowEmpty {
		return r.fail(pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun,
			"the run has no products; it would remove every product of the job: post it with allow_empty=true if that is meant"))
	}
	appIDs, err := r.finish()
	if err != nil {
		return r.fail(err)
	}
	for _, id := range appIDs {
		d.Notify(id)
	}
	return run, nil
}

// JobRuns lists a job's runs, newest first.
func (d *Dispatcher) JobRuns(ctx context.Context, companyID, jobID string) ([]*pimhook.JobRun, error) {
	if d.jobs == nil {
		return nil, errors.New("job runs: the dispatcher has no job store (Config.Jobs)")
	}
	runs, err := d.jobs.JobRuns(ctx, companyID, jobID)
	if err != nil {
		return nil, fmt.Errorf("job runs of %s: %w", jobID, err)
	}
	return runs, nil
}

// jobRunner is one run in progress.
type jobRunner struct {
	d     *Dispatcher
	ctx   context.Context
	tx    pimhook.JobRunTx
	run   *pimhook.JobRun
	qkey  []byte // the key field as a JSON string, as canonical documents spell it
	hooks []*jobHook

	batch []*pimhook.JobProduct
	keys  []string       // the keys of batch, for Previous
	seen  map[string]int // key -> line, within batch
	arena []byte         // the data and hashes of batch
	canon []byte         // the canonical form of the product being added
	pos   int64          // products read so far
}

// jobHook is a webhook of the job and the chunk it is filling.
type jobHook struct {
	w     *pimhook.Webhook
	size  int
	chunk *jobChunk
}

// runError is an invalid run: what was wrong, and where.
type runError struct {
	line int
	err  error
}

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// invalidRun returns the error of a run refused at line.
func invalidRun(line int, where, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	return &runError{line: line, err: pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun, "%s", msg)}
}

// read reads every product, comparing and staging them a batch at a time.
func (r *jobRunner) read(src productSource) error {
	for {
		data, line, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := r.add(data, line, src); err != nil {
			return err
		}
		if len(r.batch) == jobBatch || len(r.arena) >= jobBatchBytes {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
	return r.flush()
}

// add checks one product and appends it to the batch.
func (r *jobRunner) add(data []byte, line int, src productSource) error {
	// The canonical form is only hashed and searched for the key, so one
	// buffer serves every product of the run.
	canon, err := change.AppendCanonical(r.canon[:0], data)
	r.canon = canon
	if err != nil {
		msg := err.Error()
		if e, ok := errors.AsType[*pimhook.Error](err); ok {
			msg = e.Message
		}
		return invalidRun(line, src.where(line), "the product %s", strings.TrimPrefix(msg, "document "))
	}
	if len(canon) == 0 || canon[0] != '{' {
		return invalidRun(line, src.where(line), "a product must be a JSON object")
	}
	key, err := productKey(canon, r.qkey)
	if err != nil {
		return invalidRun(line, src.where(line), "%v", err)
	}
	if first, ok := r.seen[key]; ok {
		return &runError{line: line, err: pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeDuplicateKey,
			"%s: product key %q appears twice in the run (first at %s)", src.where(line), key, src.where(first))}
	}
	r.seen[key] = line
	sum := sha256.Sum256(canon)

	if r.arena == nil {
		r.arena = make([]byte, 0, min(jobBatch*(len(data)+sha256.Size), jobBatchBytes))
	}
	start := len(r.arena)
	r.arena = append(r.arena, data...)
	r.arena = append(r.arena, sum[:]...)
	// A full arena moved on append; products already in the batch keep the
	// old array, which is fine: nothing writes to it again.
	mid := start + len(data)
	p := &pimhook.JobProduct{
		Key:  key,
		Pos:  r.pos,
		Data: r.arena[start:mid:mid],
		Hash: r.arena[mid : mid+sha256.Size : mid+sha256.Size],
	}
	r.pos++
	r.batch = append(r.batch, p)
	r.keys = append(r.keys, key)
	return nil
}

// flush compares the batch with the job's state, queues what changed for
// the webhooks, and stages the batch.
func (r *jobRunner) flush() error {
	if len(r.batch) == 0 {
		return nil
	}
	prev, err := r.tx.Previous(r.ctx, r.keys)
	if err != nil {
		return fmt.Errorf("previous products: %w", err)
	}
	for _, p := range r.batch {
		old := prev[p.Key]
		switch {
		case old == nil:
			r.run.Added++
			if err := r.emit(pimhook.ActionCreated, jobAdded, p.Data, nil); err != nil {
				return err
			}
		case bytes.Equal(old.Hash, p.Hash):
		default:
			changes, err := change.Diff(old.Data, p.Data)
			if err != nil {
				// Both documents were checked when staged: this is the
				// store's fault, not the client's.
				return fmt.Errorf("compare product %q: %v", p.Key, err)
			}
			if len(changes) == 0 {
				continue // same data under another digest
			}
			r.run.Updated++
			if err := r.emit(pimhook.ActionUpdated, jobUpdated, p.Data, changes); err != nil {
				return err
			}
		}
	}
	if err := r.tx.Put(r.ctx, r.batch); err != nil {
		return fmt.Errorf("stage products: %w", err)
	}
	r.run.Products += len(r.batch)
	// The store may keep the staged products until it writes them: give it
	// a fresh batch and arena rather than reusing these.
	r.batch, r.keys, r.arena = make([]*pimhook.JobProduct, 0, jobBatch), r.keys[:0], nil
	clear(r.seen)
	return nil
}

// emit adds one product to the chunk of every webhook that wants it, and
// stages the chunks that are full. changes are the product's changes, for
// UPDATED.
func (r *jobRunner) emit(action pimhook.Action, event string, data []byte, changes []pimhook.FieldChange) error {
	for _, h := range r.hooks {
		if !h.w.WantsJob(r.run.JobID, action) {
			continue
		}
		told := changes
		if action == pimhook.ActionUpdated && len(h.w.Fields) > 0 {
			// An UPDATED webhook with monitored fields hears only of
			// products where one of them changed, and only of those fields.
			if told = h.w.MonitoredChanges(changes); len(told) == 0 {
				continue
			}
		}
		h.chunk.add(event, data, told)
		if h.chunk.n >= h.size || len(h.chunk.buf) >= jobChunkBytes {
			if err := r.stage(h); err != nil {
				return err
			}
		}
	}
	return nil
}

// stage turns a webhook's chunk into a staged delivery.
func (r *jobRunner) stage(h *jobHook) error {
	now := r.d.clock.Now()
	dl := &pimhook.Delivery{
		ID:            pimhook.NewID(pimhook.PrefixDelivery, now),
		CompanyID:     r.run.CompanyID,
		AppID:         h.w.AppID,
		WebhookID:     h.w.ID,
		EventID:       r.run.ID,
		EventName:     jobEventName,
		Payload:       h.chunk.take(),
		Status:        pimhook.DeliveryPending,
		NextAttemptAt: now,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if err := r.tx.StageDelivery(r.ctx, dl); err != nil {
		return fmt.Errorf("stage delivery: %w", err)
	}
	r.run.Deliveries++
	return nil
}

// finish queues the removed products and the last chunks, and commits.
func (r *jobRunner) finish() ([]string, error) {
	err := r.tx.Removed(r.ctx, func(p *pimhook.JobProduct) error {
		r.run.Removed++
		return r.emit(pimhook.ActionDeleted, jobRemoved, p.Data, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("removed products: %w", err)
	}
	for _, h := range r.hooks {
		if h.chunk.n > 0 {
			if err := r.stage(h); err != nil {
				return nil, err
			}
		}
	}
	r.run.Status = pimhook.JobRunAccepted
	r.run.FinishedAt = r.d.clock.Now().UTC()
	appIDs, err := r.tx.Commit(r.ctx, r.run)
	if err != nil {
		r.run.Status = ""
		return nil, fmt.Errorf("commit: %w", err)
	}
	return appIDs, nil
}

// fail drops what the run staged, records it as failed, and returns the
// run and err.
func (r *jobRunner) fail(err error) (*pimhook.JobRun, error) {
	// The run must be recorded, and its staging dropped, even when the
	// request that carried it is gone.
	ctx := context.WithoutCancel(r.ctx)
	if aerr := r.tx.Abort(ctx); aerr != nil {
		r.d.log.Error("abort job run", attrJobRun, r.run.ID, attrError, aerr)
	}
	run := r.run
	run.Status = pimhook.JobRunFailed
	// Products counts what was read before the failure; the rest never
	// happened.
	run.Products, run.Added, run.Updated, run.Removed, run.Deliveries = int(r.pos), 0, 0, 0, 0
	run.FinishedAt = r.d.clock.Now().UTC()
	run.Error = "internal error"
	if re, ok := errors.AsType[*runError](err); ok {
		run.Line = re.line
	}
	if e, ok := errors.AsType[*pimhook.Error](err); ok && e.Kind != pimhook.KindInternal {
		run.Error = e.Message
	}
	if rerr := r.d.jobs.RecordFailedJobRun(ctx, run); rerr != nil {
		// The caller hears why the run failed; that its record was lost
		// too is for the operator.
		r.d.log.Error("record failed job run", attrJobRun, run.ID, attrError, rerr)
	}
	return run, fmt.Errorf("run job %s: %w", run.JobID, err)
}

// attrJobRun is the log attribute of a job run's ID.
const attrJobRun = "job_run_id"
