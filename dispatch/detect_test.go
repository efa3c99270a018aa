package dispatch

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

func rev(n int64) *int64 { return &n }

// TestDetect covers the change-detection rules: revisions, the effective
// action, previous data, deletions and stale revisions.
func TestDetect(t *testing.T) {
	t.Parallel()
	live := &pimhook.Entity{Type: "products", ID: "1", Data: json.RawMessage(`{"price":1,"name":"a"}`), Revision: 3}
	deleted := &pimhook.Entity{Type: "products", ID: "1", Data: json.RawMessage(`{"price":1}`), Revision: 4, Deleted: true}
	tests := []struct {
		name     string
		ev       pimhook.Event
		stored   *pimhook.Entity
		want     pimhook.Action // "" when unchanged
		revision int64
		changes  []string // changed field names
		data     string   // the entity's stored data afterwards; "" when not written
		deleted  bool
		code     string // error code, if refused
	}{
		{name: "create new", ev: pimhook.Event{Action: pimhook.ActionCreated, Data: json.RawMessage(`{"a":1}`)},
			want: pimhook.ActionCreated, revision: 1, data: `{"a":1}`},
		{name: "update of unknown entity is a creation", ev: pimhook.Event{Action: pimhook.ActionUpdated, Data: json.RawMessage(`{"a":1}`)},
			want: pimhook.ActionCreated, revision: 1, data: `{"a":1}`},
		{name: "update diffs against stored state", stored: live, ev: pimhook.Event{Action: pimhook.ActionUpdated, Data: json.RawMessage(`{"price":2,"name":"a"}`)},
			want: pimhook.ActionUpdated, revision: 4, changes: []string{"price"}, data: `{"price":2,"name":"a"}`},
		{name: "update that changes nothing", stored: live, ev: pimhook.Event{Action: pimhook.ActionUpdated, Data: json.RawMessage(`{"name":"a","price":1.0}`)}},
		{name: "previous wins over stored state", stored: live,
			ev:   pimhook.Event{Action: pimhook.ActionUpdated, Previous: json.RawMessage(`{"price":5,"name":"a"}`), Data: json.RawMessage(`{"price":6,"name":"a"}`)},
			want: pimhook.ActionUpdated, revision: 4, changes: []string{"price"}, data: `{"price":6,"name":"a"}`},
		{name: "previous equal to data: no event, stored state catches up", stored: live,
			ev:   pimhook.Event{Action: pimhook.ActionUpdated, Previous: json.RawMessage(`{"price":9}`), Data: json.RawMessage(`{"price":9}`)},
			data: `{"price":9}`, revision: 3},
		{name: "update of unknown entity with previous stays an update",
			ev:   pimhook.Event{Action: pimhook.ActionUpdated, Previous: json.RawMessage(`{"price":1}`), Data: json.RawMessage(`{"price":2}`)},
			want: pimhook.ActionUpdated, revision: 1, changes: []string{"price"}, data: `{"price":2}`},
		{name: "creation of a live entity is an update", stored: live, ev: pimhook.Event{Action: pimhook.ActionCreated, Data: json.RawMessage(`{"price":1,"name":"b"}`)},
			want: pimhook.ActionUpdated, revision: 4, changes: []string{"name"}, data: `{"price":1,"name":"b"}`},
		{name: "deletion carries the last known data", stored: live, ev: pimhook.Event{Action: pimhook.ActionDeleted},
			want: pimhook.ActionDeleted, revision: 4, data: `{"price":1,"name":"a"}`, deleted: true},
		{name: "deleting a deleted entity is no event", stored: deleted, ev: pimhook.Event{Action: pimhook.ActionDeleted}},
		{name: "deleting an unknown entity", ev: pimhook.Event{Action: pimhook.ActionDeleted, Data: json.RawMessage(`{"x":1}`)},
			want: pimhook.ActionDeleted, revision: 1, data: `{"x":1}`, deleted: true},
		{name: "re-creation after deletion", stored: deleted, ev: pimhook.Event{Action: pimhook.ActionCreated, Data: json.RawMessage(`{"price":1}`)},
			want: pimhook.ActionCreated, revision: 5, data: `{"price":1}`},
		{name: "matching base revision", stored: live, ev: pimhook.Event{Action: pimhook.ActionUpdated, BaseRevision: rev(3), Data: json.RawMessage(`{"price":2,"name":"a"}`)},
			want: pimhook.ActionUpdated, revision: 4, changes: []string{"price"}, data: `{"price":2,"name":"a"}`},
		{name: "stale base revision", stored: live, ev: pimhook.Event{Action: pimhook.ActionUpdated, BaseRevision: rev(2), Data: json.RawMessage(`{"price":2}`)},
			code: pimhook.CodeRevisionConflict},
		{name: "base revision 0 for a new entity", ev: pimhook.Event{Action: pimhook.ActionCreated, BaseRevision: rev(0), Data: json.RawMessage(`{"a":1}`)},
			want: pimhook.ActionCreated, revision: 1, data: `{"a":1}`},
		{name: "base revision ahead of a new entity", ev: pimhook.Event{Action: pimhook.ActionCreated, BaseRevision: rev(1), Data: json.RawMessage(`{"a":1}`)},
			code: pimhook.CodeRevisionConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := tt.ev
			ev.EntityType, ev.EntityID, ev.ReceivedAt = "products", "1", time.Unix(0, 0)
			dec, err := detect(&ev, tt.stored)
			if tt.code != "" {
				if pimhook.ErrorCode(err) != tt.code || pimhook.ErrorKind(err) != pimhook.KindConflict {
					t.Fatalf("err = %v, want a conflict %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tt.want == "") != dec.Unchanged {
				t.Fatalf("unchanged = %v, want %v", dec.Unchanged, tt.want == "")
			}
			if tt.want != "" && (ev.EffectiveAction != tt.want || ev.Revision != tt.revision) {
				t.Errorf("action %s revision %d, want %s %d", ev.EffectiveAction, ev.Revision, tt.want, tt.revision)
			}
			var names []string
			for _, c := range ev.ChangedFields {
				names = append(names, c.Name)
			}
			if len(names) != len(tt.changes) || (len(names) > 0 && names[0] != tt.changes[0]) {
				t.Errorf("changed fields %v, want %v", names, tt.changes)
			}
			switch {
			case tt.data == "" && dec.Entity != nil:
				t.Errorf("entity written: %s", dec.Entity.Data)
			case tt.data != "" && dec.Entity == nil:
				t.Errorf("entity not written, want %s", tt.data)
			case tt.data != "":
				if string(dec.Entity.Data) != tt.data || dec.Entity.Deleted != tt.deleted || dec.Entity.Revision != tt.revision {
					t.Errorf("entity = %s deleted=%v revision %d, want %s deleted=%v revision %d", dec.Entity.Data, dec.Entity.Deleted, dec.Entity.Revision, tt.data, tt.deleted, tt.revision)
				}
			}
		})
	}
}

// TestFanOut covers matching: entity types, actions, monitored fields,
// echo suppression, disabled and job-bound webhooks.
func TestFanOut(t *testing.T) {
	t.Parallel()
	co := &pimhook.Company{ID: "co", Name: "Co"}
	appA := &pimhook.App{ID: "app_a", Name: "A", AppType: "generic"}
	appB := &pimhook.App{ID: "app_b", Name: "B", AppType: "shopware"}
	hook := func(id string, app *pimhook.App, mutate func(*pimhook.Webhook)) subscription {
		w := &pimhook.Webhook{ID: id, AppID: app.ID, Name: id, URL: "https://example.com/" + id, Enabled: true}
		if mutate != nil {
			mutate(w)
		}
		return subscription{hook: w, app: app}
	}
	subs := []subscription{
		hook("all", appA, nil),
		hook("products", appA, func(w *pimhook.Webhook) { w.EntityTypes = []string{"products"} }),
		hook("brands", appA, func(w *pimhook.Webhook) { w.EntityTypes = []string{"brands"} }),
		hook("deletes", appA, func(w *pimhook.Webhook) { w.Events = []pimhook.Action{pimhook.ActionDeleted} }),
		hook("price", appA, func(w *pimhook.Webhook) { w.Fields = []string{"price"} }),
		hook("stock", appA, func(w *pimhook.Webhook) { w.Fields = []string{"stock"} }),
		hook("other-app", appB, nil),
		hook("disabled", appA, func(w *pimhook.Webhook) { w.Enabled = false }),
		hook("job", appA, func(w *pimhook.Webhook) { w.JobID, w.Format = "644", pimhook.FormatJob }),
	}
	update := func(source string) *pimhook.Event {
		return &pimhook.Event{
			ID: "evt", EntityType: "products", EntityID: "1", Action: pimhook.ActionUpdated, EffectiveAction: pimhook.ActionUpdated,
			Revision: 2, SourceAppID: source, ReceivedAt: time.Unix(0, 0),
			ChangedFields: []pimhook.FieldChange{{Name: "name"}, {Name: "price.amount", From: json.RawMessage("1"), To: json.RawMessage("2")}},
		}
	}
	// targets lists the webhooks that got a delivery; a disabled one's is
	// kept as skipped, to be recovered, and marked so here.
	targets := func(ds []*pimhook.Delivery) []string {
		var out []string
		for _, d := range ds {
			switch d.Status {
			case pimhook.DeliveryPending:
				out = append(out, d.WebhookID)
			case pimhook.DeliverySkipped:
				out = append(out, d.WebhookID+" (skipped)")
			default:
				t.Errorf("delivery to %s has status %s", d.WebhookID, d.Status)
			}
		}
		return out
	}
	ds := fanOut(update(""), co, subs, time.Unix(0, 0), nil).deliveries
	if got, want := targets(ds), []string{"all", "products", "price", "other-app", "disabled (skipped)"}; !slices.Equal(got, want) {
		t.Errorf("update reached %v, want %v", got, want)
	}
	var p struct {
		Revision struct {
			ChangedFields []pimhook.FieldChange `json:"changed_fields"`
		} `json:"revision"`
	}
	if err := json.Unmarshal(ds[2].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Revision.ChangedFields) != 1 || p.Revision.ChangedFields[0].Name != "price.amount" {
		t.Errorf("monitored webhook got changed_fields %+v, want only price.amount", p.Revision.ChangedFields)
	}
	ds = fanOut(update("app_a"), co, subs, time.Unix(0, 0), nil).deliveries
	if got := targets(ds); !slices.Equal(got, []string{"other-app"}) {
		t.Errorf("echo suppression: update from app_a reached %v, want only other-app", got)
	}
	del := update("")
	del.Action, del.EffectiveAction, del.ChangedFields = pimhook.ActionDeleted, pimhook.ActionDeleted, nil
	ds = fanOut(del, co, subs, time.Unix(0, 0), nil).deliveries
	if got, want := targets(ds), []string{"all", "products", "deletes", "price", "stock", "other-app", "disabled (skipped)"}; !slices.Equal(got, want) {
		t.Errorf("deletion reached %v, want %v (monitored fields filter updates only)", got, want)
	}
}
