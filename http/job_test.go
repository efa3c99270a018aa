package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	pimhttp "github.com/pimhook/pimhook/http"
)

// fakeJobs records the runs it is given: it reads the whole body, then
// answers with run and err.
type fakeJobs struct {
	mu    sync.Mutex
	calls []jobCall
	run   *pimhook.JobRun
	err   error
	runs  []*pimhook.JobRun
	wait  time.Duration // before reading the body, as a run waiting for an earlier run of its job does
}

type jobCall struct {
	companyID, jobID, key, body string
	ndjson                      bool
}

func (f *fakeJobs) RunJob(_ context.Context, co *pimhook.Company, req pimhook.JobRunRequest) (*pimhook.JobRun, error) {
	jobID, key, body, ndjson := req.JobID, req.KeyField, req.Body, req.NDJSON
	time.Sleep(f.wait)
	b, err := io.ReadAll(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, jobCall{co.ID, jobID, key, string(b), ndjson})
	if err != nil {
		// As the dispatcher does: the run is recorded as failed.
		failed := &pimhook.JobRun{ID: "run_read", JobID: jobID, Status: pimhook.JobRunFailed, Line: strings.Count(string(b), "\n") + 1}
		return failed, fmt.Errorf("%w: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun, "the run could not be read: %v", err), err)
	}
	return f.run, f.err
}

func (f *fakeJobs) JobRuns(_ context.Context, companyID, jobID string) ([]*pimhook.JobRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, jobCall{companyID: companyID, jobID: jobID})
	return f.runs, nil
}

func (f *fakeJobs) recorded() []jobCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]jobCall(nil), f.calls...)
}

// newJobEnv is an env whose server runs jobs on jobs (none when nil).
func newJobEnv(t *testing.T, jobs *fakeJobs, maxBytes int64, mutate ...func(*pimhttp.Server)) *env {
	t.Helper()
	e := newEnv(t)
	srv := &pimhttp.Server{Store: e.store, MaxJobRunBytes: maxBytes}
	if jobs != nil {
		srv.Jobs = jobs
	}
	for _, f := range mutate {
		f(srv)
	}
	e.server = httptest.NewServer(srv.Handler())
	t.Cleanup(e.server.Close)
	return e
}

func TestPostJobRun(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 7, 31, 12, 34, 56, 0, time.UTC)
	accepted := &pimhook.JobRun{ID: "run_1", JobID: "644", KeyField: "id", Status: pimhook.JobRunAccepted,
		Products: 3, Added: 1, Updated: 1, Removed: 1, Deliveries: 2, CreatedAt: t0, FinishedAt: t0}
	tests := []struct {
		name        string
		path        string
		contentType string
		ndjson      bool
		key         string
		jobID       string
	}{
		{"ndjson", "/v1/jobs/644/runs", "application/x-ndjson", true, "id", "644"},
		{"ndjson alias with charset", "/v1/jobs/644/runs", "application/ndjson; charset=UTF-8", true, "id", "644"},
		{"array", "/v1/jobs/644/runs", "application/json", false, "id", "644"},
		{"key field", "/v1/jobs/644/runs?key=sku", "application/x-ndjson", true, "sku", "644"},
		{"escaped job ID", "/v1/jobs/feed%2Fde%20DE/runs", "application/json", false, "id", "feed/de DE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jobs := &fakeJobs{run: accepted}
			e := newJobEnv(t, jobs, 0)
			body := "{\"id\":\"a\"}\n{\"id\":\"b\"}\n"
			res := e.do(req{method: "POST", path: tt.path, body: io.NopCloser(strings.NewReader(body)),
				header: map[string]string{"Content-Type": tt.contentType}})
			m := res.ok(t, http.StatusCreated)
			if m["id"] != "run_1" || m["status"] != "accepted" || m["added"] != 1.0 || m["deliveries"] != 2.0 || m["key"] != "id" {
				t.Errorf("answer %v", m)
			}
			if _, ok := m["line"]; ok {
				t.Errorf("an accepted run has a line: %v", m)
			}
			if loc := res.header.Get("Location"); !strings.HasPrefix(loc, "/v1/jobs/") || !strings.HasSuffix(loc, "/runs") {
				t.Errorf("Location %q", loc)
			}
			calls := jobs.recorded()
			want := jobCall{e.company.ID, tt.jobID, tt.key, body, tt.ndjson}
			if len(calls) != 1 || calls[0] != want {
				t.Errorf("calls %+v, want %+v", calls, want)
			}
		})
	}
}

func TestPostJobRunRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("j", 256)
	tests := []struct {
		name        string
		path        string
		contentType string
		status      int
		code        string
	}{
		{"no content type", "/v1/jobs/j/runs", "", http.StatusUnsupportedMediaType, pimhook.CodeUnsupportedMedia},
		{"text", "/v1/jobs/j/runs", "text/plain", http.StatusUnsupportedMediaType, pimhook.CodeUnsupportedMedia},
		{"latin1", "/v1/jobs/j/runs", "application/json; charset=latin1", http.StatusUnsupportedMediaType, pimhook.CodeUnsupportedMedia},
		{"empty key", "/v1/jobs/j/runs?key=", "application/json", http.StatusBadRequest, pimhook.CodeInvalidQuery},
		{"long key", "/v1/jobs/j/runs?key=" + long, "application/json", http.StatusBadRequest, pimhook.CodeInvalidQuery},
		{"long job ID", "/v1/jobs/" + long + "/runs", "application/json", http.StatusBadRequest, pimhook.CodeValidation},
		{"control character in job ID", "/v1/jobs/a%07b/runs", "application/json", http.StatusBadRequest, pimhook.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jobs := &fakeJobs{}
			e := newJobEnv(t, jobs, 0)
			e.do(req{method: "POST", path: tt.path, body: "[]", header: map[string]string{"Content-Type": tt.contentType}}).
				problem(t, tt.status, tt.code)
			if calls := jobs.recorded(); len(calls) != 0 {
				t.Errorf("the runner was called: %+v", calls)
			}
		})
	}
}

// TestPostJobRunInvalid checks the problem answer of a run refused half-way:
// it names the line, and the failed run's record.
func TestPostJobRunInvalid(t *testing.T) {
	t.Parallel()
	jobs := &fakeJobs{
		run: &pimhook.JobRun{ID: "run_2", JobID: "j", Status: pimhook.JobRunFailed, Line: 500, Error: "line 500: the product is not valid JSON"},
		err: fmt.Errorf("run job j: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidJobRun, "line 500: the product is not valid JSON")),
	}
	e := newJobEnv(t, jobs, 0)
	res := e.do(req{method: "POST", path: "/v1/jobs/j/runs", body: "{}", header: map[string]string{"Content-Type": "application/x-ndjson"}})
	if res.status != http.StatusBadRequest || res.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %s: %s", res.status, res.header.Get("Content-Type"), res.body)
	}
	var p struct {
		pimhttp.Problem
		Line  int    `json:"line"`
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != pimhook.CodeInvalidJobRun || p.Type != pimhttp.ProblemTypePrefix+pimhook.CodeInvalidJobRun ||
		p.Status != 400 || p.Line != 500 || p.RunID != "run_2" || !strings.Contains(p.Detail, "line 500") {
		t.Errorf("problem %+v", p)
	}
}

func TestPostJobRunTooLarge(t *testing.T) {
	t.Parallel()
	jobs := &fakeJobs{run: &pimhook.JobRun{ID: "run_1"}}
	e := newJobEnv(t, jobs, 64)
	body := strings.Repeat(`{"id":"a"}`+"\n", 10)
	// Announced by Content-Length, and found out while streaming.
	e.do(req{method: "POST", path: "/v1/jobs/j/runs", body: body, header: map[string]string{"Content-Type": "application/x-ndjson"}}).
		problem(t, http.StatusRequestEntityTooLarge, pimhook.CodeBodyTooLarge)
	e.do(req{method: "POST", path: "/v1/jobs/j/runs", body: io.NopCloser(strings.NewReader(body)), header: map[string]string{"Content-Type": "application/x-ndjson"}}).
		problem(t, http.StatusRequestEntityTooLarge, pimhook.CodeBodyTooLarge)
}

func TestJobRunsWithoutRunner(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, nil, 0)
	e.do(req{method: "POST", path: "/v1/jobs/j/runs", body: "[]"}).problem(t, http.StatusServiceUnavailable, pimhook.CodeShuttingDown)
	e.get("/v1/jobs/j/runs").problem(t, http.StatusServiceUnavailable, pimhook.CodeShuttingDown)
}

