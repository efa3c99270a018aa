package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the tests get")

// The job runs of these tests (reference document 2). Run 1 has products
// p0000 to p0999. Run 2 drops the ten with i%100 == 5, changes the fifty
// with i%20 == 10 and adds p1000 to p1009, each after the product with
// i%100 == 50. Of the changes, one in three touches the price (and the
// stock), one in three a nested attribute, one in three the stock alone.

func jobProduct(i int, changed bool) string {
	cents, stock, color := 1099+i%97*100, i%40, []string{"black", "white", "oak"}[i%3]
	if changed {
		switch (i / 20) % 3 {
		case 0:
			cents, stock = cents-500, stock+1
		case 1:
			color = "red"
		case 2:
			stock += 100
		}
	}
	return fmt.Sprintf(`{"id":"p%04d","name":"Product %d","price":%d.%02d,"stock":%d,"attrs":{"color":%q,"size":"M"}}`,
		i, i, cents/100, cents%100, stock, color)
}

func jobRun1() []string {
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = jobProduct(i, false)
	}
	return lines
}

func jobRun2() []string {
	var lines []string
	for i := range 1000 {
		switch {
		case i%100 == 5:
			continue
		case i%20 == 10:
			lines = append(lines, jobProduct(i, true))
		default:
			lines = append(lines, jobProduct(i, false))
		}
		if i%100 == 50 {
			lines = append(lines, jobProduct(1000+i/100, false))
		}
	}
	return lines
}

// jobReceiver keeps, per path, the requests it accepted.
type jobReceiver struct {
	mu  sync.Mutex
	got map[string][]captured
}

func (j *jobReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.got == nil {
		j.got = map[string][]captured{}
	}
	j.got[r.URL.Path] = append(j.got[r.URL.Path], captured{r.Header.Clone(), b})
}

// wait returns the requests to path once there are n of them.
func (j *jobReceiver) wait(t *testing.T, path string, n int) []captured {
	t.Helper()
	var got []captured
	waitFor(t, fmt.Sprintf("%d deliveries to %s", n, path), 30*time.Second, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		got = append([]captured(nil), j.got[path]...)
		return len(got) >= n
	})
	return got
}

// jobSetup is a server with the two webhooks of job 644, of one app, so
// that their deliveries go out in one queue in the order they were made.
type jobSetup struct {
	m            *Main
	c            *client
	recv         *jobReceiver
	all, price   idOnly
	allN, priceN int // deliveries each has received so far
}

func newJobSetup(t *testing.T) *jobSetup {
	recv := &jobReceiver{}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	m := startMain(t)
	c := m.client(t)
	app := c.createApp("Feed")
	s := &jobSetup{m: m, c: c, recv: recv}
	s.all = c.createWebhook(map[string]any{
		"callback_url": srv.URL + "/all", "app_id": app, "job_id": "644", "batch_size": 50,
	})
	s.price = c.createWebhook(map[string]any{
		"callback_url": srv.URL + "/price", "app_id": app, "job_id": "644",
		"events": []string{"UPDATED"}, "fields": []string{"price"},
	})
	return s
}

type jobRunView struct {
	ID         string `json:"id"`
	JobID      string `json:"job_id"`
	Key        string `json:"key"`
	Status     string `json:"status"`
	Products   int    `json:"products"`
	Added      int    `json:"added"`
	Updated    int    `json:"updated"`
	Removed    int    `json:"removed"`
	Deliveries int    `json:"deliveries"`
	Error      string `json:"error"`
	Line       int    `json:"line"`
}

func (v jobRunView) counts() string {
	return fmt.Sprintf("%s products=%d added=%d updated=%d removed=%d deliveries=%d",
		v.Status, v.Products, v.Added, v.Updated, v.Removed, v.Deliveries)
}

