package filter_test

import (
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

func TestCheckFilter(t *testing.T) {
	t.Parallel()
	nest := func(depth int) *pimhook.Filter {
		f := &pimhook.Filter{Query: "$.a"}
		for range depth - 1 {
			f = &pimhook.Filter{Conditions: []*pimhook.Filter{f}}
		}
		return f
	}
	many := &pimhook.Filter{}
	for range pimhook.MaxFilterNodes {
		many.Conditions = append(many.Conditions, &pimhook.Filter{Query: "$.a"})
	}
	tests := []struct {
		name   string
		filter *pimhook.Filter
		field  string // after "filter_configuration"
		want   string
	}{
		// Syntax errors, with positions in the user's source.
		{"one-line syntax error", &pimhook.Filter{Condition: "(v) => v > 1 +* 2"},
			".condition", "SyntaxError at line 1, column 15: Unexpected token *"},
		{"end of input", &pimhook.Filter{Condition: "(v) => v >"},
			".condition", "SyntaxError at line 1, column 11: Unexpected end of input"},
		{"unclosed block", &pimhook.Filter{Condition: "v => {\n  return v > 1;"},
			".condition", "SyntaxError at line 2, column 16: Unexpected end of input"},
		{"multi-line syntax error", &pimhook.Filter{Condition: "(v) => {\n  const a = 1;\n  return a ++ + ;\n}"},
			".condition", "SyntaxError at line 3, column 17: Unexpected token ;"},
		{"characters, not bytes", &pimhook.Filter{Condition: "(é) => é é"},
			".condition", "SyntaxError at line 1, column 10"},
		{"unbalanced parenthesis", &pimhook.Filter{Condition: "(v) => v)"},
			".condition", "SyntaxError at line 1, column 9: Unexpected token )"},
		{"trailing code", &pimhook.Filter{Condition: "(v) => v; while (true) {}"},
			".condition", "SyntaxError at line 1, column 9"},
		{"duplicate parameter in strict code", &pimhook.Filter{Condition: "function (a, a) { 'use strict'; return a }"},
			".condition", "SyntaxError"},
		{"bad regexp", &pimhook.Filter{Condition: "(v) => /(/.test(v)"},
			".condition", "SyntaxError"},
		{"nested", &pimhook.Filter{Conditions: []*pimhook.Filter{{Query: "$.a"}, {Conditions: []*pimhook.Filter{{Query: "$.b", Condition: "(v) => {"}}}}},
			".conditions[1].conditions[0].condition", "SyntaxError at line 1, column 9: Unexpected end of input"},

		// Not a function.
		{"number", &pimhook.Filter{Condition: "42"}, ".condition", "condition must be a function"},
		{"expression", &pimhook.Filter{Condition: "value > 100"}, ".condition", "condition must be a function"},
		{"call", &pimhook.Filter{Condition: "(() => (v) => v)()"}, ".condition", "condition must be a function"},
		{"sequence", &pimhook.Filter{Condition: "(v) => v, (() => { while (true) {} })()"}, ".condition", "condition must be a function"},
		{"class", &pimhook.Filter{Condition: "class { }"}, ".condition", "condition must be a function"},
		{"object", &pimhook.Filter{Condition: "{ a: 1 }"}, ".condition", "condition must be a function"},
		{"async arrow", &pimhook.Filter{Condition: "async (v) => v"}, ".condition", "async function"},
		{"async function", &pimhook.Filter{Condition: "async function (v) { return v }"}, ".condition", "async function"},
		{"generator", &pimhook.Filter{Condition: "function* (v) { yield v }"}, ".condition", "generator"},

		// Queries.
		{"bad query", &pimhook.Filter{Query: "$.items[?@.price > 10", Condition: "(v) => v"},
			".query", "invalid JSONPath query at column 22: unexpected token"},
		{"bad nested query", &pimhook.Filter{Conditions: []*pimhook.Filter{{Query: "$.a"}, {Query: "$[01]"}}},
			".conditions[1].query", "invalid JSONPath query at column 3"},
		{"bad query after a rewritten string", &pimhook.Filter{Query: `$['\u00e9x'][?@.a == 1 +]`},
			".query", "invalid JSONPath query at column 24"},
		{"query column in characters", &pimhook.Filter{Query: "$.é.é[?@.é = 1]"},
			".query", "invalid JSONPath query at column 12"},

		// Shape.
		{"bad logic", &pimhook.Filter{Logic: "XOR", Conditions: []*pimhook.Filter{{Query: "$.a"}}}, ".logic", `logic must be "AND" or "OR", got "XOR"`},
		{"bad nested logic", &pimhook.Filter{Conditions: []*pimhook.Filter{{Logic: "NOT", Query: "$.a"}}}, ".conditions[0].logic", "logic must be"},
		{"empty node", &pimhook.Filter{}, "", "needs a query, a condition or nested conditions"},
		{"nil node", &pimhook.Filter{Conditions: []*pimhook.Filter{nil}}, ".conditions[0]", "must be an object"},
		{"too deep", nest(pimhook.MaxFilterDepth + 1), strings.Repeat(".conditions[0]", pimhook.MaxFilterDepth), "nest at most"},
		{"too many nodes", many, ".conditions[63]", "at most 64 nodes"},
		{"long query", &pimhook.Filter{Query: "$." + strings.Repeat("a", pimhook.MaxFilterQueryLen)}, ".query", "longer than"},
		{"long condition", &pimhook.Filter{Condition: "(v) => " + strings.Repeat(" ", pimhook.MaxConditionLen) + "v"}, ".condition", "longer than"},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := e.CheckFilter(tt.filter, "filter_configuration")
			checkFieldError(t, err, pimhook.CodeInvalidFilter, "filter_configuration"+tt.field, tt.want)
			if _, err := e.Filter(tt.filter); err == nil {
				t.Error("Filter compiled what CheckFilter refused")
			}
		})
	}
}

// TestCheckFilterValid checks that valid filters compile, that
// FilterCompiler works through pimhook.CheckFilterReducers, and that
// compiling runs no user code.
func TestCheckFilterValid(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	w := &pimhook.Webhook{FilterReducers: []pimhook.FilterReducer{
		{EventSlug: "*", Filter: &pimhook.Filter{Query: "$.a", Condition: "(v) => { while (true) {} }"}},
		{EventSlug: "products.updated", Filter: &pimhook.Filter{Condition: "function (v) { for (;;) {} }"}, Reducer: []byte(`{"a": "$.a"}`)},
	}}
	if err := pimhook.CheckFilterReducers(e, w); err != nil {
		t.Fatal(err)
	}
	w.FilterReducers[1].Reducer = []byte(`{"a": "$.["}`)
	err := pimhook.CheckFilterReducers(e, w)
	checkFieldError(t, err, pimhook.CodeInvalidReducer, "filter_reducers[1].reducer_configuration.a", "invalid JSONPath query")
}
