// Package storetest is the conformance suite of pimhook.Store. Every store
// (SQLite, PostgreSQL) runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) pimhook.Store { return openEmpty(t) })
//	}
//
// The suite tests the contract only, never how a store keeps it. Times in
// fixtures have microsecond precision, which every store can keep exactly.
package storetest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// Run runs the conformance suite. open must return a fresh, empty store for
// the calling test and close it with t.Cleanup; it is called once per test,
// from tests running in parallel.
func Run(t *testing.T, open func(t *testing.T) pimhook.Store) {
	t.Helper()
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Company", companyCases},
		{"App", appCases},
		{"Webhook", webhookCases},
		{"Disable", disableCases},
		{"Ingest", ingestCases},
		{"Delivery", deliveryCases},
		{"Job", jobCases},
		{"Bulk", bulkCases},
		{"ErrorLog", errorLogCases},
		{"Operate", operateCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, open(t))
				})
			}
		})
	}
}

// testCase is one test of the suite, given its own empty store.
type testCase struct {
	name string
	run  func(t *testing.T, s pimhook.Store)
}

// base is the fixtures' clock, at microsecond precision.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// at returns base plus sec seconds.
func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func newCompany(t *testing.T, s pimhook.Store, name string) *pimhook.Company {
	t.Helper()
	c := &pimhook.Company{
		ID:          pimhook.NewID(pimhook.PrefixCompany, base),
		Name:        name,
		Preferences: pimhook.Preferences{WebhookInvocationTimeoutMS: 4000},
		CreatedAt:   at(0),
	}
	if err := s.CreateCompany(t.Context(), c); err != nil {
		t.Fatalf("create company: %v", err)
	}
	return c
}

func newApp(t *testing.T, s pimhook.Store, companyID string, isDefault bool) *pimhook.App {
	t.Helper()
	a := &pimhook.App{
		ID: pimhook.NewID(pimhook.PrefixApp, base), CompanyID: companyID, Name: "shop",
		AppType: "shopware", Worker: pimhook.WorkerDedicated, IsDefault: isDefault,
		CreatedAt: at(1), UpdatedAt: at(2),
	}
	if err := s.CreateApp(t.Context(), a); err != nil {
		t.Fatalf("create app: %v", err)
	}
	return a
}

func newWebhook(t *testing.T, s pimhook.Store, companyID, appID string, created time.Time) *pimhook.Webhook {
	t.Helper()
	w := &pimhook.Webhook{
		ID: pimhook.NewID(pimhook.PrefixWebhook, created), CompanyID: companyID, AppID: appID,
		Name: "orders", URL: "https://shop.example.com/hooks?x=1",
		EntityTypes: []string{"products", "brands"},
		Events:      []pimhook.Action{pimhook.ActionCreated, pimhook.ActionUpdated},
		Fields:      []string{"name", "price.amount"},
		Format:      pimhook.FormatEvent, IncludeEntityData: true,
		Headers:     map[string]string{"X-Api-Key": "k1", "X-Tenant": "emea"},
		RetryPolicy: pimhook.RetryLinear, MinimumRetryInterval: 2.5, RetryLimit: 7, TimeoutMS: 3000,
		Enabled: true, Secret: pimhook.NewSecret(),
		CreatedAt: created, UpdatedAt: created.Add(time.Second),
	}
	if err := s.CreateWebhook(t.Context(), w); err != nil {
		t.Fatalf("create webhook: %v", err)
	}
	return w
}

// wantError fails t unless err is a *pimhook.Error of kind and, when code is
// not empty, of code.
func wantError(t *testing.T, what string, err error, kind pimhook.Kind, code string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: got no error, want %s %s", what, kind, code)
	case pimhook.ErrorKind(err) != kind:
		t.Errorf("%s: got %v (kind %s), want kind %s", what, err, pimhook.ErrorKind(err), kind)
	case code != "" && pimhook.ErrorCode(err) != code:
		t.Errorf("%s: got %v (code %s), want code %s", what, err, pimhook.ErrorCode(err), code)
	}
}

