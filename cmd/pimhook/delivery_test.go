package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// captured is one request a receiver saw.
type captured struct {
	header http.Header
	body   []byte
}

// TestSignedDeliveryEndToEnd posts events to the API and checks what arrives
// at the receiver: the Standard Webhooks signature (verified with the
// reference library), the headers, the payload elements of reference
// document 1, and the attempt in the delivery log.
func TestSignedDeliveryEndToEnd(t *testing.T) {
	t.Parallel()
	got := make(chan captured, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Header.Clone(), b}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()

	m := startMain(t)
	c := m.client(t)
	appID := c.createApp("Webshop")
	hook := c.createWebhook(map[string]any{
		"name":                   "Product Updates Webhook",
		"callback_url":           recv.URL + "/callbacks/products",
		"entity_type":            "product",
		"include_entity_data":    true,
		"headers":                map[string]string{"My-Custom-Header": "abc123"},
		"retry_policy":           "linear",
		"minimum_retry_interval": 300,
		"retry_limit":            5,
		"app_id":                 appID,
	})

	var ack ingestAnswer
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
		"entity_type": "products", "entity_id": "sku-1", "action": "created",
		"data": map[string]any{"name": "Chair", "price": map[string]any{"amount": 199.99, "currency": "EUR"}},
	}, &ack)
	if len(ack.Events) != 1 || ack.Events[0].Deliveries != 1 || ack.Events[0].Event != "products.created" {
		t.Fatalf("ingest answer = %+v, want one products.created event with one delivery", ack)
	}

	first := receive(t, got)
	verify(t, hook.SigningSecret, first)
	if ct := first.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ua := first.header.Get("User-Agent"); !strings.Contains(strings.ToLower(ua), "pimhook") {
		t.Errorf("User-Agent = %q, want it to name pimhook", ua)
	}
	if h := first.header.Get("My-Custom-Header"); h != "abc123" {
		t.Errorf("custom header = %q", h)
	}
	var p struct {
		ID       string `json:"id"`
		Event    string `json:"event"`
		Entity   string `json:"entity"`
		EntityID string `json:"entity_id"`
		Company  struct {
			ID, Name string
		} `json:"company"`
		App struct {
			ID      string `json:"id"`
			Name    string `json:"name"`
			AppType string `json:"app_type"`
		} `json:"app"`
		Workflow struct {
			WebhookID string `json:"webhook_id"`
			Name      string `json:"name"`
			Attempt   int    `json:"attempt"`
		} `json:"workflow"`
		Revision struct {
			Number        int64             `json:"number"`
			ChangedFields []json.RawMessage `json:"changed_fields"`
		} `json:"revision"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	decode(t, first.body, &p)
	if p.ID != ack.Events[0].ID || p.Event != "products.created" || p.Entity != "product" || p.EntityID != "sku-1" {
		t.Errorf("event elements = %+v", p)
	}
	if p.Company.ID != DefaultCompanyID || p.App.ID != appID || p.App.Name != "Webshop" || p.App.AppType != "generic" {
		t.Errorf("company/app = %+v %+v", p.Company, p.App)
	}
	if p.Workflow.WebhookID != hook.ID || p.Workflow.Name != "Product Updates Webhook" || p.Workflow.Attempt != 1 {
		t.Errorf("workflow = %+v", p.Workflow)
	}
	if p.Revision.Number != 1 || p.Revision.ChangedFields == nil || len(p.Revision.ChangedFields) != 0 {
		t.Errorf("revision = %+v, want number 1 and an empty changed_fields list", p.Revision)
	}
	if _, err := time.Parse(time.RFC3339Nano, p.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", p.Timestamp, err)
	}
	if !strings.Contains(string(p.Data), `"Chair"`) {
		t.Errorf("data = %s, want the entity data", p.Data)
	}

	// An update is diffed against the stored state.
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
		"entity_type": "product", "entity_id": "sku-1", "action": "updated",
		"data": map[string]any{"name": "Chair", "price": map[string]any{"amount": 120.99, "currency": "EUR"}},
	}, &ack)
	second := receive(t, got)
	verify(t, hook.SigningSecret, second)
	decode(t, second.body, &p)
	if p.Event != "products.updated" || p.Revision.Number != 2 || len(p.Revision.ChangedFields) != 1 {
		t.Fatalf("update payload: event %s revision %+v", p.Event, p.Revision)
	}
	var fc struct {
		Name string  `json:"name"`
		From float64 `json:"from"`
		To   float64 `json:"to"`
	}
	decode(t, p.Revision.ChangedFields[0], &fc)
	if fc.Name != "price.amount" || fc.From != 199.99 || fc.To != 120.99 {
		t.Errorf("changed field = %s", p.Revision.ChangedFields[0])
	}

	// An update that changes nothing yields no delivery.
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
		"entity_type": "product", "entity_id": "sku-1", "action": "updated",
		"data": map[string]any{"price": map[string]any{"currency": "EUR", "amount": 120.990}, "name": "Chair"},
	}, &ack)
	if ack.Events[0].Status != "unchanged" || ack.Events[0].Deliveries != 0 {
		t.Errorf("no-op update answer = %+v", ack.Events[0])
	}

	// The attempt is in the delivery log.
	msgID := second.header.Get("webhook-id")
	var dv deliveryView
	waitFor(t, "the delivery to be recorded as succeeded", 10*time.Second, func() bool {
		c.must(http.StatusOK, "GET", "/v1/deliveries/"+msgID, nil, &dv)
		return dv.Status == "succeeded"
	})
	var attempts []attemptView
	decode(t, dv.Attempts, &attempts)
	if len(attempts) != 1 || attempts[0].StatusCode != http.StatusAccepted || !attempts[0].Succeeded || attempts[0].Number != 1 {
		t.Errorf("attempts = %+v", attempts)
	}
	var list struct {
		Data []deliveryView `json:"data"`
	}
	c.must(http.StatusOK, "GET", "/v1/deliveries?webhook_id="+hook.ID, nil, &list)
	if len(list.Data) != 2 || list.Data[0].ID != msgID {
		t.Errorf("delivery list = %+v, want 2 deliveries, newest first", list.Data)
	}
	select {
	case extra := <-got:
		t.Errorf("unexpected extra delivery: %s", extra.body)
	default:
	}
}

func receive(t *testing.T, ch <-chan captured) captured {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery arrived")
		return captured{}
	}
}

// verify checks the signature with the Standard Webhooks reference library.
func verify(t *testing.T, secret string, c captured) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	if err := wh.Verify(c.body, c.header); err != nil {
		t.Fatalf("signature does not verify: %v (headers %v)", err, c.header)
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// orderReceiver records, per path, the sequence numbers it accepted. It
// fails a share of requests at random, and notes any moment when two
// requests for one path were in flight together.
type orderReceiver struct {
	failRate float64
	hold     time.Duration // added to each request's work

	mu         sync.Mutex
	rnd        *rand.Rand
	seen       map[string][]int
	inFlight   map[string]*atomic.Int32
	concurrent atomic.Int32
	requests   atomic.Int64
}

func newOrderReceiver(failRate float64, seed uint64) *orderReceiver {
	return &orderReceiver{
		failRate: failRate, rnd: rand.New(rand.NewPCG(seed, seed)),
		seen: map[string][]int{}, inFlight: map[string]*atomic.Int32{},
	}
}

func (o *orderReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	o.mu.Lock()
	n, ok := o.inFlight[r.URL.Path]
	if !ok {
		n = new(atomic.Int32)
		o.inFlight[r.URL.Path] = n
	}
	fail := o.rnd.Float64() < o.failRate
	work := o.hold + time.Duration(o.rnd.IntN(300))*time.Microsecond
	o.mu.Unlock()

	if n.Add(1) > 1 {
		o.concurrent.Add(1)
	}
	defer n.Add(-1)
	var p struct {
		Data struct {
			Seq int `json:"seq"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	time.Sleep(work) // the receiver's own work, so overlaps would show
	if fail {
		http.Error(w, "random failure", http.StatusInternalServerError)
		return
	}
	o.mu.Lock()
	o.seen[r.URL.Path] = append(o.seen[r.URL.Path], p.Data.Seq)
	o.mu.Unlock()
}

