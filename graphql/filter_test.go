package graphql_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/pimhook/pimhook/filter"
	"github.com/pimhook/pimhook/graphql"
)

const saveFilterReducer = `mutation($id: ID!, $slug: String!, $f: JSON, $r: JSON) {
  saveFilterReducer(webhookID: $id, eventSlug: $slug, filterConfiguration: $f, reducerConfiguration: $r) {
    id filterReducers { eventSlug filterConfiguration reducerConfiguration }
  }
}`

// TestSaveFilterReducer sets, replaces and removes a webhook's filter and
// reducer through GraphQL, and reads them back over REST.
func TestSaveFilterReducer(t *testing.T) {
	t.Parallel()
	engine := filter.New(filter.Config{Timeout: 10 * time.Second}) // answers, not budgets, under -race
	t.Cleanup(engine.Close)
	e := newEnv(t, func(c *graphql.Config) { c.Filters = engine })
	var created struct {
		ID string `json:"id"`
	}
	if got := e.rest("POST", "/v1/webhooks", map[string]any{"callback_url": "https://shop.example/hook"}, &created); got != http.StatusCreated {
		t.Fatalf("create webhook: %d", got)
	}
	type frView struct {
		EventSlug            string          `json:"eventSlug"`
		FilterConfiguration  json.RawMessage `json:"filterConfiguration"`
		ReducerConfiguration json.RawMessage `json:"reducerConfiguration"`
	}
	var out struct {
		SaveFilterReducer struct {
			ID             string   `json:"id"`
			FilterReducers []frView `json:"filterReducers"`
		} `json:"saveFilterReducer"`
	}
	e.do(saveFilterReducer, map[string]any{
		"id": created.ID, "slug": "products.updated",
		"f": map[string]any{"logic": "or", "conditions": []any{map[string]any{"query": "$.data.price", "condition": "(v) => v > 100"}}},
		"r": map[string]any{"sku": "$.entity_id"},
	}, &out)
	frs := out.SaveFilterReducer.FilterReducers
	if len(frs) != 1 || frs[0].EventSlug != "products.updated" ||
		!sameJSON(t, frs[0].FilterConfiguration, `{"logic":"OR","conditions":[{"query":"$.data.price","condition":"(v) => v > 100"}]}`) ||
		!sameJSON(t, frs[0].ReducerConfiguration, `{"sku":"$.entity_id"}`) {
		t.Fatalf("saved %s / %s / %s", frs[0].EventSlug, frs[0].FilterConfiguration, frs[0].ReducerConfiguration)
	}
	var rest struct {
		FilterReducers []struct {
			EventSlug string          `json:"event_slug"`
			Reducer   json.RawMessage `json:"reducer_configuration"`
		} `json:"filter_reducers"`
	}
	e.rest("GET", "/v1/webhooks/"+created.ID, nil, &rest)
	if len(rest.FilterReducers) != 1 || string(rest.FilterReducers[0].Reducer) != `{"sku":"$.entity_id"}` {
		t.Errorf("REST shows %+v", rest.FilterReducers)
	}

	// Errors name the argument, with the syntax error's position.
	g := e.fail(saveFilterReducer, map[string]any{"id": created.ID, "slug": "*", "f": map[string]any{"query": "$.a", "condition": "(v) => v >"}},
		"invalid_filter", "filterConfiguration.condition")
	if g.Message == "" {
		t.Error("no message")
	}
	e.fail(saveFilterReducer, map[string]any{"id": created.ID, "slug": "*", "f": map[string]any{"querry": "$.a"}}, "invalid_filter", "filterConfiguration")
	e.fail(saveFilterReducer, map[string]any{"id": created.ID, "slug": "products", "r": map[string]any{}}, "validation_failed", "eventSlug")
	e.fail(saveFilterReducer, map[string]any{"id": "wh_nope", "slug": "*", "r": map[string]any{}}, "webhook_not_found", "")

	// Neither configuration: the slug's configuration is removed.
	e.do(saveFilterReducer, map[string]any{"id": created.ID, "slug": "products.updated"}, &out)
	if len(out.SaveFilterReducer.FilterReducers) != 0 {
		t.Errorf("after removal: %+v", out.SaveFilterReducer.FilterReducers)
	}
}

// sameJSON reports whether got and want hold the same JSON value.
func sameJSON(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("decode %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("decode %s: %v", want, err)
	}
	return reflect.DeepEqual(a, b)
}
