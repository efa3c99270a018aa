package http_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBadInput checks that each bad request gets its specific problem
// answer and that nothing of it is stored or ingested.
func TestBadInput(t *testing.T) {
	t.Parallel()
	bigEvent := `{"entity_type":"product","entity_id":"1","action":"created","data":{"blob":"` +
		strings.Repeat("x", 10<<20) + `"}}`
	var batch1001 strings.Builder
	batch1001.WriteString(`{"events":[`)
	for i := range 1001 {
		if i > 0 {
			batch1001.WriteString(",")
		}
		fmt.Fprintf(&batch1001, `{"entity_type":"product","entity_id":%d,"action":"created","data":{}}`, i)
	}
	batch1001.WriteString(`]}`)
	goodEvent := `{"entity_type":"product","entity_id":"1","action":"created","data":{"a":1}}`

	tests := []struct {
		name   string
		req    req
		status int
		code   string
		field  string
	}{
		// Decoding.
		{"malformed JSON", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url": "https://a.example",`},
			400, "malformed_json", ""},
		{"syntax error", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url": https}`},
			400, "malformed_json", ""},
		{"empty body", req{method: "POST", path: "/v1/webhooks", body: ``}, 400, "malformed_json", ""},
		{"trailing data", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example"} {}`},
			400, "malformed_json", ""},
		{"trailing data after an event", req{method: "POST", path: "/v1/events", body: goodEvent + ` x`},
			400, "malformed_json", ""},
		{"trailing data after a batch", req{method: "POST", path: "/v1/events", body: `{"events":[` + goodEvent + `]} {}`},
			400, "unknown_field", "events"},
		{"duplicate key in a batch", req{method: "POST", path: "/v1/events", body: `{"events":[` + goodEvent + `],"events":[]}`},
			400, "validation_failed", "events"},
		{"unknown field", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","colour":"red"}`},
			400, "unknown_field", "colour"},
		{"field name in the wrong case", req{method: "POST", path: "/v1/webhooks", body: `{"Callback_URL":"https://a.example"}`},
			400, "unknown_field", "Callback_URL"},
		{"duplicate field", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","callback_url":"https://b.example"}`},
			400, "validation_failed", "callback_url"},
		{"string for integer", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","retry_limit":"5"}`},
			400, "wrong_type", "retry_limit"},
		{"fraction for integer", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","retry_limit":2.5}`},
			400, "wrong_type", "retry_limit"},
		{"string for list", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","events":"created"}`},
			400, "wrong_type", "events"},
		{"array body", req{method: "POST", path: "/v1/webhooks", body: `[]`}, 400, "wrong_type", ""},
		{"unsupported content type", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example"}`,
			header: map[string]string{"Content-Type": "text/plain"}}, 415, "unsupported_media_type", ""},
		{"non-UTF-8 charset", req{method: "POST", path: "/v1/apps", body: `{"name":"x"}`,
			header: map[string]string{"Content-Type": "application/json; charset=latin1"}}, 415, "unsupported_media_type", ""},
		{"API body over 1 MiB", req{method: "POST", path: "/v1/webhooks", body: `{"name":"` + strings.Repeat("x", 1<<20) + `"}`},
			413, "body_too_large", ""},

		// Webhook rules.
		{"missing callback_url", req{method: "POST", path: "/v1/webhooks", body: `{"name":"x"}`},
			400, "invalid_callback_url", "callback_url"},
		{"ftp callback_url", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"ftp://x"}`},
			400, "invalid_callback_url", "callback_url"},
		{"loopback callback_url", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"http://127.0.0.1:8080/hook"}`},
			400, "target_forbidden", "callback_url"},
		{"negative retry_limit", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","retry_limit":-1}`},
			400, "invalid_retry_policy", "retry_limit"},
		{"unknown retry_policy", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","retry_policy":"sometimes"}`},
			400, "invalid_retry_policy", "retry_policy"},
		{"timeout_ms too long", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","timeout_ms":20000}`},
			400, "invalid_timeout", "timeout_ms"},
		{"unknown event", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","events":["exploded"]}`},
			400, "invalid_action", "events"},
		{"bad entity type", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","entity_type":"Pro duct"}`},
			400, "invalid_entity_type", "entity_types"},
		{"unknown app", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","app_id":"app_nope"}`},
			400, "app_not_found", "app_id"},
		{"unknown webhook", req{method: "GET", path: "/v1/webhooks/wh_nope"}, 404, "webhook_not_found", ""},
		{"patch unknown webhook", req{method: "PATCH", path: "/v1/webhooks/wh_nope", body: `{"name":"x"}`}, 404, "webhook_not_found", ""},
		{"put unknown webhook", req{method: "PUT", path: "/v1/webhooks/wh_nope", body: `{"callback_url":"https://a.example"}`},
			404, "webhook_not_found", ""},
		{"delete unknown webhook", req{method: "DELETE", path: "/v1/webhooks/wh_nope"}, 404, "webhook_not_found", ""},
		{"secret of unknown webhook", req{method: "GET", path: "/v1/webhooks/wh_nope/secret"}, 404, "webhook_not_found", ""},

		// App rules.
		{"app without name", req{method: "POST", path: "/v1/apps", body: `{"app_type":"shopware"}`}, 400, "validation_failed", "name"},
		{"app with unknown worker", req{method: "POST", path: "/v1/apps", body: `{"name":"x","worker":"lazy"}`},
			400, "validation_failed", "worker"},
		{"unknown app id", req{method: "GET", path: "/v1/apps/app_nope"}, 404, "app_not_found", ""},

		// Events.
		{"missing entity_id", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","action":"created","data":{}}`},
			400, "missing_entity_id", "entity_id"},
		{"empty entity_id", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","entity_id":"","action":"created","data":{}}`},
			400, "missing_entity_id", "entity_id"},
		{"fractional entity_id", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","entity_id":1.5,"action":"created","data":{}}`},
			400, "wrong_type", "entity_id"},
		{"bad action", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","entity_id":"1","action":"exploded","data":{}}`},
			400, "invalid_action", "action"},
		{"missing entity_type", req{method: "POST", path: "/v1/events", body: `{"entity_id":"1","action":"created","data":{}}`},
			400, "invalid_entity_type", "entity_type"},
		{"missing data", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","entity_id":"1","action":"updated"}`},
			400, "invalid_event", "data"},
		{"data not an object", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","entity_id":"1","action":"updated","data":[1]}`},
			400, "wrong_type", "data"},
		{"unknown event field", req{method: "POST", path: "/v1/events", body: `{"entity_type":"product","entity_id":"1","action":"created","data":{},"extra":1}`},
			400, "unknown_field", "extra"},
		{"id too long", req{method: "POST", path: "/v1/events", body: `{"id":"` + strings.Repeat("k", 256) + `","entity_type":"product","entity_id":"1","action":"created","data":{}}`},
			400, "validation_failed", "id"},
		{"event body over 5 MiB", req{method: "POST", path: "/v1/events", body: bigEvent}, 413, "body_too_large", ""},
		{"chunked event body over 5 MiB", req{method: "POST", path: "/v1/events", body: io.MultiReader(strings.NewReader(bigEvent))},
			413, "body_too_large", ""},
		{"one bad event of three", req{method: "POST", path: "/v1/events", body: `{"events":[` + goodEvent +
			`,{"entity_type":"product","entity_id":"2","action":"exploded","data":{}},` + goodEvent + `]}`},
			400, "invalid_action", "events[1].action"},
		{"missing entity_id in a batch", req{method: "POST", path: "/v1/events", body: `{"events":[` + goodEvent + `,` + goodEvent + `,` + goodEvent +
			`,{"entity_type":"product","action":"created","data":{}}]}`},
			400, "missing_entity_id", "events[3].entity_id"},
		{"wrong type in a batch", req{method: "POST", path: "/v1/events", body: `{"events":[` + goodEvent + `,{"entity_type":7}]}`},
			400, "wrong_type", "events[1].entity_type"},
		{"unknown field in a batch", req{method: "POST", path: "/v1/events", body: `{"events":[{"colour":"red"}]}`},
			400, "unknown_field", "events[0].colour"},
		{"unknown field beside a batch", req{method: "POST", path: "/v1/events", body: `{"events":[` + goodEvent + `],"entity_id":"1"}`},
			400, "unknown_field", "entity_id"},
		{"empty batch", req{method: "POST", path: "/v1/events", body: `{"events":[]}`}, 400, "validation_failed", "events"},
		{"batch of 1001", req{method: "POST", path: "/v1/events", body: batch1001.String()}, 400, "validation_failed", "events"},
		{"event with bad content type", req{method: "POST", path: "/v1/events", body: goodEvent,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type", ""},

		// Filters and reducers.
		{"condition syntax error", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"products.updated","filter_configuration":{"query":"$.price","condition":"(v) => v >"}}]}`},
			400, "invalid_filter", "filter_reducers[0].filter_configuration.condition"},
		{"condition not a function", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","filter_configuration":{"condition":"42"}}]}`},
			400, "invalid_filter", "filter_reducers[0].filter_configuration.condition"},
		{"bad JSONPath in a nested condition", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","filter_configuration":{"logic":"OR","conditions":[{"query":"$.a"},{"query":"$[?"}]}}]}`},
			400, "invalid_filter", "filter_reducers[0].filter_configuration.conditions[1].query"},
		{"bad logic", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","filter_configuration":{"logic":"XOR","conditions":[{"query":"$.a"}]}}]}`},
			400, "invalid_filter", "filter_reducers[0].filter_configuration.logic"},
		{"unknown filter field", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","filter_configuration":{"querry":"$.a"}}]}`},
			400, "unknown_field", "filter_reducers[0].filter_configuration.querry"},
		{"unknown field deep in a filter", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","filter_configuration":{"conditions":[{"query":"$.a"},{"query":"$.b","logik":"OR"}]}}]}`},
			400, "unknown_field", "filter_reducers[0].filter_configuration.conditions[1].logik"},
		{"bad JSONPath in a reducer", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","reducer_configuration":{"a":{"b":"$.x["}}}]}`},
			400, "invalid_reducer", "filter_reducers[0].reducer_configuration.a.b"},
		{"reducer not an object", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"*","reducer_configuration":"$.a"}]}`},
			400, "invalid_reducer", "filter_reducers[0].reducer_configuration"},
		{"bad event slug", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example","filter_reducers":[{"event_slug":"products","reducer_configuration":{}}]}`},
			400, "validation_failed", "filter_reducers[0].event_slug"},
		{"validate filter without filters", req{method: "POST", path: "/v1/validate/filter", body: `{"sample_data":{}}`},
			400, "validation_failed", "filters"},
		{"validate filter without sample", req{method: "POST", path: "/v1/validate/filter", body: `{"filters":{"query":"$.a"}}`},
			400, "validation_failed", "sample_data"},
		{"validate reducer unknown field", req{method: "POST", path: "/v1/validate/reducer", body: `{"sample_data":{},"reducer":{},"extra":1}`},
			400, "unknown_field", "extra"},
		{"filter_reducer of no webhook", req{method: "PUT", path: "/v1/webhooks/wh_nope/filter_reducer", body: `{"event_slug":"*","reducer_configuration":{}}`},
			404, "webhook_not_found", ""},

		// Bulk operations and preferences.
		{"bulk operation without name", req{method: "POST", path: "/v1/bulk-operations", body: `{"url":"https://a.example"}`},
			400, "validation_failed", "operation_name"},
		{"bulk operation name with a slash", req{method: "POST", path: "/v1/bulk-operations", body: `{"operation_name":"a/b","url":"https://a.example"}`},
			400, "validation_failed", "operation_name"},
		{"bulk operation without url", req{method: "POST", path: "/v1/bulk-operations", body: `{"operation_name":"x"}`},
			400, "invalid_callback_url", "url"},
		{"bulk operation to loopback", req{method: "POST", path: "/v1/bulk-operations", body: `{"operation_name":"x","url":"http://127.0.0.1/"}`},
			400, "target_forbidden", "url"},
		{"bulk operation with reserved header", req{method: "POST", path: "/v1/bulk-operations", body: `{"operation_name":"x","url":"https://a.example","headers":{"webhook-id":"1"}}`},
			400, "validation_failed", "headers"},
		{"trigger of no operation", req{method: "POST", path: "/v1/bulk-operations/nope/trigger", body: `{"product_unique_names":["a"]}`},
			404, "bulk_operation_not_found", ""},
		{"runs with a bad cursor", req{method: "GET", path: "/v1/bulk-operations/x/runs?cursor=!!"}, 400, "invalid_cursor", "cursor"},
		{"preference too high", req{method: "PATCH", path: "/v1/company/preferences", body: `{"webhook_invocation_timeout_ms":20000}`},
			400, "invalid_timeout", "webhook_invocation_timeout_ms"},
		{"preference negative", req{method: "PATCH", path: "/v1/company/preferences", body: `{"webhook_invocation_timeout_ms":-1}`},
			400, "invalid_timeout", "webhook_invocation_timeout_ms"},
		{"preference as a string", req{method: "PATCH", path: "/v1/company/preferences", body: `{"webhook_invocation_timeout_ms":"2500"}`},
			400, "wrong_type", "webhook_invocation_timeout_ms"},
		{"error log with a bad source", req{method: "GET", path: "/v1/error-log?source=mail"}, 400, "invalid_query_parameter", "source"},
		{"error log with an unknown parameter", req{method: "GET", path: "/v1/error-log?status=failed"}, 400, "invalid_query_parameter", "status"},

		// Deliveries.
		{"bad cursor", req{method: "GET", path: "/v1/deliveries?cursor=bm90LWEtY3Vyc29y"}, 400, "invalid_cursor", "cursor"},
		{"cursor not base64", req{method: "GET", path: "/v1/deliveries?cursor=!!"}, 400, "invalid_cursor", "cursor"},
		{"limit zero", req{method: "GET", path: "/v1/deliveries?limit=0"}, 400, "invalid_query_parameter", "limit"},
		{"limit too high", req{method: "GET", path: "/v1/deliveries?limit=1001"}, 400, "invalid_query_parameter", "limit"},
		{"bad status", req{method: "GET", path: "/v1/deliveries?status=lost"}, 400, "invalid_query_parameter", "status"},
		{"bad since", req{method: "GET", path: "/v1/deliveries?since=yesterday"}, 400, "invalid_query_parameter", "since"},
		{"unknown query parameter", req{method: "GET", path: "/v1/deliveries?webhook=wh_1"}, 400, "invalid_query_parameter", "webhook"},
		{"repeated query parameter", req{method: "GET", path: "/v1/deliveries?status=failed&status=pending"}, 400, "invalid_query_parameter", "status"},
		{"unknown delivery", req{method: "GET", path: "/v1/deliveries/msg_nope"}, 404, "delivery_not_found", ""},

		// Authentication.
		{"unauthenticated", req{method: "POST", path: "/v1/webhooks", body: `{"callback_url":"https://a.example"}`, key: strp("")},
			401, "unauthorized", ""},
		{"wrong key", req{method: "POST", path: "/v1/events", body: goodEvent, key: strp("phk_wrong")}, 401, "unauthorized", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := e.do(tt.req).problem(t, tt.status, tt.code)
			if p.Field != tt.field {
				t.Fatalf("field %q, want %q (detail: %s)", p.Field, tt.field, p.Detail)
			}
			e.assertNothingStored()
		})
	}
}