func TestListJobRuns(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 7, 31, 12, 34, 56, 0, time.UTC)
	jobs := &fakeJobs{}
	e := newJobEnv(t, jobs, 0)
	if data := e.list("/v1/jobs/j/runs"); len(data) != 0 {
		t.Fatalf("runs %v, want none", data)
	}
	jobs.runs = []*pimhook.JobRun{
		{ID: "run_2", CompanyID: e.company.ID, JobID: "j", KeyField: "id", Status: pimhook.JobRunFailed, Products: 499, Error: "line 500: bad", Line: 500, CreatedAt: t0, FinishedAt: t0},
		{ID: "run_1", CompanyID: e.company.ID, JobID: "j", KeyField: "id", Status: pimhook.JobRunAccepted, Products: 1000, Added: 1000, Deliveries: 2, CreatedAt: t0, FinishedAt: t0},
	}
	res := e.get("/v1/jobs/j/runs")
	res.ok(t, http.StatusOK)
	want := `{"data":[` +
		`{"id":"run_2","job_id":"j","key":"id","status":"failed","products":499,"added":0,"updated":0,"removed":0,"deliveries":0,"error":"line 500: bad","line":500,"created_at":"2024-07-31T12:34:56Z","finished_at":"2024-07-31T12:34:56Z"},` +
		`{"id":"run_1","job_id":"j","key":"id","status":"accepted","products":1000,"added":1000,"updated":0,"removed":0,"deliveries":2,"created_at":"2024-07-31T12:34:56Z","finished_at":"2024-07-31T12:34:56Z"}]}` + "\n"
	if string(res.body) != want {
		t.Errorf("answer\n%s\nwant\n%s", res.body, want)
	}
	calls := jobs.recorded()
	if len(calls) != 2 || calls[1].companyID != e.company.ID || calls[1].jobID != "j" {
		t.Errorf("calls %+v", calls)
	}
	noKey := ""
	e.do(req{method: "GET", path: "/v1/jobs/j/runs", key: &noKey}).problem(t, http.StatusUnauthorized, pimhook.CodeUnauthorized)
}

// TestJobRunSlowUpload: a run may take longer to arrive than the server's
// body read timeout, as long as it keeps arriving; a body that stops is
// refused with body_incomplete, naming the line and the failed run.
func TestJobRunSlowUpload(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	jobs := &fakeJobs{run: &pimhook.JobRun{ID: "run_1", Status: pimhook.JobRunAccepted}}
	e := newJobEnv(t, jobs, 0, func(s *pimhttp.Server) { s.BodyReadTimeout = idle })
	send := func(lines int, stall bool) *response {
		pr, pw := io.Pipe()
		go func() {
			for i := range lines {
				time.Sleep(idle / 5)
				fmt.Fprintf(pw, "{\"id\":%d}\n", i)
			}
			if stall {
				time.Sleep(3 * idle) // the answer comes meanwhile
			}
			pw.Close()
		}()
		return e.do(req{method: "POST", path: "/v1/jobs/j/runs", body: pr, header: map[string]string{"Content-Type": "application/x-ndjson"}})
	}
	// Twelve lines at a fifth of the timeout each: 2.4 timeouts in all.
	send(12, false).ok(t, http.StatusCreated)
	if calls := jobs.recorded(); len(calls) != 1 || strings.Count(calls[0].body, "\n") != 12 {
		t.Fatalf("calls %+v, want the whole body", calls)
	}

	res := send(3, true)
	var p struct {
		pimhttp.Problem
		Line  int    `json:"line"`
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(res.body, &p); err != nil || res.status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if p.Code != pimhook.CodeBodyIncomplete || p.Line != 4 || p.RunID != "run_read" || !strings.Contains(p.Detail, "line 4") {
		t.Errorf("problem %+v, want body_incomplete at line 4", p)
	}
}

// TestJobRunWaitingForItsJob: time a run spends waiting for an earlier run
// of its job, before it reads its body, does not count against the body
// read timeout. The client sends Expect: 100-continue, as curl does for
// large bodies, so no byte of the body arrives before the handler reads.
func TestJobRunWaitingForItsJob(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	jobs := &fakeJobs{run: &pimhook.JobRun{ID: "run_1", Status: pimhook.JobRunAccepted}, wait: 3 * idle}
	e := newJobEnv(t, jobs, 0, func(s *pimhttp.Server) { s.BodyReadTimeout = idle })
	conn, err := net.Dial("tcp", e.server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "{\"id\":1}\n{\"id\":2}\n"
	fmt.Fprintf(conn, "POST /v1/jobs/j/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", e.key, len(body))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v %v", cont, err)
	}
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if calls := jobs.recorded(); len(calls) != 1 || strings.Count(calls[0].body, "\n") != 2 {
		t.Fatalf("calls %+v, want the whole body", calls)
	}
}
