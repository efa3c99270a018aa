package http_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// referenceExample is the creation request of reference document 3, as
// written there.
const referenceExample = `{
"name": "Product Updates Webhook",
"callback_url": "https://myapi.com/callbacks/products",
"entity_type": "product",
"include_entity_data": true,
"headers": {
"My-Custom-Header": "abc123"
},
"retry_policy": "linear",
"minimum_retry_interval": 300,
"retry_limit": 5
}`

func TestCreateWebhookReferenceExample(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.post("/v1/webhooks", referenceExample)
	created := res.ok(t, http.StatusCreated)
	secret, _ := created["signing_secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < 20 {
		t.Fatalf("signing_secret %q", secret)
	}
	id, _ := created["id"].(string)
	if !strings.HasPrefix(id, "wh_") {
		t.Fatalf("id %q", id)
	}
	if loc := res.header.Get("Location"); loc != "/v1/webhooks/"+id {
		t.Fatalf("Location %q", loc)
	}
	want := map[string]any{
		"name":                   "Product Updates Webhook",
		"callback_url":           "https://myapi.com/callbacks/products",
		"entity_types":           []any{"products"},
		"include_entity_data":    true,
		"headers":                map[string]any{"My-Custom-Header": "abc123"},
		"retry_policy":           "linear",
		"minimum_retry_interval": 300.0,
		"retry_limit":            5.0,
		"events":                 []any{},
		"fields":                 []any{},
		"timeout_ms":             0.0,
		"format":                 "event",
		"enabled":                true,
	}
	for k, v := range want {
		if !reflect.DeepEqual(created[k], v) {
			t.Errorf("%s = %#v, want %#v", k, created[k], v)
		}
	}
	for _, k := range []string{"created_at", "updated_at", "app_id"} {
		if s, _ := created[k].(string); s == "" {
			t.Errorf("%s missing", k)
		}
	}
	if ts := created["created_at"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("created_at %q is not UTC", ts)
	}

	// The secret is shown at creation and on its own route only.
	got := e.get("/v1/webhooks/"+id).ok(t, http.StatusOK)
	if _, ok := got["signing_secret"]; ok {
		t.Fatalf("GET shows the signing secret: %v", got)
	}
	delete(created, "signing_secret")
	if !reflect.DeepEqual(got, created) {
		t.Fatalf("GET differs from creation:\n got %v\nwant %v", got, created)
	}
	if s := e.get("/v1/webhooks/"+id+"/secret").ok(t, http.StatusOK); s["signing_secret"] != secret {
		t.Fatalf("secret route: %v, want %s", s, secret)
	}

	// Without app_id it belongs to the company's default app.
	apps := e.list("/v1/apps")
	if len(apps) != 1 {
		t.Fatalf("apps: %v", apps)
	}
	app := apps[0].(map[string]any)
	if app["id"] != created["app_id"] || app["is_default"] != true {
		t.Fatalf("webhook app %v, default app %v", created["app_id"], app)
	}
	hooks := e.list("/v1/webhooks")
	if len(hooks) != 1 || hooks[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %v", hooks)
	}
}

func TestCreateWebhookDefaultsAndZeros(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	def := e.post("/v1/webhooks", `{"callback_url":"https://a.example/h"}`).ok(t, http.StatusCreated)
	if def["retry_policy"] != "exponential" || def["minimum_retry_interval"] != 5.0 || def["retry_limit"] != 8.0 ||
		def["enabled"] != true || def["name"] != "https://a.example/h" || def["format"] != "event" {
		t.Fatalf("defaults: %v", def)
	}
	zero := e.post("/v1/webhooks", `{"callback_url":"https://a.example/z","minimum_retry_interval":0,"retry_limit":0,"enabled":false}`).
		ok(t, http.StatusCreated)
	if zero["minimum_retry_interval"] != 0.0 || zero["retry_limit"] != 0.0 || zero["enabled"] != false {
		t.Fatalf("explicit zeros were not kept: %v", zero)
	}
	frac := e.post("/v1/webhooks", `{"callback_url":"https://a.example/f","minimum_retry_interval":1.5}`).ok(t, http.StatusCreated)
	if frac["minimum_retry_interval"] != 1.5 {
		t.Fatalf("fractional interval: %v", frac)
	}
	// All three share the one default app.
	if apps := e.list("/v1/apps"); len(apps) != 1 {
		t.Fatalf("apps: %v", apps)
	}
	if def["app_id"] != zero["app_id"] || def["app_id"] != frac["app_id"] {
		t.Fatalf("app ids differ: %v %v %v", def["app_id"], zero["app_id"], frac["app_id"])
	}
}

func TestCreateWebhookAllFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.post("/v1/apps", `{"name":"ERP","app_type":"sap","worker":"dedicated"}`).ok(t, http.StatusCreated)
	hook := e.post("/v1/webhooks", map[string]any{
		"name":                "all",
		"callback_url":        "https://erp.example/in",
		"entity_type":         "brand",
		"entity_types":        []string{"products", "concrete_entity"},
		"include_entity_data": false,
		"headers":             map[string]string{"X-Tenant": "7"},
		"retry_policy":        "no_retry",
		"app_id":              app["id"],
		"events":              []string{"ADDED", "products.updated", "deleted"},
		"fields":              []string{"price", "stock.amount"},
		"timeout_ms":          9000,
		"format":              "event",
		"enabled":             true,
	}).ok(t, http.StatusCreated)
	want := map[string]any{
		"app_id":       app["id"],
		"entity_types": []any{"products", "concrete_entities", "brands"},
		"events":       []any{"created", "deleted", "updated"},
		"fields":       []any{"price", "stock.amount"},
		"retry_policy": "no_retry",
		"retry_limit":  0.0,
		"timeout_ms":   9000.0,
	}
	for k, v := range want {
		if !reflect.DeepEqual(hook[k], v) {
			t.Errorf("%s = %#v, want %#v", k, hook[k], v)
		}
	}
	if apps := e.list("/v1/apps"); len(apps) != 1 {
		t.Fatalf("a default app was created although app_id was given: %v", apps)
	}
}

func TestPatchWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.post("/v1/webhooks", referenceExample).ok(t, http.StatusCreated)
	delete(before, "signing_secret")
	id := before["id"].(string)

	after := e.do(req{method: "PATCH", path: "/v1/webhooks/" + id, body: `{"retry_limit": 2}`}).ok(t, http.StatusOK)
	if after["retry_limit"] != 2.0 {
		t.Fatalf("retry_limit %v, want 2", after["retry_limit"])
	}
	for k, v := range before {
		if k == "retry_limit" || k == "updated_at" {
			continue
		}
		if !reflect.DeepEqual(after[k], v) {
			t.Errorf("PATCH changed %s: %#v -> %#v", k, v, after[k])
		}
	}
	if got := e.get("/v1/webhooks/"+id).ok(t, http.StatusOK); !reflect.DeepEqual(got, after) {
		t.Fatalf("stored %v, answered %v", got, after)
	}

	// An explicit zero is a value, not an absence.
	zero := e.do(req{method: "PATCH", path: "/v1/webhooks/" + id, body: `{"minimum_retry_interval": 0}`}).ok(t, http.StatusOK)
	if zero["minimum_retry_interval"] != 0.0 || zero["retry_limit"] != 2.0 {
		t.Fatalf("after zero patch: %v", zero)
	}

	// A bad patch changes nothing.
	e.do(req{method: "PATCH", path: "/v1/webhooks/" + id, body: `{"name":"new","retry_limit":-1}`}).
		problem(t, http.StatusBadRequest, "invalid_retry_policy")
	e.do(req{method: "PATCH", path: "/v1/webhooks/" + id, body: `{"name":"new","callback_url":"http://127.0.0.1/x"}`}).
		problem(t, http.StatusBadRequest, "target_forbidden")
	if got := e.get("/v1/webhooks/"+id).ok(t, http.StatusOK); !reflect.DeepEqual(got, zero) {
		t.Fatalf("a refused PATCH changed the webhook:\n got %v\nwant %v", got, zero)
	}
}

func TestPutWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.post("/v1/apps", `{"name":"shop"}`).ok(t, http.StatusCreated)
	created := e.post("/v1/webhooks", map[string]any{
		"name": "old", "callback_url": "https://old.example", "entity_type": "product", "app_id": app["id"],
		"headers": map[string]string{"A": "b"}, "retry_policy": "linear", "retry_limit": 3, "timeout_ms": 1000,
		"events": []string{"created"}, "fields": []string{"price"}, "include_entity_data": true,
	}).ok(t, http.StatusCreated)
	id := created["id"].(string)
	secret := created["signing_secret"]

	put := e.do(req{method: "PUT", path: "/v1/webhooks/" + id, body: `{"callback_url":"https://new.example/h"}`}).ok(t, http.StatusOK)
	want := map[string]any{
		"id": id, "name": "https://new.example/h", "callback_url": "https://new.example/h",
		"entity_types": []any{}, "events": []any{}, "fields": []any{}, "headers": map[string]any{},
		"include_entity_data": false, "retry_policy": "exponential", "minimum_retry_interval": 5.0,
		"retry_limit": 8.0, "timeout_ms": 0.0, "format": "event", "enabled": true,
		"created_at": created["created_at"],
	}
	for k, v := range want {
		if !reflect.DeepEqual(put[k], v) {
			t.Errorf("%s = %#v, want %#v", k, put[k], v)
		}
	}
	if put["app_id"] == app["id"] {
		t.Errorf("PUT without app_id kept the old app")
	}
	if _, ok := put["signing_secret"]; ok {
		t.Errorf("PUT shows the secret")
	}
	if s := e.get("/v1/webhooks/"+id+"/secret").ok(t, http.StatusOK); s["signing_secret"] != secret {
		t.Fatalf("PUT changed the secret")
	}
	if got := e.get("/v1/webhooks/"+id).ok(t, http.StatusOK); !reflect.DeepEqual(got, put) {
		t.Fatalf("stored %v, answered %v", got, put)
	}
}

func TestDeleteWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.post("/v1/webhooks", `{"callback_url":"https://a.example"}`).ok(t, http.StatusCreated)["id"].(string)
	e.do(req{method: "DELETE", path: "/v1/webhooks/" + id}).ok(t, http.StatusNoContent)
	e.get("/v1/webhooks/"+id).problem(t, http.StatusNotFound, "webhook_not_found")
	if hooks := e.list("/v1/webhooks"); len(hooks) != 0 {
		t.Fatalf("still listed: %v", hooks)
	}
}
