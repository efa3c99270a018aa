package graphql_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

const saveWebhook = `mutation($url: String!, $event: WebhookEvent!, $fields: [String], $jobID: ID!) {
  saveWebhook(url: $url, event: $event, fields: $fields, jobID: $jobID)
}`

const getWebhooks = `{ getWebhooks { id url event fields jobID } }`

// webhookSchema is document 2's view of a webhook.
type webhookSchema struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Event  *string  `json:"event"`
	Fields []string `json:"fields"`
	JobID  string   `json:"jobID"`
}

// webhookFields selects every field of type Webhook.
const webhookFields = `id appID app { id isDefault } name callbackURL entityTypes events fields jobID format batchSize
  includeEntityData headers { name value } retryPolicy minimumRetryInterval retryLimit timeoutMS
  enabled disabledReason signingSecret createdAt updatedAt`

type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type webhook struct {
	ID    string `json:"id"`
	AppID string `json:"appID"`
	App   struct {
		ID        string `json:"id"`
		IsDefault bool   `json:"isDefault"`
	} `json:"app"`
	Name                 string   `json:"name"`
	CallbackURL          string   `json:"callbackURL"`
	EntityTypes          []string `json:"entityTypes"`
	Events               []string `json:"events"`
	Fields               []string `json:"fields"`
	JobID                *string  `json:"jobID"`
	Format               string   `json:"format"`
	BatchSize            *int     `json:"batchSize"`
	IncludeEntityData    bool     `json:"includeEntityData"`
	Headers              []header `json:"headers"`
	RetryPolicy          string   `json:"retryPolicy"`
	MinimumRetryInterval float64  `json:"minimumRetryInterval"`
	RetryLimit           int      `json:"retryLimit"`
	TimeoutMS            *int     `json:"timeoutMS"`
	Enabled              bool     `json:"enabled"`
	DisabledReason       *string  `json:"disabledReason"`
	SigningSecret        string   `json:"signingSecret"`
	CreatedAt            string   `json:"createdAt"`
	UpdatedAt            string   `json:"updatedAt"`
}

func (e *env) webhook(id string) webhook {
	e.t.Helper()
	var out struct{ Webhook webhook }
	e.do(`query($id: ID!) { webhook(id: $id) { `+webhookFields+` } }`, map[string]any{"id": id}, &out)
	return out.Webhook
}

func (e *env) save(url, event string, fields any, jobID string) string {
	e.t.Helper()
	var out struct{ SaveWebhook string }
	e.do(saveWebhook, map[string]any{"url": url, "event": event, "fields": fields, "jobID": jobID}, &out)
	return out.SaveWebhook
}

func (e *env) getWebhooks() []webhookSchema {
	e.t.Helper()
	var out struct{ GetWebhooks []webhookSchema }
	e.do(getWebhooks, nil, &out)
	return out.GetWebhooks
}

func TestSaveWebhookCreatesAJobWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if got := e.getWebhooks(); len(got) != 0 {
		t.Fatalf("getWebhooks of a new company: %+v, want []", got)
	}
	id := e.save("https://example.com/webhook", "UPDATED", []string{"price", "stock"}, "job123")
	if !strings.HasPrefix(id, "wh_") {
		t.Fatalf("saveWebhook returned %q, want a webhook ID", id)
	}

	w := e.webhook(id)
	if w.CallbackURL != "https://example.com/webhook" || w.Name != w.CallbackURL ||
		!reflect.DeepEqual(w.Events, []string{"UPDATED"}) || !reflect.DeepEqual(w.Fields, []string{"price", "stock"}) ||
		w.JobID == nil || *w.JobID != "job123" || w.Format != "JOB" || w.BatchSize == nil || *w.BatchSize != 500 {
		t.Errorf("saved webhook: %+v", w)
	}
	if !w.App.IsDefault || w.App.ID != w.AppID {
		t.Errorf("saved webhook's app: %+v, want the default app", w.App)
	}
	if !w.Enabled || w.RetryPolicy != "EXPONENTIAL" || w.RetryLimit != 8 || w.MinimumRetryInterval != 5 ||
		w.TimeoutMS != nil || len(w.EntityTypes) != 0 || len(w.Headers) != 0 || !strings.HasPrefix(w.SigningSecret, "whsec_") {
		t.Errorf("saved webhook's defaults: %+v", w)
	}

	// REST shows the same webhook.
	var rest struct {
		CallbackURL string   `json:"callback_url"`
		Events      []string `json:"events"`
		Fields      []string `json:"fields"`
		JobID       string   `json:"job_id"`
		Format      string   `json:"format"`
		AppID       string   `json:"app_id"`
	}
	if st := e.rest("GET", "/v1/webhooks/"+id, nil, &rest); st != http.StatusOK {
		t.Fatalf("GET /v1/webhooks/%s: %d", id, st)
	}
	if rest.CallbackURL != w.CallbackURL || !reflect.DeepEqual(rest.Events, []string{"updated"}) ||
		!reflect.DeepEqual(rest.Fields, w.Fields) || rest.JobID != "job123" || rest.Format != "job" || rest.AppID != w.AppID {
		t.Errorf("REST shows %+v", rest)
	}
}

