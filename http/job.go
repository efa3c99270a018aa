package http

import (
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
)

// JobRunner compares posted job runs with the job's previous run and queues
// what changed (reference document 2). The dispatcher implements it.
type JobRunner interface {
	// RunJob reads a run's products from body, NDJSON or a JSON array, and
	// returns the run's record; a refused run comes back recorded as
	// failed, with the error.
	RunJob(ctx context.Context, co *pimhook.Company, req pimhook.JobRunRequest) (*pimhook.JobRun, error)
	// JobRuns lists a job's runs, newest first.
	JobRuns(ctx context.Context, companyID, jobID string) ([]*pimhook.JobRun, error)
}

// DefaultMaxJobRunBytes caps the body of POST /v1/jobs/{jobID}/runs. Runs are
// read as a stream, so the cap bounds time and disk, not memory.
const DefaultMaxJobRunBytes = 16 << 30

// MaxJobIDLength bounds a job ID, as Webhook.Normalize bounds job_id.
const MaxJobIDLength = 255

// jobRunProblem is the problem answer of a refused run: the problem details
// plus the line (NDJSON) or element (JSON array), 1-based, where the run
// went wrong, and the ID of the failed run's record.
type jobRunProblem struct {
	Problem
	Line  int    `json:"line,omitempty"`
	RunID string `json:"run_id,omitempty"`
}

// postJobRun takes the complete output data set of a job run, streamed.
func (s *Server) postJobRun(w http.ResponseWriter, r *http.Request) error {
	if s.Jobs == nil {
		return pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "job runs are not running")
	}
	jobID, err := pathJobID(r)
	if err != nil {
		return err
	}
	ndjson, err := jobRunMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	key := pimhook.DefaultJobKey
	if q := r.URL.Query(); q.Has("key") {
		key = q.Get("key")
		if key == "" || len(key) > MaxJobIDLength || !pimhook.Printable(key) {
			return pimhook.FieldError(pimhook.CodeInvalidQuery, "key", "key must be 1 to %d printable characters naming the product key field", MaxJobIDLength)
		}
	}
	limit := s.MaxJobRunBytes
	if limit <= 0 {
		limit = DefaultMaxJobRunBytes
	}
	if r.ContentLength > limit {
		return errTooLarge(limit)
	}
	allowEmpty := false
	if q := r.URL.Query(); q.Has("allow_empty") {
		if allowEmpty, err = strconv.ParseBool(q.Get("allow_empty")); err != nil {
			return pimhook.FieldError(pimhook.CodeInvalidQuery, "allow_empty", "allow_empty must be true or false")
		}
	}
	co := companyFrom(r.Context())
	// The whole-request deadline does not fit a run: it may wait for an
	// earlier run of the job, then take minutes to upload. arrivingBody
	// gives every read its own deadline instead.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	body := &arrivingBody{r: http.MaxBytesReader(w, r.Body, limit), rc: rc, idle: s.BodyReadTimeout}
	run, err := s.Jobs.RunJob(r.Context(), co, pimhook.JobRunRequest{JobID: jobID, KeyField: key, Body: body, NDJSON: ndjson, AllowEmpty: allowEmpty})
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge(limit)
		}
		if run == nil || run.Status != pimhook.JobRunFailed || pimhook.ErrorKind(err) != pimhook.KindInvalid {
			return err
		}
		p := problemFor(err)
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			where := "element"
			if ndjson {
				where = "line"
			}
			p = problemFor(pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeBodyIncomplete,
				"the request body stopped arriving for %v at %s %d; the run was refused and changed nothing", s.BodyReadTimeout, where, run.Line))
		}
		w.Header().Set("Cache-Control", "no-store")
		return writeBody(w, http.StatusBadRequest, "application/problem+json",
			jobRunProblem{Problem: p, Line: run.Line, RunID: run.ID})
	}
	w.Header().Set("Location", jobRunsPath(jobID))
	return writeJSON(w, http.StatusCreated, run)
}

// arrivingBody keeps the connection's read deadline moving while the body
// arrives. A run of a million products takes minutes to upload, longer than
// any one deadline for the whole body; a body that stops arriving for the
// server's BodyReadTimeout is still cut off.
type arrivingBody struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	next time.Time // when to move the deadline again
}

func (b *arrivingBody) Read(p []byte) (int, error) {
	// The deadline is set before a read, so time spent before the first
	// read (waiting for the job) does not count. Moving it on every read
	// would cost a timer update each; a few times per idle period is
	// enough.
	if now := time.Now(); now.After(b.next) {
		_ = b.rc.SetReadDeadline(now.Add(b.idle))
		b.next = now.Add(b.idle / 8)
	}
	return b.r.Read(p)
}

// listJobRuns lists a job's runs, newest first, failed ones included.
func (s *Server) listJobRuns(w http.ResponseWriter, r *http.Request) error {
	if s.Jobs == nil {
		return pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "job runs are not running")
	}
	jobID, err := pathJobID(r)
	if err != nil {
		return err
	}
	runs, err := s.Jobs.JobRuns(r.Context(), companyFrom(r.Context()).ID, jobID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf[*pimhook.JobRun]{Data: nonNil(runs)})
}

// pathJobID returns the {jobID} of the path: 1 to 255 printable characters.
func pathJobID(r *http.Request) (string, error) {
	id := r.PathValue("jobID")
	if id == "" || len(id) > MaxJobIDLength || !pimhook.Printable(id) {
		return "", pimhook.FieldError(pimhook.CodeValidation, "jobID", "a job ID is 1 to %d printable characters", MaxJobIDLength)
	}
	return id, nil
}

func jobRunsPath(jobID string) string {
	return "/v1/jobs/" + url.PathEscape(jobID) + "/runs"
}

// jobRunMediaType tells NDJSON (application/x-ndjson, application/ndjson)
// from a JSON array (application/json); the body must be UTF-8.
func jobRunMediaType(ct string) (ndjson bool, err error) {
	mt, params, perr := mime.ParseMediaType(ct)
	if perr == nil {
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return false, pimhook.Errorf(pimhook.KindUnsupported, pimhook.CodeUnsupportedMedia,
				"a job run must be UTF-8, got charset %q", cs)
		}
		switch mt {
		case "application/x-ndjson", "application/ndjson":
			return true, nil
		case "application/json":
			return false, nil
		}
	}
	return false, pimhook.Errorf(pimhook.KindUnsupported, pimhook.CodeUnsupportedMedia,
		"Content-Type must be application/x-ndjson (one product per line) or application/json (an array of products), got %q", ct)
}
