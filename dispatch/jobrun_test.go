package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// jobT0 is the fixed time of every job test: payload timestamps are stable.
var jobT0 = time.Date(2024, 7, 31, 12, 34, 56, 789_000_000, time.UTC)

// newJobRig is a rig whose dispatcher runs jobs on the rig's store, with a
// clock that stands still and a receiver that accepts everything.
func newJobRig(t *testing.T) (*rig, string) {
	t.Helper()
	r := newRig(t, newFakeClock(jobT0), 0, func(c *dispatch.Config) {
		c.Jobs = c.Catalog.Store.(pimhook.JobStore)
	})
	recv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	return r, recv.URL
}

// jobHook adds a job webhook for jobID. events and fields may be nil.
func (r *rig) jobHook(t *testing.T, url, jobID string, batch int, events []pimhook.Action, fields []string) *pimhook.Webhook {
	t.Helper()
	now := time.Now()
	w := &pimhook.Webhook{
		ID: pimhook.NewID(pimhook.PrefixWebhook, now), CompanyID: r.co.ID, AppID: r.app.ID, URL: url,
		JobID: jobID, BatchSize: batch, Events: events, Fields: fields, Enabled: true,
		Secret: pimhook.NewSecret(), CreatedAt: now, UpdatedAt: now,
	}
	if err := w.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := r.cat.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

// runJob posts an NDJSON run and fails the test if it is refused.
func (r *rig) runJob(t *testing.T, jobID string, lines ...string) *pimhook.JobRun {
	t.Helper()
	run, err := r.d.RunJob(context.Background(), r.co, pimhook.JobRunRequest{JobID: jobID, KeyField: "", Body: strings.NewReader(strings.Join(lines, "\n")), NDJSON: true})
	if err != nil {
		t.Fatalf("run job %s: %v", jobID, err)
	}
	return run
}

// payloads returns the payloads of a webhook's deliveries, oldest first.
func (r *rig) payloads(t *testing.T, webhookID string) []string {
	t.Helper()
	ds := r.deliveries(t, webhookID)
	out := make([]string, len(ds))
	for i, d := range ds {
		if d.EventName != "job.run" {
			t.Errorf("delivery %s: event %q, want job.run", d.ID, d.EventName)
		}
		out[len(ds)-1-i] = string(d.Payload)
	}
	return out
}

// counts is what a run record says happened.
func counts(run *pimhook.JobRun) string {
	return fmt.Sprintf("%s products=%d added=%d updated=%d removed=%d deliveries=%d",
		run.Status, run.Products, run.Added, run.Updated, run.Removed, run.Deliveries)
}

const jobHead = `{"timestamp":"2024-07-31T12:34:56Z","jobID":"644","products":[`

func TestJobRunCompares(t *testing.T) {
	t.Parallel()
	r, url := newJobRig(t)
	all := r.jobHook(t, url, "644", 0, nil, nil)
	price := r.jobHook(t, url, "644", 0, []pimhook.Action{pimhook.ActionUpdated}, []string{"price"})
	removed := r.jobHook(t, url, "644", 0, []pimhook.Action{pimhook.ActionDeleted}, nil)
	other := r.jobHook(t, url, "645", 0, nil, nil)

	run := r.runJob(t, "644",
		`{"id":"p1","name":"Chair","price":199.99,"stock":15}`,
		`{"id":"p2","name":"Desk","price":299.99,"stock":5}`,
		`{"id":"p3","name":"Lamp","price":19.5,"stock":1}`,
	)
	if got, want := counts(run), "accepted products=3 added=3 updated=0 removed=0 deliveries=1"; got != want {
		t.Fatalf("run 1: %s, want %s", got, want)
	}

	// p1's price and p3's stock change (p3's members also move and gain
	// whitespace, which changes nothing), p2 goes, p4 comes.
	run = r.runJob(t, "644",
		`{"id":"p1","name":"Chair","price":120.99,"stock":15}`,
		`{"id":"p4","name":"Stool","price":49,"stock":3}`,
		`{ "stock": 2, "price": 19.50, "name": "Lamp", "id": "p3" }`,
	)
	if got, want := counts(run), "accepted products=3 added=1 updated=2 removed=1 deliveries=3"; got != want {
		t.Fatalf("run 2: %s, want %s", got, want)
	}
	if run.ID == "" || run.JobID != "644" || run.KeyField != "id" || !run.CreatedAt.Equal(jobT0) {
		t.Errorf("run record %+v", run)
	}

	wantAll := []string{
		jobHead + `{"event":"ADDED","productData":{"id":"p1","name":"Chair","price":199.99,"stock":15}},` +
			`{"event":"ADDED","productData":{"id":"p2","name":"Desk","price":299.99,"stock":5}},` +
			`{"event":"ADDED","productData":{"id":"p3","name":"Lamp","price":19.5,"stock":1}}]}`,
		jobHead + `{"event":"UPDATED","productData":{"id":"p1","name":"Chair","price":120.99,"stock":15},"changedFields":[{"name":"price","from":199.99,"to":120.99}]},` +
			`{"event":"ADDED","productData":{"id":"p4","name":"Stool","price":49,"stock":3}},` +
			`{"event":"UPDATED","productData":{ "stock": 2, "price": 19.50, "name": "Lamp", "id": "p3" },"changedFields":[{"name":"stock","from":1,"to":2}]},` +
			`{"event":"REMOVED","productData":{"id":"p2","name":"Desk","price":299.99,"stock":5}}]}`,
	}
	if got := r.payloads(t, all.ID); !slices.Equal(got, wantAll) {
		t.Errorf("all-events webhook got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantAll, "\n"))
	}
	wantPrice := []string{
		jobHead + `{"event":"UPDATED","productData":{"id":"p1","name":"Chair","price":120.99,"stock":15},"changedFields":[{"name":"price","from":199.99,"to":120.99}]}]}`,
	}
	if got := r.payloads(t, price.ID); !slices.Equal(got, wantPrice) {
		t.Errorf("price webhook got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantPrice, "\n"))
	}
	wantRemoved := []string{jobHead + `{"event":"REMOVED","productData":{"id":"p2","name":"Desk","price":299.99,"stock":5}}]}`}
	if got := r.payloads(t, removed.ID); !slices.Equal(got, wantRemoved) {
		t.Errorf("removed webhook got %s, want %s", got, wantRemoved)
	}
	if got := r.payloads(t, other.ID); len(got) != 0 {
		t.Errorf("webhook of another job got %s", got)
	}

	// The same run again changes nothing and sends nothing.
	run = r.runJob(t, "644",
		`{"price":120.99,"id":"p1","name":"Chair","stock":15}`,
		`{"id":"p4","name":"Stool","price":49.0,"stock":3}`,
		`{"id":"p3","name":"Lamp","price":19.5,"stock":2}`,
	)
	if got, want := counts(run), "accepted products=3 added=0 updated=0 removed=0 deliveries=0"; got != want {
		t.Fatalf("run 3: %s, want %s", got, want)
	}
	if n := len(r.payloads(t, all.ID)); n != 2 {
		t.Errorf("a run without changes made deliveries: %d in all", n)
	}
	runs, err := r.d.JobRuns(context.Background(), r.co.ID, "644")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || runs[0].ID != run.ID || runs[2].Added != 3 || runs[1].Deliveries != 3 {
		t.Errorf("runs, newest first: %+v", runs)
	}
}

func TestJobRunChunks(t *testing.T) {
	t.Parallel()
	r, url := newJobRig(t)
	w := r.jobHook(t, url, "j", 3, nil, nil)
	var lines []string
	for i := range 7 {
		lines = append(lines, fmt.Sprintf(`{"id":%d}`, i+1))
	}
	run := r.runJob(t, "j", lines...)
	if got, want := counts(run), "accepted products=7 added=7 updated=0 removed=0 deliveries=3"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	head := `{"timestamp":"2024-07-31T12:34:56Z","jobID":"j","products":[`
	add := func(ids ...int) string {
		var ps []string
		for _, id := range ids {
			ps = append(ps, fmt.Sprintf(`{"event":"ADDED","productData":{"id":%d}}`, id))
		}
		return head + strings.Join(ps, ",") + "]}"
	}
	want := []string{add(1, 2, 3), add(4, 5, 6), add(7)}
	if got := r.payloads(t, w.ID); !slices.Equal(got, want) {
		t.Errorf("chunks\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJobRunKeyField(t *testing.T) {
	t.Parallel()
	r, url := newJobRig(t)
	w := r.jobHook(t, url, "skus", 0, []pimhook.Action{pimhook.ActionUpdated}, nil)
	ctx := context.Background()
	post := func(body string, ndjson bool) *pimhook.JobRun {
		t.Helper()
		run, err := r.d.RunJob(ctx, r.co, pimhook.JobRunRequest{JobID: "skus", KeyField: "sku", Body: strings.NewReader(body), NDJSON: ndjson})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	// The id changes, the sku stays: the same product, updated. An integer
	// key and its string spelling are one product.
	post(`[{"sku":"A-1","id":1,"n":1},{"sku":7,"n":1}]`, false)
	run := post(`{"sku":"A-1","id":2,"n":1}`+"\n"+`{"sku":"7","n":2}`, true)
	if got, want := counts(run), "accepted products=2 added=0 updated=2 removed=0 deliveries=1"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	if run.KeyField != "sku" {
		t.Errorf("key field %q", run.KeyField)
	}
	want := `{"timestamp":"2024-07-31T12:34:56Z","jobID":"skus","products":[` +
		`{"event":"UPDATED","productData":{"sku":"A-1","id":2,"n":1},"changedFields":[{"name":"id","from":1,"to":2}]},` +
		`{"event":"UPDATED","productData":{"sku":"7","n":2},"changedFields":[{"name":"n","from":1,"to":2},{"name":"sku","from":7,"to":"7"}]}]}`
	if got := r.payloads(t, w.ID); len(got) != 1 || got[0] != want {
		t.Errorf("payload\n%s\nwant\n%s", got, want)
	}
}

// failingReader yields its data, then fails, as a dropped connection does.
type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestJobRunParsing(t *testing.T) {
	t.Parallel()
	long := `{"id":"big","x":"` + strings.Repeat("x", dispatch.MaxJobProductBytes) + `"}`
	tests := []struct {
		name     string
		body     io.Reader
		ndjson   bool
		key      string
		empty    bool   // allow an empty run
		products int    // when accepted
		line     int    // when refused
		msg      string // when refused: part of the message
	}{
		{name: "ndjson", body: strings.NewReader("{\"id\":\"a\"}\n{\"id\":\"b\"}\n"), ndjson: true, products: 2},
		{name: "ndjson blank lines and CRLF", body: strings.NewReader("\n{\"id\":\"a\"}\r\n  \r\n\t\n{\"id\":\"b\"}"), ndjson: true, products: 2},
		{name: "ndjson empty, allowed", body: strings.NewReader(""), ndjson: true, empty: true, products: 0},
		{name: "ndjson empty", body: strings.NewReader("\n\n"), ndjson: true, msg: "the run has no products"},
		{name: "array", body: strings.NewReader(`[{"id":"a"},{"id":"b"},{"id":3}]`), products: 3},
		{name: "array pretty", body: strings.NewReader("[\n  {\n    \"id\": \"a\"\n  },\n  {\"id\": \"b\"}\n]\n"), products: 2},
		{name: "array empty, allowed", body: strings.NewReader(`[]`), empty: true, products: 0},
		{name: "array empty", body: strings.NewReader(`[]`), msg: "the run has no products"},
		{name: "integer key", body: strings.NewReader(`{"id":42}`), ndjson: true, products: 1},
		{name: "escaped key", body: strings.NewReader(`{"id":"a\u0062"}`), ndjson: true, products: 1},
		{name: "other key field", body: strings.NewReader(`{"sku":"a"}`), ndjson: true, key: "sku", products: 1},
		{name: "escaped key field name", body: strings.NewReader(`{"\u0069d":"a"}`), ndjson: true, products: 1},
		{name: "escaped strings before the key", body: strings.NewReader(`{"a":"x\\\\","b":"q\"\\\"","id":"k"}`), ndjson: true, products: 1},
		{name: "escaped quote in the key", body: strings.NewReader(`{"id":"a\"b"}`), ndjson: true, products: 1},
		{name: "long line", body: strings.NewReader(`{"id":"a"}` + "\n" + long), ndjson: true, line: 2, msg: "line 2: a line is longer than"},

		{name: "bad JSON on line 3", body: strings.NewReader("{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\",}\n{\"id\":\"d\"}"), ndjson: true, line: 3, msg: "line 3: the product is not valid JSON"},
		{name: "blank lines count", body: strings.NewReader("{\"id\":\"a\"}\n\n\n[1]\n"), ndjson: true, line: 4, msg: "line 4: a product must be a JSON object"},
		{name: "not an object", body: strings.NewReader(`"a"`), ndjson: true, line: 1, msg: "line 1: a product must be a JSON object"},
		{name: "missing key", body: strings.NewReader("{\"id\":\"a\"}\n{\"ID\":\"b\"}"), ndjson: true, line: 2, msg: `line 2: the product has no "id" field`},
		{name: "empty key", body: strings.NewReader(`{"id":""}`), ndjson: true, line: 1, msg: `"id" field is empty`},
		{name: "null key", body: strings.NewReader(`{"id":null}`), ndjson: true, line: 1, msg: "must be a string or an integer, got null"},
		{name: "fraction key", body: strings.NewReader(`{"id":1.5}`), ndjson: true, line: 1, msg: "must be a string or an integer, got 1.5"},
		{name: "object key", body: strings.NewReader(`{"id":{"a":1}}`), ndjson: true, line: 1, msg: "must be a string or an integer"},
		{name: "nested key does not count", body: strings.NewReader(`{"x":{"id":"a"}}`), ndjson: true, line: 1, msg: `no "id" field`},
		{name: "two values on a line", body: strings.NewReader(`{"id":"a"} {"id":"b"}`), ndjson: true, line: 1, msg: "not valid JSON"},
		{name: "duplicate key", body: strings.NewReader("{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"a\"}"), ndjson: true, line: 3, msg: `line 3: product key "a" appears twice in the run (first at line 1)`},
		{name: "array element not an object", body: strings.NewReader(`[{"id":"a"},7]`), line: 2, msg: "element 2: a product must be a JSON object"},
		{name: "array element malformed", body: strings.NewReader(`[{"id":"a"},{"id":"b"},{"id" "c"}]`), line: 3, msg: "element 3: malformed JSON"},
		{name: "array cut short", body: strings.NewReader(`[{"id":"a"},{"id":"b"}`), line: 2, msg: "the body ends before the array is closed"},
		{name: "array of nothing", body: strings.NewReader(``), line: 0, msg: "the body is empty"},
		{name: "array of garbage", body: strings.NewReader(`x`), line: 0, msg: "the start of the body: malformed JSON"},
		{name: "not an array", body: strings.NewReader(`{"id":"a"}`), line: 0, msg: "the body must be a JSON array of products"},
		{name: "data after the array", body: strings.NewReader(`[{"id":"a"}] []`), line: 1, msg: "unexpected data after the array"},
		{name: "garbage after the array", body: strings.NewReader(`[{"id":"a"}] x`), line: 1, msg: "unexpected data after the array"},
		{name: "large element", body: strings.NewReader(`[{"id":"a"},` + long + `]`), line: 2, msg: "element 2: an element is larger than"},
		{name: "huge element", body: strings.NewReader(`[{"id":"a"},"` + strings.Repeat("x", 2*dispatch.MaxJobProductBytes) + `"]`), line: 2, msg: "element 2: an element is larger than"},
		{name: "array missing key", body: strings.NewReader(`[{"id":"a"},{"sku":"b"}]`), line: 2, msg: `element 2: the product has no "id" field`},
		{name: "dropped connection", body: &failingReader{data: "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\"", err: io.ErrUnexpectedEOF}, ndjson: true, line: 3, msg: "the run could not be read at line 3: unexpected EOF"},
		{name: "dropped connection in array", body: &failingReader{data: `[{"id":"a"},{"id"`, err: errors.New("connection reset")}, line: 2, msg: "could not be read at element 2: connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, url := newJobRig(t)
			w := r.jobHook(t, url, "j", 0, nil, nil)
			run, err := r.d.RunJob(context.Background(), r.co, pimhook.JobRunRequest{JobID: "j", KeyField: tt.key, Body: tt.body, NDJSON: tt.ndjson, AllowEmpty: tt.empty})
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if run.Status != pimhook.JobRunAccepted || run.Products != tt.products || run.Added != tt.products {
					t.Fatalf("run %s, want %d products added", counts(run), tt.products)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (%s), want an error naming line %d", counts(run), tt.line)
			}
			if code := pimhook.ErrorCode(err); pimhook.ErrorKind(err) != pimhook.KindInvalid || code != pimhook.CodeInvalidJobRun && code != pimhook.CodeDuplicateKey {
				t.Errorf("error %v: kind %s code %s", err, pimhook.ErrorKind(err), pimhook.ErrorCode(err))
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want it to contain %q", err, tt.msg)
			}
			if run == nil || run.Status != pimhook.JobRunFailed || run.Line != tt.line || !strings.Contains(run.Error, tt.msg) {
				t.Fatalf("run %+v, want failed at line %d", run, tt.line)
			}
			runs, err := r.d.JobRuns(context.Background(), r.co.ID, "j")
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0].ID != run.ID || runs[0].Status != pimhook.JobRunFailed || runs[0].Line != tt.line || runs[0].Error != run.Error {
				t.Errorf("recorded runs %+v, want the failed run", runs)
			}
			if got := r.payloads(t, w.ID); len(got) != 0 {
				t.Errorf("a failed run made deliveries: %s", got)
			}
			// Nothing of the failed run became the job's state.
			if run := r.runJob(t, "j", `{"id":"a"}`); run.Added != 1 || run.Removed != 0 {
				t.Errorf("the next run: %s, want the product added", counts(run))
			}
		})
	}
}

// TestJobRunFailureKeepsState fails a run half-way through and checks that
// the next run compares against the last accepted one.
func TestJobRunFailureKeepsState(t *testing.T) {
	t.Parallel()
	r, url := newJobRig(t)
	w := r.jobHook(t, url, "j", 100, nil, nil)
	var run1 []string
	for i := range 2500 {
		run1 = append(run1, fmt.Sprintf(`{"id":"p%d","v":0}`, i))
	}
	r.runJob(t, "j", run1...)
	before := len(r.payloads(t, w.ID))

	// Run 2 changes every product, so chunks are staged before line 2100
	// turns out bad.
	var run2 []string
	for i := range 2500 {
		run2 = append(run2, fmt.Sprintf(`{"id":"p%d","v":1}`, i))
	}
	run2[2099] = `{"id":"p2099","v":}`
	_, err := r.d.RunJob(context.Background(), r.co, pimhook.JobRunRequest{JobID: "j", KeyField: "", Body: strings.NewReader(strings.Join(run2, "\n")), NDJSON: true})
	if err == nil || !strings.Contains(err.Error(), "line 2100") {
		t.Fatalf("error %v, want one naming line 2100", err)
	}
	if got := len(r.payloads(t, w.ID)); got != before {
		t.Fatalf("%d deliveries after the failed run, want %d", got, before)
	}
	run := r.runJob(t, "j", run1[:10]...)
	if got, want := counts(run), "accepted products=10 added=0 updated=0 removed=2490 deliveries=25"; got != want {
		t.Errorf("next run: %s, want %s", got, want)
	}
}

// TestJobRunWebhookSelection checks which webhooks hear a run: enabled job
// webhooks of the job, for the events they want. Monitored fields narrow
// UPDATED only.
func TestJobRunWebhookSelection(t *testing.T) {
	t.Parallel()
	r, url := newJobRig(t)
	added := r.jobHook(t, url, "j", 0, []pimhook.Action{pimhook.ActionCreated}, []string{"price"})
	disabled := r.jobHook(t, url, "j", 0, nil, nil)
	disabled.Enabled = false
	if err := r.cat.UpdateWebhook(context.Background(), disabled); err != nil {
		t.Fatal(err)
	}
	entity := r.webhook(t, url, pimhook.RetryNone, 0, 0) // an entity-event webhook for every type
	nested := r.jobHook(t, url, "j", 0, []pimhook.Action{pimhook.ActionUpdated}, []string{"attrs"})

	r.runJob(t, "j", `{"id":1,"price":1,"attrs":{"color":"red","size":"M"}}`)
	r.runJob(t, "j", `{"id":1,"price":2,"attrs":{"color":"blue","size":"M"}}`, `{"id":2,"price":1}`)
	head := `{"timestamp":"2024-07-31T12:34:56Z","jobID":"j","products":[`
	want := []string{
		head + `{"event":"ADDED","productData":{"id":1,"price":1,"attrs":{"color":"red","size":"M"}}}]}`,
		head + `{"event":"ADDED","productData":{"id":2,"price":1}}]}`,
	}
	if got := r.payloads(t, added.ID); !slices.Equal(got, want) {
		t.Errorf("ADDED webhook with fields got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A monitored object matches changes of its members.
	want = []string{head + `{"event":"UPDATED","productData":{"id":1,"price":2,"attrs":{"color":"blue","size":"M"}},"changedFields":[{"name":"attrs.color","from":"red","to":"blue"}]}]}`}
	if got := r.payloads(t, nested.ID); !slices.Equal(got, want) {
		t.Errorf("webhook monitoring attrs got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := r.payloads(t, disabled.ID); len(got) != 0 {
		t.Errorf("disabled webhook got %s", got)
	}
	if got := r.deliveries(t, entity.ID); len(got) != 0 {
		t.Errorf("entity-event webhook got %d deliveries", len(got))
	}
}
