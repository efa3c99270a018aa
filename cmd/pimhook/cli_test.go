package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// cliOutput is an output that commands running in another goroutine write
// to and a test waits on.
type cliOutput struct {
	mu     sync.Mutex
	b      bytes.Buffer
	notify chan struct{}
}

func newCLIOutput() *cliOutput { return &cliOutput{notify: make(chan struct{}, 1)} }

func (o *cliOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return o.b.Write(p)
}

func (o *cliOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// match waits until the output matches re and returns the submatches.
func (o *cliOutput) match(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		if m := re.FindStringSubmatch(o.String()); m != nil {
			return m
		}
		select {
		case <-o.notify:
		case <-timeout:
			t.Fatalf("timed out waiting for output matching %s; got:\n%s", re, o.String())
		}
	}
}

// runCLI runs a pimhook command in-process against m, as the binary would
// with these arguments, and returns what it printed. The server flags go
// last, so every command is also checked to take flags after its
// arguments.
func runCLI(t *testing.T, m *Main, args ...string) (string, error) {
	t.Helper()
	var out, stderr bytes.Buffer
	args = append(args, "--url", "http://"+m.Listener.Addr().String(), "--key", testKey)
	err := run(t.Context(), args, &out, &stderr)
	return out.String(), err
}

// mustCLI is runCLI that fails the test on an error.
func mustCLI(t *testing.T, m *Main, args ...string) string {
	t.Helper()
	out, err := runCLI(t, m, args...)
	if err != nil {
		t.Fatalf("pimhook %s: %v\noutput:\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

var createdID = regexp.MustCompile(`(?m)^id:\s+(wh_\S+)$`)

// TestCLIWebhooksRoundTrip creates, lists and deletes webhooks through the
// client commands against a real server.
func TestCLIWebhooksRoundTrip(t *testing.T) {
	t.Parallel()
	m := startMain(t)

	out := mustCLI(t, m, "webhooks", "create", "--callback-url", "http://127.0.0.1:9/hooks/products",
		"--entity-type", "products", "--event", "created", "--event", "updated", "--field", "price", "--name", "CLI hook")
	id := createdID.FindStringSubmatch(out)
	if id == nil || !regexp.MustCompile(`(?m)^signing secret:\s+whsec_\S+$`).MatchString(out) {
		t.Fatalf("create printed:\n%s\nwant the id and the signing secret", out)
	}

	out = mustCLI(t, m, "webhooks", "create", "--json", "--callback-url", "http://127.0.0.1:9/hooks/all")
	var second struct {
		ID            string   `json:"id"`
		CallbackURL   string   `json:"callback_url"`
		Events        []string `json:"events"`
		SigningSecret string   `json:"signing_secret"`
	}
	if err := json.Unmarshal([]byte(out), &second); err != nil || second.CallbackURL != "http://127.0.0.1:9/hooks/all" ||
		!strings.HasPrefix(second.SigningSecret, "whsec_") || len(second.Events) != 0 {
		t.Fatalf("create --json printed %q (%v)", out, err)
	}

	out = mustCLI(t, m, "webhooks", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "CALLBACK URL") {
		t.Fatalf("list printed:\n%s\nwant a header and two rows", out)
	}
	row := regexp.MustCompile(regexp.QuoteMeta(id[1]) + `\s+CLI hook\s+app_\S+\s+products\s+created,updated\s+price\s+yes\s+http://127.0.0.1:9/hooks/products`)
	if !row.MatchString(out) {
		t.Errorf("list printed:\n%s\nwant a row matching %s", out, row)
	}
	// Without --name the server names a webhook after its callback URL.
	if !regexp.MustCompile(regexp.QuoteMeta(second.ID) + `\s+http://127.0.0.1:9/hooks/all\s+app_\S+\s+-\s+all\s+-\s+yes\s+http://127.0.0.1:9/hooks/all`).MatchString(out) {
		t.Errorf("list printed:\n%s\nwant the second webhook with all events", out)
	}
	// The columns line up: every row's callback URL starts where the header's does.
	col := strings.Index(lines[0], "CALLBACK URL")
	for _, l := range lines[1:] {
		if strings.LastIndex(l, "http://") != col {
			t.Errorf("row %q is not aligned with the header %q", l, lines[0])
		}
	}

	if out = mustCLI(t, m, "webhooks", "delete", id[1]); strings.TrimSpace(out) != "deleted webhook "+id[1] {
		t.Errorf("delete printed %q", out)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	out = mustCLI(t, m, "webhooks", "list", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Data) != 1 || list.Data[0].ID != second.ID {
		t.Fatalf("list --json after delete printed %q (%v), want only %s", out, err, second.ID)
	}

	// A second delete is the API's 404, with its code and detail.
	_, err := runCLI(t, m, "webhooks", "delete", id[1])
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != pimhook.CodeWebhookNotFound || ae.Detail == "" ||
		!strings.Contains(err.Error(), ae.Code+": "+ae.Detail) {
		t.Errorf("deleting again: %v, want a not_found problem with its detail", err)
	}
	mustCLI(t, m, "webhooks", "delete", second.ID, "--json")
	if out = mustCLI(t, m, "webhooks", "list"); strings.TrimSpace(out) != "no webhooks" {
		t.Errorf("empty list printed %q", out)
	}
}

// TestCLIUsageErrors checks what the client commands refuse before they
// send anything, and what they make of the server's refusals.
func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"webhooks", "create"}, "--callback-url is required"},
		{[]string{"webhooks", "create", "--callback-url", "ftp://example.com/x"}, pimhook.CodeInvalidURL + ": "},
		{[]string{"webhooks", "delete"}, "missing argument ID"},
		{[]string{"webhooks", "delete", "a", "b"}, `unexpected argument "b"`},
		{[]string{"webhooks", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"webhooks"}, "missing subcommand"},
		{[]string{"events", "send", "--id", "x", "--action", "created"}, "--type is required"},
		{[]string{"events", "send", "--type", "products", "--id", "x", "--action", "created", "--data", "{nope"}, "--data is not valid JSON"},
		{[]string{"events", "send", "--type", "products", "--id", "x", "--action", "exploded"}, pimhook.CodeInvalidAction + ": "},
		{[]string{"events", "send", "--type", "products", "--id", "x", "--action", "created", "--data", "@/nonexistent/file.json"}, "no such file"},
		{[]string{"deliveries", "tail", "--interval", "0s"}, "--interval: want a positive duration"},
		{[]string{"deliveries", "tail", "--status", "lost"}, pimhook.CodeInvalidQuery + ": status must be"},
		{[]string{"deliveries", "redeliver", "msg_nope"}, pimhook.CodeDeliveryNotFound + ": "},
		{[]string{"report", "--start", "yesterday"}, pimhook.CodeInvalidQuery + ": start_date must be"},
	} {
		_, err := runCLI(t, m, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pimhook %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	// The server's flags themselves.
	base := "http://" + m.Listener.Addr().String()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"webhooks", "list", "--url", "localhost:8080", "--key", testKey}, "--url: want the server's base URL"},
		{[]string{"webhooks", "list", "--url", base, "--key", "phk_wrong"}, pimhook.CodeUnauthorized + ": "},
		{[]string{"webhooks", "list", "--url", "http://127.0.0.1:1", "--key", testKey}, "cannot reach pimhook at http://127.0.0.1:1"},
	}
	if os.Getenv("PIMHOOK_API_KEY") == "" {
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"webhooks", "list", "--url", base}, "no API key: pass --key or set PIMHOOK_API_KEY"})
	}
	for _, tc := range cases {
		err := run(t.Context(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pimhook %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// TestCLIEventsSendAndTail sends an event with the CLI and follows its
// delivery with deliveries tail from pending, while the receiver holds the
// attempt, to succeeded; then redelivers it.
func TestCLIEventsSendAndTail(t *testing.T) {
	t.Parallel()
	arrived := make(chan string, 10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- r.Header.Get("webhook-id")
		<-release
	}))
	t.Cleanup(recv.Close)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // runs before recv.Close
	m := startMain(t)
	c := m.client(t)
	hook := c.createWebhook(map[string]any{"callback_url": recv.URL, "entity_type": "products", "timeout_ms": 10000})

	out := mustCLI(t, m, "events", "send", "--type", "products", "--id", "sku-1", "--action", "created", "--data", `{"name":"Chair","price":10}`)
	if !regexp.MustCompile(`^EVENT\s+REVISION\s+DELIVERIES\s+STATUS\s+ID\nproducts\.created\s+1\s+1\s+accepted\s+evt_\S+\n$`).MatchString(out) {
		t.Fatalf("events send printed:\n%s", out)
	}
	var msgID string
	select {
	case msgID = <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery did not arrive")
	}

	// The attempt is in flight: tail shows the delivery pending, and once
	// the receiver answers, succeeded.
	tailOut := newCLIOutput()
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"deliveries", "tail", "--webhook", hook.ID, "--interval", "20ms", "--count", "2",
			"--url", "http://" + m.Listener.Addr().String(), "--key", testKey}, tailOut, io.Discard)
	}()
	tailOut.match(t, regexp.MustCompile(regexp.QuoteMeta(msgID)+`\s+pending\s+products\.created\s+`+regexp.QuoteMeta(hook.ID)))
	releaseOnce.Do(func() { close(release) })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tail: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("tail did not stop after --count 2 lines; printed:\n%s", tailOut)
	}
	lines := strings.Split(strings.TrimSpace(tailOut.String()), "\n")
	want := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  ` + regexp.QuoteMeta(msgID) + `\s+succeeded\s+products\.created\s+` +
		regexp.QuoteMeta(hook.ID) + `\s+attempts 1  last 200$`)
	if len(lines) != 2 || !want.MatchString(lines[1]) {
		t.Fatalf("tail printed:\n%s\nwant a pending line, then one matching %s", tailOut, want)
	}

	// An update from a file goes out as revision 2; --json prints the answer as it came.
	file := filepath.Join(t.TempDir(), "chair.json")
	if err := os.WriteFile(file, []byte(`{"name":"Chair","price":12}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, m, "events", "send", "--type", "products", "--id", "sku-1", "--action", "updated", "--data", "@"+file, "--json")
	var ans cliIngestAnswer
	if err := json.Unmarshal([]byte(out), &ans); err != nil || len(ans.Events) != 1 || ans.Events[0].Event != "products.updated" ||
		ans.Events[0].Revision != 2 || ans.Events[0].Deliveries != 1 {
		t.Fatalf("events send --json printed %q (%v)", out, err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the update was not delivered")
	}

	// Redelivering the first delivery sends it again with its webhook-id.
	out = mustCLI(t, m, "deliveries", "redeliver", msgID)
	if !regexp.MustCompile(`^redelivery queued: ` + regexp.QuoteMeta(msgID) + `  status pending  attempts so far \d+\n$`).MatchString(out) {
		t.Errorf("redeliver printed %q", out)
	}
	select {
	case got := <-arrived:
		if got != msgID {
			t.Errorf("redelivery arrived as %s, want %s", got, msgID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the redelivery did not arrive")
	}

	// --json tail prints one delivery object a line.
	out = mustCLI(t, m, "deliveries", "tail", "--webhook", hook.ID, "--count", "2", "--json")
	var objs []cliDelivery
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var d cliDelivery
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("tail --json line %q: %v", l, err)
		}
		objs = append(objs, d)
	}
	if len(objs) != 2 || objs[0].WebhookID != hook.ID || objs[1].WebhookID != hook.ID || objs[0].ID == objs[1].ID ||
		(objs[0].ID != msgID && objs[1].ID != msgID) {
		t.Errorf("tail --json printed:\n%s\nwant the two deliveries", out)
	}
}