// assertNothingStored checks that the company has no webhooks, no apps (not
// even a default one) and that nothing was ingested.
func (e *env) assertNothingStored() {
	e.t.Helper()
	if hooks := e.list("/v1/webhooks"); len(hooks) != 0 {
		e.t.Fatalf("webhooks stored: %v", hooks)
	}
	if apps := e.list("/v1/apps"); len(apps) != 0 {
		e.t.Fatalf("apps stored: %v", apps)
	}
	if calls := e.ingester.recorded(); len(calls) != 0 {
		e.t.Fatalf("ingester called %d times", len(calls))
	}
}

// TestMalformedJSONOffset checks that a syntax error names where it is.
func TestMalformedJSONOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.post("/v1/webhooks", `{"name": "x", "callback_url": nope}`).problem(t, http.StatusBadRequest, "malformed_json")
	if !strings.Contains(p.Detail, "offset 31") {
		t.Fatalf("detail %q does not name offset 31", p.Detail)
	}
	for body, want := range map[string]string{
		`{"retry_limit": "5"}`:           "retry_limit must be an integer, got string",
		`{"events": ["created", 2]}`:     "events must be an array of strings, got number",
		`{"headers": {"X-A": 1}}`:        "headers must be an object of strings, got number",
		`{"minimum_retry_interval": {}}`: "minimum_retry_interval must be a number, got object",
		`{"enabled": "yes"}`:             "enabled must be a boolean, got string",
		`"hello"`:                        "the body must be an object, got string",
	} {
		p = e.post("/v1/webhooks", body).problem(t, http.StatusBadRequest, "wrong_type")
		if p.Detail != want {
			t.Errorf("%s: detail %q, want %q", body, p.Detail, want)
		}
	}
	e.assertNothingStored()
}
