package pimhook_test

import (
	"encoding/json"
	"testing"

	"github.com/pimhook/pimhook"
)

func TestFilterNormalize(t *testing.T) {
	t.Parallel()
	deep := &pimhook.Filter{Query: "$.a"}
	for range pimhook.MaxFilterDepth {
		deep = &pimhook.Filter{Conditions: []*pimhook.Filter{deep}}
	}
	for _, tc := range []struct {
		name  string
		f     *pimhook.Filter
		field string // "" for valid
	}{
		{"query only", &pimhook.Filter{Query: " $.a "}, ""},
		{"lower-case logic", &pimhook.Filter{Logic: "or", Conditions: []*pimhook.Filter{{Query: "$.a"}}}, ""},
		{"empty", &pimhook.Filter{}, "f"},
		{"bad logic", &pimhook.Filter{Logic: "XOR", Conditions: []*pimhook.Filter{{Query: "$.a"}}}, "f.logic"},
		{"empty nested", &pimhook.Filter{Conditions: []*pimhook.Filter{{Query: "$.a"}, {}}}, "f.conditions[1]"},
		{"null nested", &pimhook.Filter{Conditions: []*pimhook.Filter{nil}}, "f.conditions[0]"},
		{"too deep", deep, "f" + repeat(".conditions[0]", pimhook.MaxFilterDepth)},
	} {
		err := tc.f.Normalize("f")
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (err == nil || err.(*pimhook.Error).Field != tc.field || err.(*pimhook.Error).Code != pimhook.CodeInvalidFilter):
			t.Errorf("%s: %v, want invalid_filter at %s", tc.name, err, tc.field)
		}
	}
	f := &pimhook.Filter{Logic: "or", Conditions: []*pimhook.Filter{{Query: "$.a"}}}
	if err := f.Normalize("f"); err != nil || f.Logic != pimhook.LogicOr {
		t.Errorf("logic normalised to %q (%v), want OR", f.Logic, err)
	}
	f = &pimhook.Filter{Conditions: []*pimhook.Filter{{Query: "$.a"}}}
	if err := f.Normalize("f"); err != nil || f.Logic != pimhook.LogicAnd {
		t.Errorf("default logic %q (%v), want AND", f.Logic, err)
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestWebhookFilterReducers(t *testing.T) {
	t.Parallel()
	w := &pimhook.Webhook{URL: "https://example.com/h", FilterReducers: []pimhook.FilterReducer{
		{EventSlug: "products.updated", Filter: &pimhook.Filter{Query: "$.a"}},
		{EventSlug: "*", Reducer: json.RawMessage(` {"a":"$.a"} `)},
	}}
	if err := w.Normalize(); err != nil {
		t.Fatal(err)
	}
	if string(w.FilterReducers[1].Reducer) != `{"a":"$.a"}` {
		t.Errorf("reducer kept as %q", w.FilterReducers[1].Reducer)
	}
	if fr := w.FilterReducerFor("products.updated"); fr == nil || fr.Filter == nil {
		t.Errorf("products.updated gets %+v, want its own filter", fr)
	}
	if fr := w.FilterReducerFor("products.created"); fr == nil || fr.EventSlug != "*" {
		t.Errorf("products.created gets %+v, want the * configuration", fr)
	}
	w.SetFilterReducer(pimhook.FilterReducer{EventSlug: "products.updated", Reducer: json.RawMessage(`{}`)})
	if len(w.FilterReducers) != 2 || w.FilterReducers[0].Filter != nil {
		t.Errorf("SetFilterReducer did not replace the slug's configuration: %+v", w.FilterReducers)
	}

	for _, tc := range []struct {
		name  string
		frs   []pimhook.FilterReducer
		field string
	}{
		{"bad slug", []pimhook.FilterReducer{{EventSlug: "product.updated", Reducer: json.RawMessage(`{}`)}}, "filter_reducers[0].event_slug"},
		{"bad action", []pimhook.FilterReducer{{EventSlug: "products.renamed", Reducer: json.RawMessage(`{}`)}}, "filter_reducers[0].event_slug"},
		{"twice", []pimhook.FilterReducer{{EventSlug: "*", Reducer: json.RawMessage(`{}`)}, {EventSlug: "*", Reducer: json.RawMessage(`{}`)}}, "filter_reducers[1].event_slug"},
		{"nothing", []pimhook.FilterReducer{{EventSlug: "*"}}, "filter_reducers[0].filter_configuration"},
		{"reducer not an object", []pimhook.FilterReducer{{EventSlug: "*", Reducer: json.RawMessage(`["$.a"]`)}}, "filter_reducers[0].reducer_configuration"},
		{"bad nested filter", []pimhook.FilterReducer{{EventSlug: "*", Filter: &pimhook.Filter{Logic: "NOR", Query: "$"}}}, "filter_reducers[0].filter_configuration.logic"},
	} {
		w := &pimhook.Webhook{URL: "https://example.com/h", FilterReducers: tc.frs}
		err := w.Normalize()
		if e, ok := err.(*pimhook.Error); !ok || e.Field != tc.field {
			t.Errorf("%s: %v, want an error at %s", tc.name, err, tc.field)
		}
	}
	job := &pimhook.Webhook{URL: "https://example.com/h", JobID: "j1", FilterReducers: []pimhook.FilterReducer{{EventSlug: "*", Reducer: json.RawMessage(`{}`)}}}
	if err := job.Normalize(); err == nil {
		t.Error("a job webhook took a filter_reducer")
	}
}