// TestCLIReport prints the response-time report of a few deliveries.
func TestCLIReport(t *testing.T) {
	t.Parallel()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(recv.Close)
	m := startMain(t)
	c := m.client(t)
	hook := c.createWebhook(map[string]any{"callback_url": recv.URL, "entity_type": "products"})
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	for i := range 3 {
		mustCLI(t, m, "events", "send", "--type", "products", "--id", "sku-"+itoa(i), "--action", "created")
	}
	var list struct {
		Data []deliveryView `json:"data"`
	}
	waitFor(t, "three succeeded deliveries", 10*time.Second, func() bool {
		c.must(http.StatusOK, "GET", "/v1/deliveries?status=succeeded&webhook_id="+hook.ID, nil, &list)
		return len(list.Data) == 3
	})
	end := time.Now().UTC().Add(time.Minute).Truncate(time.Second)

	window := []string{"--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339), "--interval", "1h"}
	out := mustCLI(t, m, append([]string{"report", "--json", "--webhook", hook.ID}, window...)...)
	var r pimhook.ResponseTimeReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report --json printed %q: %v", out, err)
	}
	total := 0
	for _, b := range r.AvgResponseTimeTS {
		total += b.Total
		if b.ResponseCode != http.StatusOK || b.Attempt != 1 || b.ResponseTime == "" || b.BucketStart.After(b.LastAttemptedOn) {
			t.Errorf("bucket = %+v", b)
		}
	}
	if total != 3 || len(r.Webhooks) != 1 || r.Webhooks[0].WebhookID != hook.ID || r.Webhooks[0].Total != 3 ||
		r.Webhooks[0].Succeeded != 3 || r.Webhooks[0].P50MS > r.Webhooks[0].P99MS {
		t.Fatalf("report = %+v, want three attempts of %s, all succeeded", r, hook.ID)
	}

	var h struct {
		AppID string `json:"app_id"`
	}
	c.must(http.StatusOK, "GET", "/v1/webhooks/"+hook.ID, nil, &h)
	out = mustCLI(t, m, append([]string{"report", "--app", h.AppID}, window...)...)
	for _, re := range []string{
		`(?m)^BUCKET START\s+LAST ATTEMPT\s+ATTEMPTS\s+MEAN MS\s+CODE\s+MAX ATTEMPT$`,
		`(?m)^` + regexp.QuoteMeta(start.Format(time.RFC3339)) + `\s+\S+Z\s+3\s+\d+\.\d\d\s+200\s+1$`,
		`(?m)^WEBHOOK\s+ATTEMPTS\s+SUCCEEDED\s+P50 MS\s+P95 MS\s+P99 MS$`,
		`(?m)^` + regexp.QuoteMeta(hook.ID) + `\s+3\s+3\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("report printed:\n%s\nwant a line matching %s", out, re)
		}
	}

	// Without a window: the last 24 hours.
	if out = mustCLI(t, m, "report", "--webhook", hook.ID); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(hook.ID) + `\s+3\s+3\s`).MatchString(out) {
		t.Errorf("report without a window printed:\n%s", out)
	}
	// A window without attempts.
	out = mustCLI(t, m, "report", "--start", "2020-01-01T00:00:00Z", "--end", "2020-01-02T00:00:00Z")
	if strings.TrimSpace(out) != "no attempts in this window" {
		t.Errorf("empty report printed %q", out)
	}
}

// TestCLIErrorExitCode runs the binary: a refused call prints the
// problem's code and detail to stderr and exits 1.
func TestCLIErrorExitCode(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	cmd := exec.Command(binary(t), "webhooks", "delete", "wh_nope", "--url", "http://"+m.Listener.Addr().String())
	cmd.Env = append(os.Environ(), "PIMHOOK_API_KEY="+testKey)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if got := stderr.String(); !regexp.MustCompile(`^pimhook: delete webhook wh_nope: webhook_not_found: \S.*\n$`).MatchString(got) || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q", got, stdout.String())
	}
}
