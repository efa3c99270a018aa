package dispatch

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// eventPayload is the body of a format "event" delivery as a struct:
// eventBody must write what json.Marshal writes for it.
type eventPayload struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Entity    string          `json:"entity"`
	EntityID  string          `json:"entity_id"`
	Company   payloadCompany  `json:"company"`
	App       payloadApp      `json:"app"`
	Workflow  payloadWorkflow `json:"workflow"`
	Revision  payloadRevision `json:"revision"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data,omitempty"`
}

type payloadCompany struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type payloadApp struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	AppType string `json:"app_type"`
}

type payloadWorkflow struct {
	WebhookID string `json:"webhook_id"`
	Name      string `json:"name"`
	Attempt   int    `json:"attempt"`
}

type payloadRevision struct {
	Number        int64                 `json:"number"`
	ChangedFields []pimhook.FieldChange `json:"changed_fields"`
}

// payloadOf is the eventPayload of ev for webhook w of app a, as eventBody
// renders it.
func payloadOf(ev *pimhook.Event, co *pimhook.Company, a *pimhook.App, w *pimhook.Webhook, changes []pimhook.FieldChange) eventPayload {
	if changes == nil {
		changes = []pimhook.FieldChange{}
	}
	p := eventPayload{
		ID:        ev.ID,
		Event:     ev.Name(),
		Entity:    pimhook.SingularName(ev.EntityType),
		EntityID:  ev.EntityID,
		Company:   payloadCompany{ID: co.ID, Name: co.Name},
		App:       payloadApp{ID: a.ID, Name: a.Name, AppType: a.AppType},
		Workflow:  payloadWorkflow{WebhookID: w.ID, Name: w.Name, Attempt: 1},
		Revision:  payloadRevision{Number: ev.Revision, ChangedFields: changes},
		Timestamp: ev.ReceivedAt.UTC().Format(time.RFC3339Nano),
	}
	if w.IncludeEntityData {
		p.Data = ev.Data
		if len(p.Data) == 0 {
			p.Data = json.RawMessage("null")
		}
	}
	return p
}

// marshalledBody is the payload as json.Marshal writes it: what eventBody
// must write byte for byte.
func marshalledBody(t *testing.T, ev *pimhook.Event, co *pimhook.Company, a *pimhook.App, w *pimhook.Webhook, changes []pimhook.FieldChange) []byte {
	t.Helper()
	p := payloadOf(ev, co, a, w, changes)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal %+v: %v", p, err)
	}
	return b
}

// bodyOf renders ev's body the way fanOut does.
func bodyOf(ev *pimhook.Event, co *pimhook.Company, a *pimhook.App, w *pimhook.Webhook, changes []pimhook.FieldChange) []byte {
	var data []byte
	if len(ev.Data) > 0 {
		data = appendCompactJSON(nil, ev.Data)
	}
	return eventBody(ev, co, a, w, changes, data)
}

// TestEventBodyIsMarshalled compares eventBody with json.Marshal over
// random events whose strings hold everything encoding/json escapes, and
// whose data and changed values are JSON with whitespace, escapes, HTML
// characters and line separators.
func TestEventBodyIsMarshalled(t *testing.T) {
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 7))
		ev := &pimhook.Event{
			ID: randomString(r), EntityType: []string{"products", "categories", "bench_solo"}[r.IntN(3)],
			EntityID: randomString(r), EffectiveAction: []pimhook.Action{pimhook.ActionCreated, pimhook.ActionUpdated, pimhook.ActionDeleted}[r.IntN(3)],
			Revision: r.Int64N(1 << 40), ReceivedAt: time.Unix(r.Int64N(1<<33), r.Int64N(1e9)).In(time.FixedZone("x", 3600)),
		}
		switch r.IntN(4) {
		case 0: // no data
		case 1:
			ev.Data = []byte(" null ")
		default:
			ev.Data = randomJSON(r, 3)
		}
		co := &pimhook.Company{ID: randomString(r), Name: randomString(r)}
		a := &pimhook.App{ID: randomString(r), Name: randomString(r), AppType: randomString(r)}
		w := &pimhook.Webhook{ID: randomString(r), Name: randomString(r), IncludeEntityData: r.IntN(2) == 0}
		var changes []pimhook.FieldChange
		for range r.IntN(4) {
			c := pimhook.FieldChange{Name: randomString(r), FromMissing: r.IntN(3) == 0, ToMissing: r.IntN(3) == 0}
			if r.IntN(4) > 0 {
				c.From = randomJSON(r, 2)
			}
			if r.IntN(4) > 0 {
				c.To = randomJSON(r, 2)
			}
			changes = append(changes, c)
		}
		if r.IntN(3) == 0 {
			changes = []pimhook.FieldChange{}
		}
		want := marshalledBody(t, ev, co, a, w, changes)
		got := bodyOf(ev, co, a, w, changes)
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("seed %d: invalid JSON %s", seed, got)
		}
	}
}