// wantSame fails t when got differs from want; see diff.
func wantSame(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := diff(want, got); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// diff describes the first difference between want and got, or returns "".
// Times compare with Equal; nil slices and maps match empty ones; unexported
// fields are ignored.
func diff(want, got any) string {
	return diffValue("", reflect.ValueOf(want), reflect.ValueOf(got))
}

func diffValue(path string, w, g reflect.Value) string {
	if !w.IsValid() || !g.IsValid() {
		if w.IsValid() != g.IsValid() {
			return fmt.Sprintf("%s: want %v, got %v", path, w, g)
		}
		return ""
	}
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		if !wt.Equal(gt) {
			return fmt.Sprintf("%s: want %v, got %v", path, wt, gt)
		}
		return ""
	}
	switch w.Kind() {
	case reflect.Pointer, reflect.Interface:
		if w.IsNil() || g.IsNil() {
			if w.IsNil() != g.IsNil() {
				return fmt.Sprintf("%s: want %v, got %v", path, w, g)
			}
			return ""
		}
		return diffValue(path, w.Elem(), g.Elem())
	case reflect.Struct:
		for i := range w.NumField() {
			f := w.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if d := diffValue(path+"."+f.Name, w.Field(i), g.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if w.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(w.Bytes(), g.Bytes()) {
				return fmt.Sprintf("%s: want %q, got %q", path, w.Bytes(), g.Bytes())
			}
			return ""
		}
		if w.Len() != g.Len() {
			return fmt.Sprintf("%s: want %d elements %v, got %d %v", path, w.Len(), w, g.Len(), g)
		}
		for i := range w.Len() {
			if d := diffValue(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if w.Len() != g.Len() {
			return fmt.Sprintf("%s: want %v, got %v", path, w, g)
		}
		for _, k := range w.MapKeys() {
			gv := g.MapIndex(k)
			if !gv.IsValid() {
				return fmt.Sprintf("%s: want key %v, missing", path, k)
			}
			if d := diffValue(fmt.Sprintf("%s[%v]", path, k), w.MapIndex(k), gv); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(w.Interface(), g.Interface()) {
		return fmt.Sprintf("%s: want %v, got %v", path, w, g)
	}
	return ""
}

// jsonEqual reports whether two JSON documents hold the same value, so that
// a store may keep entity data in a normalised form.
func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// target is where the fanOut decider sends an event.
type target struct{ appID, webhookID string }

// tracker remembers what a decider handed to the store, by delivery ID.
type tracker struct {
	mu         sync.Mutex
	deliveries map[string]*pimhook.Delivery
	events     map[string]*pimhook.Event // by delivery ID
	decided    map[string]int            // decide calls by event ID
}

func newTracker() *tracker {
	return &tracker{
		deliveries: map[string]*pimhook.Delivery{},
		events:     map[string]*pimhook.Event{},
		decided:    map[string]int{},
	}
}

func (tr *tracker) decidedCount(eventID string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.decided[eventID]
}

func (tr *tracker) delivery(id string) (*pimhook.Delivery, *pimhook.Event) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.deliveries[id], tr.events[id]
}

// fanOut returns a Decider that does what change detection and fan-out do,
// simply: it keeps each entity's data and revision, finds updates that
// change nothing, and sends every other event to each target. It may be
// called concurrently.
func (tr *tracker) fanOut(targets ...target) pimhook.Decider {
	return func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
		ev.EffectiveAction = ev.Action
		switch {
		case stored == nil || stored.Deleted:
			if ev.Action == pimhook.ActionUpdated {
				ev.EffectiveAction = pimhook.ActionCreated
			}
		case ev.Action != pimhook.ActionDeleted && jsonEqual(stored.Data, ev.Data):
			ev.Revision = stored.Revision
			tr.mu.Lock()
			tr.decided[ev.ID]++
			tr.mu.Unlock()
			return pimhook.Decision{Unchanged: true}, nil
		}
		ev.Revision = 1
		if stored != nil {
			ev.Revision = stored.Revision + 1
		}
		if ev.EffectiveAction == pimhook.ActionUpdated {
			ev.ChangedFields = []pimhook.FieldChange{{Name: "data", From: stored.Data, To: ev.Data}}
		}
		dec := pimhook.Decision{Entity: &pimhook.Entity{
			CompanyID: ev.CompanyID, Type: ev.EntityType, ID: ev.EntityID, Data: ev.Data,
			Revision: ev.Revision, Deleted: ev.EffectiveAction == pimhook.ActionDeleted, UpdatedAt: ev.ReceivedAt,
		}}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.decided[ev.ID]++
		for _, tg := range targets {
			d := &pimhook.Delivery{
				ID: pimhook.NewID(pimhook.PrefixDelivery, ev.ReceivedAt), CompanyID: ev.CompanyID,
				AppID: tg.appID, WebhookID: tg.webhookID, EventID: ev.ID, EventName: ev.Name(),
				Payload: fmt.Appendf(nil, `{"event":%q,"entity_id":%q,"revision":%d}`, ev.Name(), ev.EntityID, ev.Revision),
				Status:  pimhook.DeliveryPending, NextAttemptAt: ev.ReceivedAt,
				CreatedAt: ev.ReceivedAt, UpdatedAt: ev.ReceivedAt,
			}
			dec.Deliveries = append(dec.Deliveries, d)
			tr.deliveries[d.ID] = d
			tr.events[d.ID] = ev
		}
		return dec, nil
	}
}

// event returns an event of a product.
func event(companyID, entityID string, action pimhook.Action, data string, received time.Time) *pimhook.Event {
	return &pimhook.Event{
		ID: pimhook.NewID(pimhook.PrefixEvent, received), CompanyID: companyID,
		EntityType: "products", EntityID: entityID, Action: action,
		Data: json.RawMessage(data), ReceivedAt: received, Fingerprint: "fp-" + entityID + "-" + data,
	}
}

// pending reads an app's whole queue, limit deliveries at a time.
func pending(t *testing.T, s pimhook.Store, appID string, limit int) []*pimhook.Delivery {
	t.Helper()
	var all []*pimhook.Delivery
	after := int64(0)
	for {
		page, err := s.PendingDeliveries(t.Context(), appID, after, limit)
		if err != nil {
			t.Fatalf("pending deliveries: %v", err)
		}
		if len(page) > limit {
			t.Fatalf("pending deliveries: %d for limit %d", len(page), limit)
		}
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		after = page[len(page)-1].Seq
	}
}

// wantAscending fails t unless ds are in strictly ascending Seq order.
func wantAscending(t *testing.T, what string, ds []*pimhook.Delivery) {
	t.Helper()
	if !slices.IsSortedFunc(ds, func(a, b *pimhook.Delivery) int { return cmp.Compare(a.Seq, b.Seq) }) {
		t.Errorf("%s: not in Seq order", what)
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].Seq == ds[i-1].Seq {
			t.Errorf("%s: Seq %d twice", what, ds[i].Seq)
		}
	}
}

// ids returns the IDs of ds.
func ids(ds []*pimhook.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// ingest calls s.Ingest and fails t on error.
func ingest(t *testing.T, s pimhook.Store, companyID string, decide pimhook.Decider, events ...*pimhook.Event) []pimhook.IngestResult {
	t.Helper()
	rs, err := s.Ingest(t.Context(), companyID, events, decide)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if len(rs) != len(events) {
		t.Fatalf("ingest: %d results for %d events", len(rs), len(events))
	}
	return rs
}
