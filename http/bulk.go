package http

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/pimhook/pimhook"
)

// bulkOperationInput is the body of POST /v1/bulk-operations and of PUT
// /v1/bulk-operations/{name}.
type bulkOperationInput struct {
	OperationName *string            `json:"operation_name"`
	URL           *string            `json:"url"`
	Headers       *map[string]string `json:"headers"`
}

// bulkOperationJSON is a bulk operation as the API shows it. The signing
// secret appears only in the answer that creates it, and at .../secret.
type bulkOperationJSON struct {
	OperationName string            `json:"operation_name"`
	URL           string            `json:"url"`
	Headers       map[string]string `json:"headers"`
	SigningSecret string            `json:"signing_secret,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

func toBulkOperationJSON(op *pimhook.BulkOperation) bulkOperationJSON {
	headers := op.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return bulkOperationJSON{OperationName: op.Name, URL: op.URL, Headers: headers, CreatedAt: op.CreatedAt.UTC(), UpdatedAt: op.UpdatedAt.UTC()}
}

func bulkOperationPath(name string) string { return "/v1/bulk-operations/" + url.PathEscape(name) }

func (s *Server) createBulkOperation(w http.ResponseWriter, r *http.Request) error {
	var in bulkOperationInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	co := companyFrom(r.Context())
	now := s.Clock.Now().UTC()
	op := &pimhook.BulkOperation{CompanyID: co.ID, CreatedAt: now, UpdatedAt: now}
	setIf(&op.Name, in.OperationName)
	setIf(&op.URL, in.URL)
	setIf(&op.Headers, in.Headers)
	if err := s.vetBulkOperation(r, op); err != nil {
		return err
	}
	if err := s.Store.CreateBulkOperation(r.Context(), op); err != nil {
		return fmt.Errorf("create bulk operation: %w", err)
	}
	out := toBulkOperationJSON(op)
	out.SigningSecret = op.Secret
	w.Header().Set("Location", bulkOperationPath(op.Name))
	return writeJSON(w, http.StatusCreated, out)
}

// vetBulkOperation checks op's own rules, then whether its URL may be
// reached.
func (s *Server) vetBulkOperation(r *http.Request, op *pimhook.BulkOperation) error {
	if err := op.Normalize(); err != nil {
		return err
	}
	if s.Targets == nil {
		return nil
	}
	if err := pimhook.CheckTarget(r.Context(), s.Targets, op.URL, "url"); err != nil {
		return err
	}
	return nil
}

func (s *Server) listBulkOperations(w http.ResponseWriter, r *http.Request) error {
	ops, err := s.Store.BulkOperations(r.Context(), companyFrom(r.Context()).ID)
	if err != nil {
		return fmt.Errorf("list bulk operations: %w", err)
	}
	return writeJSON(w, http.StatusOK, mapList(ops, toBulkOperationJSON))
}

func (s *Server) getBulkOperation(w http.ResponseWriter, r *http.Request) error {
	op, err := s.Store.BulkOperation(r.Context(), companyFrom(r.Context()).ID, r.PathValue("name"))
	if err != nil {
		return fmt.Errorf("get bulk operation: %w", err)
	}
	return writeJSON(w, http.StatusOK, toBulkOperationJSON(op))
}

// putBulkOperation replaces an operation's url and headers. Its name is
// its identity: a body naming another operation is refused.
func (s *Server) putBulkOperation(w http.ResponseWriter, r *http.Request) error {
	var in bulkOperationInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	name := r.PathValue("name")
	if in.OperationName != nil && *in.OperationName != name {
		return pimhook.FieldError(pimhook.CodeValidation, "operation_name", "operation_name %q differs from the path's %q; an operation cannot be renamed", *in.OperationName, name)
	}
	op, err := s.Store.BulkOperation(r.Context(), companyFrom(r.Context()).ID, name)
	if err != nil {
		return fmt.Errorf("replace bulk operation: %w", err)
	}
	op.URL, op.Headers = "", nil
	setIf(&op.URL, in.URL)
	setIf(&op.Headers, in.Headers)
	if err := s.vetBulkOperation(r, op); err != nil {
		return err
	}
	op.UpdatedAt = s.Clock.Now().UTC()
	if err := s.Store.UpdateBulkOperation(r.Context(), op); err != nil {
		return fmt.Errorf("replace bulk operation: %w", err)
	}
	return writeJSON(w, http.StatusOK, toBulkOperationJSON(op))
}

func (s *Server) deleteBulkOperation(w http.ResponseWriter, r *http.Request) error {
	if err := s.Store.DeleteBulkOperation(r.Context(), companyFrom(r.Context()).ID, r.PathValue("name")); err != nil {
		return fmt.Errorf("delete bulk operation: %w", err)
	}
	return noContent(w)
}

func (s *Server) getBulkOperationSecret(w http.ResponseWriter, r *http.Request) error {
	op, err := s.Store.BulkOperation(r.Context(), companyFrom(r.Context()).ID, r.PathValue("name"))
	if err != nil {
		return fmt.Errorf("get bulk operation secret: %w", err)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"signing_secret": op.Secret})
}

// bulkRunProblem is the answer of a trigger whose receiver failed: a
// problem (502, or 504 for a timeout) that carries the receiver's status
// code and the recorded run.
type bulkRunProblem struct {
	Problem
	ReceiverStatus *int             `json:"receiver_status_code"`
	Run            *pimhook.BulkRun `json:"run"`
}

// triggerBulkOperation calls the operation's receiver and answers with the
// run: 200 when it accepted, else a problem with what it said.
func (s *Server) triggerBulkOperation(w http.ResponseWriter, r *http.Request) error {
	var in pimhook.BulkTrigger
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	co := companyFrom(r.Context())
	op, err := s.Store.BulkOperation(r.Context(), co.ID, r.PathValue("name"))
	if err != nil {
		return fmt.Errorf("trigger bulk operation: %w", err)
	}
	if s.Bulk == nil {
		return pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "bulk operations cannot be triggered on this server")
	}
	run, err := s.Bulk.TriggerBulk(r.Context(), co, op, in)
	if err != nil {
		return err
	}
	var p Problem
	switch run.Status {
	case pimhook.BulkRunSucceeded:
		return writeJSON(w, http.StatusOK, run)
	case pimhook.BulkRunFailed:
		p = newProblem(statusOf(pimhook.KindBadGateway), pimhook.CodeBulkOpFailed,
			fmt.Sprintf("the receiver of %s answered %d; its answer is in the error log", op.Name, run.StatusCode), "")
	case pimhook.BulkRunTimeout:
		p = newProblem(statusOf(pimhook.KindTimeout), pimhook.CodeBulkOpTimeout,
			fmt.Sprintf("the receiver of %s did not answer within %d ms", op.Name, run.TimeoutMS), "")
	default:
		p = newProblem(statusOf(pimhook.KindBadGateway), pimhook.CodeBulkOpUnreachable,
			fmt.Sprintf("the receiver of %s could not be called: %s", op.Name, run.Error), "")
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeBody(w, p.Status, "application/problem+json", bulkRunProblem{Problem: p, ReceiverStatus: nonZero(run.StatusCode), Run: run})
}

// bulkRunParams are the query parameters of GET .../runs.
var bulkRunParams = []string{"limit", "cursor"}

// listBulkRuns pages through an operation's runs, newest first. The runs
// of a deleted operation stay readable.
func (s *Server) listBulkRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkParams(q, bulkRunParams); err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	before, err := cursorParam(q)
	if err != nil {
		return err
	}
	co := companyFrom(r.Context())
	name := r.PathValue("name")
	if err := pimhook.ValidateOperationName(name); err != nil {
		return err
	}
	runs, err := s.Store.BulkRuns(r.Context(), co.ID, name, before, min(limit+1, pimhook.MaxPage))
	if err != nil {
		return fmt.Errorf("list bulk runs: %w", err)
	}
	return writeJSON(w, http.StatusOK, idPage(runs, limit, func(r *pimhook.BulkRun) string { return r.ID }, func(r *pimhook.BulkRun) *pimhook.BulkRun { return r }))
}