func TestSaveWebhookUpdatesTheSameJobURLAndEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.save("https://example.com/webhook", "UPDATED", []string{"price", "stock"}, "job123")
	before := e.webhook(id)

	if again := e.save("https://example.com/webhook", "UPDATED", []string{"name"}, "job123"); again != id {
		t.Fatalf("saving the same job, url and event gave %s, want the same webhook %s", again, id)
	}
	after := e.webhook(id)
	if !reflect.DeepEqual(after.Fields, []string{"name"}) {
		t.Errorf("fields after the update: %v, want [name]", after.Fields)
	}
	if after.SigningSecret != before.SigningSecret || after.CreatedAt != before.CreatedAt || after.AppID != before.AppID {
		t.Errorf("the update changed more than the fields: %+v, was %+v", after, before)
	}
	if again := e.save("https://example.com/webhook", "UPDATED", nil, "job123"); again != id {
		t.Fatalf("saving without fields made another webhook")
	}
	if f := e.webhook(id).Fields; len(f) != 0 {
		t.Errorf("fields after saving none: %v, want [] (every change counts)", f)
	}

	others := []string{
		e.save("https://example.com/webhook", "ADDED", nil, "job123"),
		e.save("https://example.com/webhook", "UPDATED", nil, "job124"),
		e.save("https://example.com/other", "UPDATED", nil, "job123"),
	}
	seen := map[string]bool{id: true}
	for _, o := range others {
		if seen[o] {
			t.Fatalf("a different event, job or url reused webhook %s", o)
		}
		seen[o] = true
	}
	list := e.getWebhooks()
	if len(list) != 4 || list[0].ID != id || list[1].ID != others[0] || list[1].Event == nil || *list[1].Event != "ADDED" {
		t.Errorf("getWebhooks: %+v", list)
	}
}

func TestSaveWebhookIsSerialized(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := make(chan string, 8)
	for range cap(ids) {
		go func() {
			var out struct{ SaveWebhook string }
			r, err := e.tryPost(saveWebhook, map[string]any{"url": "https://example.com/hook", "event": "REMOVED", "jobID": "j"})
			if err == nil && len(r.Errors) == 0 {
				_ = json.Unmarshal(r.Data, &out)
			}
			ids <- out.SaveWebhook
		}()
	}
	first := <-ids
	for range cap(ids) - 1 {
		if id := <-ids; id != first || id == "" {
			t.Fatalf("concurrent saves gave %q and %q, want one webhook", first, id)
		}
	}
}

func TestGetWebhooksShowsJobWebhooksOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var entity, several struct {
		ID string `json:"id"`
	}
	e.rest("POST", "/v1/webhooks", map[string]any{"callback_url": "https://example.com/e", "entity_type": "product"}, &entity)
	e.rest("POST", "/v1/webhooks", map[string]any{"callback_url": "https://example.com/j", "job_id": "644", "events": []string{"ADDED", "REMOVED"}}, &several)
	if entity.ID == "" || several.ID == "" {
		t.Fatal("REST did not create the webhooks")
	}
	list := e.getWebhooks()
	if len(list) != 1 || list[0].ID != several.ID || list[0].Event != nil || list[0].JobID != "644" || list[0].Fields == nil {
		t.Fatalf("getWebhooks: %+v, want only the job webhook, with no single event", list)
	}
	var all struct{ Webhooks []webhook }
	e.do(`{ webhooks { id events jobID format } }`, nil, &all)
	if len(all.Webhooks) != 2 || all.Webhooks[0].Format != "EVENT" || all.Webhooks[0].JobID != nil ||
		!reflect.DeepEqual(all.Webhooks[1].Events, []string{"ADDED", "REMOVED"}) {
		t.Errorf("webhooks: %+v", all.Webhooks)
	}
	// A save of one of its events is not the same webhook: it hears two.
	if id := e.save("https://example.com/j", "ADDED", nil, "644"); id == several.ID {
		t.Errorf("saveWebhook updated a webhook of two events")
	}
}

func TestDeleteWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.save("https://example.com/webhook", "UPDATED", nil, "4765")
	del := `mutation($id: ID!) { deleteWebhook(id: $id) }`
	var out struct{ DeleteWebhook bool }
	e.do(del, map[string]any{"id": "webhook789"}, &out)
	if out.DeleteWebhook {
		t.Error("deleteWebhook of an unknown id: true")
	}
	e.do(del, map[string]any{"id": id}, &out)
	if !out.DeleteWebhook {
		t.Error("deleteWebhook of a webhook: false")
	}
	e.do(del, map[string]any{"id": id}, &out)
	if out.DeleteWebhook {
		t.Error("deleteWebhook twice: true")
	}
	if got := e.getWebhooks(); len(got) != 0 {
		t.Errorf("getWebhooks after delete: %+v", got)
	}
}

func TestSaveWebhookRefusesWhatRESTRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name, url string
		fields    any
		jobID     string
		code      string
		field     string
	}{
		{"not http", "ftp://example.com/x", nil, "j", "invalid_callback_url", "url"},
		{"no host", "https:///x", nil, "j", "invalid_callback_url", "url"},
		{"credentials", "https://u:p@example.com/", nil, "j", "invalid_callback_url", "url"},
		{"loopback", "http://127.0.0.1:8080/hook", nil, "j", "target_forbidden", "url"},
		{"localhost", "http://localhost/hook", nil, "j", "target_forbidden", "url"},
		{"private", "http://10.1.2.3/hook", nil, "j", "target_forbidden", "url"},
		{"metadata", "http://169.254.169.254/latest", nil, "j", "target_forbidden", "url"},
		{"null field", "https://example.com/x", []any{"price", nil}, "j", "validation_failed", "fields"},
		{"bad field", "https://example.com/x", []any{"a..b"}, "j", "validation_failed", "fields"},
		{"empty job", "https://example.com/x", nil, " ", "validation_failed", "jobID"},
		{"long job", "https://example.com/x", nil, strings.Repeat("j", 256), "validation_failed", "jobID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := *e
			e.t = t
			e.fail(saveWebhook, map[string]any{"url": c.url, "event": "ADDED", "fields": c.fields, "jobID": c.jobID}, c.code, c.field)
		})
	}
	if got := e.getWebhooks(); len(got) != 0 {
		t.Errorf("refused saves left webhooks: %+v", got)
	}
	var apps struct{ Apps []struct{ ID string } }
	e.do(`{ apps { id } }`, nil, &apps)
	if len(apps.Apps) != 0 {
		t.Errorf("refused saves created the default app: %+v", apps.Apps)
	}
}

func TestCreateAndUpdateWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var created struct{ CreateApp struct{ ID string } }
	e.do(`mutation { createApp(input: {name: "Shop", appType: "shopware", worker: DEDICATED}) { id } }`, nil, &created)
	appID := created.CreateApp.ID

	var out struct{ CreateWebhook webhook }
	e.do(`mutation($in: CreateWebhookInput!) { createWebhook(input: $in) { `+webhookFields+` } }`, map[string]any{"in": map[string]any{
		"appID": appID, "name": " Products ", "callbackURL": "https://example.com/in",
		"entityTypes": []string{"product", "concrete_entity"}, "events": []string{"ADDED", "UPDATED"},
		"includeEntityData": true, "headers": []map[string]string{{"name": "X-Tenant", "value": "acme"}, {"name": "Authorization", "value": "Basic x"}},
		"retryPolicy": "LINEAR", "minimumRetryInterval": 30, "retryLimit": 3, "timeoutMS": 4000,
	}}, &out)
	w := out.CreateWebhook
	want := webhook{
		ID: w.ID, AppID: appID, App: w.App, Name: "Products", CallbackURL: "https://example.com/in",
		EntityTypes: []string{"products", "concrete_entities"}, Events: []string{"ADDED", "UPDATED"}, Fields: []string{},
		Format: "EVENT", IncludeEntityData: true,
		Headers:     []header{{"Authorization", "Basic x"}, {"X-Tenant", "acme"}},
		RetryPolicy: "LINEAR", MinimumRetryInterval: 30, RetryLimit: 3, TimeoutMS: ptr(4000), Enabled: true,
		SigningSecret: w.SigningSecret, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("created:\n%+v\nwant\n%+v", w, want)
	}
	if !strings.HasPrefix(w.SigningSecret, "whsec_") || w.App.ID != appID || w.App.IsDefault {
		t.Errorf("created: secret %q, app %+v", w.SigningSecret, w.App)
	}

	var upd struct{ UpdateWebhook webhook }
	e.do(`mutation($id: ID!) { updateWebhook(id: $id, input: {name: "Renamed", enabled: false, timeoutMS: 0}) { `+webhookFields+` } }`,
		map[string]any{"id": w.ID}, &upd)
	got := upd.UpdateWebhook
	want.Name, want.Enabled, want.TimeoutMS, want.UpdatedAt = "Renamed", false, nil, got.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("updated:\n%+v\nwant only name, enabled and timeoutMS changed:\n%+v", got, want)
	}

	// Moving to the default app with an empty appID, as REST does.
	e.do(`mutation($id: ID!) { updateWebhook(id: $id, input: {appID: ""}) { `+webhookFields+` } }`, map[string]any{"id": w.ID}, &upd)
	if !upd.UpdateWebhook.App.IsDefault {
		t.Errorf("appID \"\" left the webhook on %+v, want the default app", upd.UpdateWebhook.App)
	}

	var app struct {
		App struct {
			Webhooks []struct{ ID string }
		}
	}
	e.do(`query($id: ID!) { app(id: $id) { webhooks { id } } }`, map[string]any{"id": appID}, &app)
	if len(app.App.Webhooks) != 0 {
		t.Errorf("the old app still lists %+v", app.App.Webhooks)
	}
}

func TestWebhookMutationErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.save("https://example.com/webhook", "UPDATED", nil, "job123")
	create := `mutation($in: CreateWebhookInput!) { createWebhook(input: $in) { id } }`
	update := `mutation($id: ID!, $in: UpdateWebhookInput!) { updateWebhook(id: $id, input: $in) { id } }`
	cases := []struct {
		name, query string
		vars        map[string]any
		code, field string
	}{
		{"unknown app", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "appID": "app_nope"}}, "app_not_found", "appID"},
		{"forbidden target", create, map[string]any{"in": map[string]any{"callbackURL": "http://192.168.0.1/"}}, "target_forbidden", "callbackURL"},
		{"retry limit", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "retryLimit": 51}}, "invalid_retry_policy", "retryLimit"},
		{"timeout", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "timeoutMS": 10001}}, "invalid_timeout", "timeoutMS"},
		{"job format", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "format": "JOB"}}, "invalid_format", "format"},
		{"entity type", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "entityTypes": []string{"Bad Type"}}}, "invalid_entity_type", "entityTypes"},
		{"reserved header", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "headers": []map[string]string{{"name": "Webhook-Signature", "value": "x"}}}}, "validation_failed", "headers"},
		{"header twice", create, map[string]any{"in": map[string]any{"callbackURL": "https://example.com/", "headers": []map[string]string{{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}}}}, "validation_failed", "headers"},
		{"batch size", update, map[string]any{"id": id, "in": map[string]any{"batchSize": 0, "format": "EVENT", "jobID": ""}}, "", ""},
		{"unknown webhook", update, map[string]any{"id": "wh_nope", "in": map[string]any{"name": "x"}}, "webhook_not_found", ""},
		{"bad url", update, map[string]any{"id": id, "in": map[string]any{"callbackURL": "mailto:x@example.com"}}, "invalid_callback_url", "callbackURL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := *e
			e.t = t
			if c.code == "" {
				e.do(c.query, c.vars, nil)
				return
			}
			e.fail(c.query, c.vars, c.code, c.field)
		})
	}
	var one struct{ Webhook *webhook }
	status, r := e.post(`{ webhook(id: "wh_nope") { id } }`, nil)
	if status != http.StatusOK || len(r.Errors) != 1 || r.Errors[0].Extensions.Code != "webhook_not_found" ||
		json.Unmarshal(r.Data, &one) != nil || one.Webhook != nil {
		t.Errorf("webhook of an unknown id: %d %+v %s", status, r.Errors, r.Data)
	}
}

func ptr[T any](v T) *T { return &v }