// TestEventBodyKeepsTheAttemptMarker checks that a retry can still set the
// attempt number of a rendered body.
func TestEventBodyKeepsTheAttemptMarker(t *testing.T) {
	ev := &pimhook.Event{ID: "evt_1", EntityType: "products", EntityID: "p1", EffectiveAction: pimhook.ActionUpdated, Revision: 2}
	body := bodyOf(ev, &pimhook.Company{ID: "co_1"}, &pimhook.App{ID: "app_1"}, &pimhook.Webhook{ID: "wh_1"}, nil)
	var p eventPayload
	if err := json.Unmarshal(withAttempt(body, 3), &p); err != nil || p.Workflow.Attempt != 3 {
		t.Errorf("attempt 3 of %s: %+v, %v", body, p.Workflow, err)
	}
}

// randomString draws a string from runes that encoding/json escapes in
// every way it can: quotes, backslashes, control characters, HTML
// characters, the line separators, invalid UTF-8, and plain text.
func randomString(r *rand.Rand) string {
	pieces := []string{"a", "Z", "9", " ", "\"", "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "\u2028", "\u2029", "é", "日本", "😀", "\xff", "\xe2\x80", "\ufffd", "_"}
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// randomJSON returns a valid JSON value with random whitespace between its
// tokens and string contents that hold HTML characters, line separators
// and escapes as they may arrive from a client.
func randomJSON(r *rand.Rand, depth int) []byte {
	var b []byte
	ws := func() {
		for range r.IntN(3) {
			b = append(b, " \t\n\r"[r.IntN(4)])
		}
	}
	str := func() {
		pieces := []string{"a", "<", ">", "&", "\u2028", "\u2029", `\"`, `\\`, `\/`, `\u003c`, `\u2028`, `\n`, "é", " ", "😀"}
		b = append(b, '"')
		for range r.IntN(6) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		b = append(b, '"')
	}
	var value func(depth int)
	value = func(depth int) {
		ws()
		k := r.IntN(7)
		if depth <= 0 {
			k = r.IntN(4)
		}
		switch k {
		case 0:
			str()
		case 1:
			b = append(b, []string{"0", "-12", "3.5e10", "1E-2"}[r.IntN(4)]...)
		case 2:
			b = append(b, []string{"true", "false", "null"}[r.IntN(3)]...)
		case 3:
			b = append(b, `""`...)
		case 4, 5:
			b = append(b, '{')
			for i := range r.IntN(4) {
				if i > 0 {
					b = append(b, ',')
				}
				ws()
				str()
				ws()
				b = append(b, ':')
				value(depth - 1)
			}
			ws()
			b = append(b, '}')
		default:
			b = append(b, '[')
			for i := range r.IntN(4) {
				if i > 0 {
					b = append(b, ',')
				}
				value(depth - 1)
			}
			ws()
			b = append(b, ']')
		}
		ws()
	}
	value(depth)
	return b
}

// BenchmarkEventBody renders the body of an event with 1 KB of data, as
// fan-out does for each webhook, against json.Marshal of the same payload.
func BenchmarkEventBody(b *testing.B) {
	ev := &pimhook.Event{ID: "evt_01KAZ", EntityType: "products", EntityID: "p_42", EffectiveAction: pimhook.ActionUpdated,
		Revision: 7, ReceivedAt: time.Now(), Data: []byte(`{"sku":"` + strings.Repeat("x", 1000) + `","price":{"amount":12.5}}`),
		ChangedFields: []pimhook.FieldChange{{Name: "price.amount", From: []byte("10"), To: []byte("12.5")}}}
	co, a := &pimhook.Company{ID: "co_1", Name: "Acme"}, &pimhook.App{ID: "app_1", Name: "Shop", AppType: "shop"}
	w := &pimhook.Webhook{ID: "wh_1", Name: "products", IncludeEntityData: true}
	b.Run("appended", func(b *testing.B) {
		for b.Loop() {
			bodyOf(ev, co, a, w, ev.ChangedFields)
		}
	})
	b.Run("marshalled", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(payloadOf(ev, co, a, w, ev.ChangedFields)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCompactJSON(b *testing.B) {
	data := []byte(`{"sku":"` + strings.Repeat("x", 1000) + `","price":{"amount":12.5}}`)
	for b.Loop() {
		appendCompactJSON(make([]byte, 0, len(data)), data)
	}
}

// TestEventBodyEmptyValues checks that an empty changed value, which
// json.Marshal refuses, is written as null, so the body stays JSON.
func TestEventBodyEmptyValues(t *testing.T) {
	ev := &pimhook.Event{ID: "evt_1", EntityType: "products", EntityID: "p1", EffectiveAction: pimhook.ActionUpdated}
	changes := []pimhook.FieldChange{{Name: "a", From: []byte{}, To: []byte(" 1 ")}}
	body := eventBody(ev, &pimhook.Company{ID: "co_1"}, &pimhook.App{ID: "app_1"}, &pimhook.Webhook{ID: "wh_1", IncludeEntityData: true}, changes, nil)
	if !bytes.Contains(body, []byte(`{"name":"a","from":null,"to":1}`)) || !bytes.HasSuffix(body, []byte(`,"data":null}`)) || !json.Valid(body) {
		t.Errorf("body %s", body)
	}
}