func (o *orderReceiver) received(path string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen[path])
}

// TestPerAppOrderUnderFailures posts 200 events for each of 5 apps while the
// receivers fail 30% of requests: every app must receive its events exactly
// in the posted order, and never two at once. Each app has two webhooks and
// the events alternate between them, so ordering per webhook alone would
// not pass.
func TestPerAppOrderUnderFailures(t *testing.T) {
	t.Parallel()
	const apps, events = 5, 200
	recv := newOrderReceiver(0.3, 42)
	srv := httptest.NewServer(recv)
	defer srv.Close()

	m := startMain(t)
	c := m.client(t)
	types := []string{"product", "brand", "category", "channel", "asset", "price", "stock", "supplier", "variant", "image"}
	for i := range apps {
		app := c.createApp("app " + itoa(i))
		for _, typ := range types[2*i : 2*i+2] {
			c.createWebhook(map[string]any{
				"callback_url": srv.URL + "/app/" + itoa(i), "app_id": app,
				"entity_type": typ, "include_entity_data": true,
				"retry_policy": "linear", "minimum_retry_interval": 0.001, "retry_limit": 50,
			})
		}
	}
	base := "http://" + m.Listener.Addr().String()
	var wg sync.WaitGroup
	for i := range apps {
		wg.Go(func() {
			for k := range events {
				body, _ := json.Marshal(map[string]any{
					"entity_type": types[2*i+k%2], "entity_id": "e" + itoa(k), "action": "created",
					"data": map[string]any{"seq": k},
				})
				if status, err := postEvent(base, body); err != nil || status != http.StatusAccepted {
					t.Errorf("app %d event %d: status %d, %v", i, k, status, err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := make([]int, events)
	for k := range want {
		want[k] = k
	}
	for i := range apps {
		path := "/app/" + itoa(i)
		waitFor(t, "app "+itoa(i)+" to receive every event", 90*time.Second, func() bool {
			return len(recv.received(path)) >= events
		})
		if got := recv.received(path); !slices.Equal(got, want) {
			t.Errorf("app %d received %v, want 0..%d in order", i, got, events-1)
		}
	}
	if n := recv.concurrent.Load(); n != 0 {
		t.Errorf("%d requests overlapped another request for the same app", n)
	}
	if r := recv.requests.Load(); r <= apps*events {
		t.Errorf("receivers saw %d requests; with 30%% failures there must have been retries", r)
	}
}