// post sends a run's body and returns the status and the answer.
func (s *jobSetup) post(t *testing.T, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", s.c.base+"/v1/jobs/644/runs", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.c.key)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post run: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// run posts an NDJSON run that must be accepted, with these counts.
func (s *jobSetup) run(t *testing.T, lines []string, want string) {
	t.Helper()
	status, raw := s.post(t, "application/x-ndjson", []byte(strings.Join(lines, "\n")+"\n"))
	var v jobRunView
	if status != http.StatusCreated || json.Unmarshal(raw, &v) != nil {
		t.Fatalf("post run: status %d: %s", status, raw)
	}
	if got := v.counts(); got != want || v.JobID != "644" || v.Key != "id" {
		t.Fatalf("run %s (%s), want %s", got, raw, want)
	}
}

// checkRun1 waits for run 1's deliveries: every product ADDED, in order,
// fifty to a delivery.
func (s *jobSetup) checkRun1(t *testing.T) {
	t.Helper()
	got := s.recv.wait(t, "/all", s.allN+20)[s.allN:]
	s.allN += 20
	next := 0
	for _, c := range got {
		verify(t, s.all.SigningSecret, c)
		var p struct {
			JobID    string `json:"jobID"`
			Products []struct {
				Event       string          `json:"event"`
				ProductData json.RawMessage `json:"productData"`
			} `json:"products"`
		}
		decode(t, c.body, &p)
		if p.JobID != "644" || len(p.Products) != 50 {
			t.Fatalf("run 1 delivery: job %q with %d products, want 50", p.JobID, len(p.Products))
		}
		for _, pr := range p.Products {
			if pr.Event != "ADDED" || string(pr.ProductData) != jobProduct(next, false) {
				t.Fatalf("run 1 product %d: %s %s", next, pr.Event, pr.ProductData)
			}
			next++
		}
	}
}

// checkRun2 waits for run 2's deliveries and compares them with the golden
// files: the job webhook gets the 70 changes in two deliveries, the price
// webhook only the products whose price changed.
func (s *jobSetup) checkRun2(t *testing.T) {
	t.Helper()
	all := s.recv.wait(t, "/all", s.allN+2)[s.allN:]
	s.allN += 2
	price := s.recv.wait(t, "/price", s.priceN+1)[s.priceN:]
	s.priceN++
	want, wantPrice := jobRun2Changes()
	checkChanges(t, "job webhook", want, all...)
	checkChanges(t, "price webhook", wantPrice, price...)
	ts := ""
	for i, c := range all {
		verify(t, s.all.SigningSecret, c)
		ts = checkGolden(t, fmt.Sprintf("run2/all-%d.json", i+1), c.body, ts)
	}
	verify(t, s.price.SigningSecret, price[0])
	checkGolden(t, "run2/price-1.json", price[0].body, ts)
}

// jobChange is one product of a job payload, as the test checks it: the
// event, the product's data and the names of its changed fields.
type jobChange struct {
	Event       string          `json:"event"`
	ProductData json.RawMessage `json:"productData"`
	Changed     []struct {
		Name string `json:"name"`
	} `json:"changedFields"`
}

func (c jobChange) String() string {
	names := make([]string, len(c.Changed))
	for i, f := range c.Changed {
		names[i] = f.Name
	}
	return c.Event + " " + string(c.ProductData) + " " + strings.Join(names, ",")
}

// jobRun2Changes lists what run 2 changed, as the job webhook and the price
// webhook must hear it, in order: ADDED and UPDATED products in run order,
// then REMOVED ones in run 1's order.
func jobRun2Changes() (all, price []string) {
	updated := func(i int, names ...string) string {
		return "UPDATED " + jobProduct(i, true) + " " + strings.Join(names, ",")
	}
	for i := range 1000 {
		if i%20 == 10 {
			switch (i / 20) % 3 {
			case 0:
				all = append(all, updated(i, "price", "stock"))
				price = append(price, updated(i, "price"))
			case 1:
				all = append(all, updated(i, "attrs.color"))
			case 2:
				all = append(all, updated(i, "stock"))
			}
		}
		if i%100 == 50 {
			all = append(all, "ADDED "+jobProduct(1000+i/100, false)+" ")
		}
	}
	for i := 5; i < 1000; i += 100 {
		all = append(all, "REMOVED "+jobProduct(i, false)+" ")
	}
	return all, price
}

// checkChanges checks the products that deliveries carry against want.
func checkChanges(t *testing.T, who string, want []string, deliveries ...captured) {
	t.Helper()
	var got []string
	for _, d := range deliveries {
		var p struct {
			Products []jobChange `json:"products"`
		}
		decode(t, d.body, &p)
		for _, c := range p.Products {
			got = append(got, c.String())
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s got %d products:\n%s\nwant %d:\n%s", who, len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
}

// timestampRE finds the payload's timestamp, which Main takes from the
// system clock; golden files hold a placeholder instead.
var timestampRE = regexp.MustCompile(`^\{"timestamp":"([^"]*)",`)

const timestampPlaceholder = "<timestamp>"

// checkGolden compares a job payload with testdata/jobs/<name>. The body
// must be compact JSON; the golden file holds it indented, for review, with
// the timestamp replaced by a placeholder. The timestamp must be RFC 3339
// UTC to the second, and equal to ts unless ts is empty. It returns the
// timestamp.
func checkGolden(t *testing.T, name string, body []byte, ts string) string {
	t.Helper()
	m := timestampRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("%s: payload does not start with a timestamp: %.200s", name, body)
	}
	got := string(m[1])
	if at, err := time.Parse(time.RFC3339, got); err != nil || !strings.HasSuffix(got, "Z") || at.Nanosecond() != 0 || time.Since(at) > time.Minute {
		t.Errorf("%s: timestamp %q is not a recent RFC 3339 UTC time in seconds", name, got)
	}
	if ts != "" && got != ts {
		t.Errorf("%s: timestamp %q, want the run's %q", name, got, ts)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil || !bytes.Equal(compact.Bytes(), body) {
		t.Errorf("%s: the payload is not compact JSON (%v)", name, err)
	}
	var indented bytes.Buffer
	stable := bytes.Replace(body, m[1], []byte(timestampPlaceholder), 1)
	if err := json.Indent(&indented, stable, "", "  "); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	indented.WriteByte('\n')
	path := filepath.Join("..", "..", "testdata", "jobs", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if !bytes.Equal(indented.Bytes(), want) {
		t.Errorf("%s differs from the golden file:\n%s", name, firstDifference(indented.String(), string(want)))
	}
	return got
}

func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  got  %s\n  want %s", i+1, gl, wl)
		}
	}
	return ""
}

// runs returns the job's runs, newest first.
func (s *jobSetup) runs(t *testing.T) []jobRunView {
	t.Helper()
	var list struct {
		Data []jobRunView `json:"data"`
	}
	s.c.must(http.StatusOK, "GET", "/v1/jobs/644/runs", nil, &list)
	return list.Data
}

// deliveryCount counts a webhook's deliveries in the delivery log.
func (s *jobSetup) deliveryCount(t *testing.T, webhookID string) int {
	t.Helper()
	var list struct {
		Data []deliveryView `json:"data"`
	}
	s.c.must(http.StatusOK, "GET", "/v1/deliveries?webhook_id="+webhookID, nil, &list)
	for _, d := range list.Data {
		if d.Event != "job.run" {
			t.Errorf("delivery %s: event %q, want job.run", d.ID, d.Event)
		}
	}
	return len(list.Data)
}

const (
	run1Counts = "accepted products=1000 added=1000 updated=0 removed=0 deliveries=20"
	run2Counts = "accepted products=1000 added=10 updated=50 removed=10 deliveries=3"
)

// TestJobRunOverHTTP posts two runs of a job and checks what the job's
// webhooks receive: run 1's thousand products ADDED, then exactly run 2's
// fifty UPDATED (with changedFields), ten ADDED and ten REMOVED, in the
// payload of reference document 2 (golden files testdata/jobs/run2/); the
// webhook monitoring the price gets only the products whose price changed,
// whole, with only the price in changedFields.
func TestJobRunOverHTTP(t *testing.T) {
	t.Parallel()
	s := newJobSetup(t)
	s.run(t, jobRun1(), run1Counts)
	s.checkRun1(t)
	s.run(t, jobRun2(), run2Counts)
	s.checkRun2(t)

	runs := s.runs(t)
	if len(runs) != 2 || runs[0].counts() != run2Counts || runs[1].counts() != run1Counts {
		t.Errorf("runs, newest first: %+v", runs)
	}
	if n, m := s.deliveryCount(t, s.all.ID), s.deliveryCount(t, s.price.ID); n != 22 || m != 1 {
		t.Errorf("delivery log: %d and %d deliveries, want 22 and 1", n, m)
	}
}

// TestFailedJobRunChangesNothing posts a run 2 whose line 500 is malformed:
// it is refused naming line 500 and recorded as failed, nothing reaches the
// receivers, and run 2 posted again (as a JSON array this time) is compared
// with run 1, as if the failed run had never been.
func TestFailedJobRunChangesNothing(t *testing.T) {
	t.Parallel()
	s := newJobSetup(t)
	s.run(t, jobRun1(), run1Counts)
	s.checkRun1(t)

	bad := jobRun2()
	bad[499] = strings.TrimSuffix(bad[499], "}") // line 500 loses its closing brace
	status, raw := s.post(t, "application/x-ndjson", []byte(strings.Join(bad, "\n")))
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Line   int    `json:"line"`
		RunID  string `json:"run_id"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", status, raw)
	}
	if p.Code != "invalid_job_run" || p.Line != 500 || !strings.Contains(p.Detail, "line 500") || p.RunID == "" {
		t.Fatalf("problem %s, want invalid_job_run naming line 500", raw)
	}
	runs := s.runs(t)
	if len(runs) != 2 || runs[0].ID != p.RunID || runs[0].Status != "failed" || runs[0].Line != 500 ||
		!strings.Contains(runs[0].Error, "line 500") || runs[0].Deliveries != 0 || runs[1].counts() != run1Counts {
		t.Fatalf("runs, newest first: %+v", runs)
	}
	if n, m := s.deliveryCount(t, s.all.ID), s.deliveryCount(t, s.price.ID); n != 20 || m != 0 {
		t.Errorf("delivery log after the failed run: %d and %d deliveries, want 20 and 0", n, m)
	}

	array := "[" + strings.Join(jobRun2(), ",\n") + "]"
	status, raw = s.post(t, "application/json", []byte(array))
	var v jobRunView
	if status != http.StatusCreated || json.Unmarshal(raw, &v) != nil || v.counts() != run2Counts {
		t.Fatalf("run 2 again: status %d: %s, want %s", status, raw, run2Counts)
	}
	// Both webhooks belong to one app, whose deliveries go out in order:
	// anything the failed run had queued would have arrived first.
	s.checkRun2(t)
	s.recv.mu.Lock()
	n, m := len(s.recv.got["/all"]), len(s.recv.got["/price"])
	s.recv.mu.Unlock()
	if n != 22 || m != 1 {
		t.Errorf("receivers got %d and %d deliveries, want 22 and 1", n, m)
	}
}
