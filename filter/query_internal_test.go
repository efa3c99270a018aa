package filter

import (
	"reflect"
	"testing"
)

func TestSingularQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query    string
		singular bool
		steps    []step
	}{
		{"$", true, nil},
		{"$.a", true, []step{{name: "a"}}},
		{"$.a.b_c.D9", true, []step{{name: "a"}, {name: "b_c"}, {name: "D9"}}},
		{"$.é.😀", true, []step{{name: "é"}, {name: "😀"}}},
		{"$['a']", true, []step{{name: "a"}}},
		{`$["a b"]['c.d']`, true, []step{{name: "a b"}, {name: "c.d"}}},
		{`$['it\'s']["q\"q"]`, true, []step{{name: "it's"}, {name: `q"q`}}},
		{`$['\u00e9\ud83d\ude00\n\\']`, true, []step{{name: "é😀\n\\"}}},
		{"$[0]", true, []step{{index: 0, isIndex: true}}},
		{"$[-1]", true, []step{{index: -1, isIndex: true}}},
		{"$.a[2].b[-3]", true, []step{{name: "a"}, {index: 2, isIndex: true}, {name: "b"}, {index: -3, isIndex: true}}},
		{"$ .a [ 'b' ] [ 0 ]", true, []step{{name: "a"}, {name: "b"}, {index: 0, isIndex: true}}},
		{"$\n.a\t[1]", true, []step{{name: "a"}, {index: 1, isIndex: true}}},

		{"$.*", false, nil},
		{"$[*]", false, nil},
		{"$..a", false, nil},
		{"$.a..b", false, nil},
		{"$[0,1]", false, nil},
		{"$['a','b']", false, nil},
		{"$[0:1]", false, nil},
		{"$[:]", false, nil},
		{"$[?@.a]", false, nil},
		{"$.a[?@.b == 1]", false, nil},
		{"$.a.*.b", false, nil},
		{"$['a'].*", false, nil},
		{"$.a[0][*]", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			q, err := compileQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if q.singular != tt.singular {
				t.Errorf("singular = %v, want %v", q.singular, tt.singular)
			}
			if tt.singular && !reflect.DeepEqual(q.steps, tt.steps) {
				t.Errorf("steps = %+v, want %+v", q.steps, tt.steps)
			}
		})
	}
}

func TestQueryFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query             string
		bounded, compares bool
	}{
		{"$.a", true, false},
		{"$..*", true, false},
		{"$.a[?@.b > 1]", true, false},
		{"$.a[?@.b == $.c]", true, true},
		{"$.a[?@.b == 1 && @.c]", true, true},
		{"$.a[?@.b != 1]", true, false},
		{"$.a[?!@.b]", true, false},
		{"$.a[?@.b <= @.c]", true, true},
		{"$.a[?@.b < @.c]", true, false},
		{"$.a[?@.b[0].c]", true, false},
		{"$.a[?@.b[*]]", false, false},
		{"$.a[?@..b]", false, false},
		{"$.a[?count(@.*) > 1]", false, false},
		{"$.a[?$..b]", false, false},
		{"$.a[?@['x', 'y']]", false, false},
		{"$.a[?@.b[?@.c]]", false, false},
		{"$.a[?@.b == '$..x' && @.c == \"@..y\"]", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			q, err := compileQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if q.bounded != tt.bounded || q.compares != tt.compares {
				t.Errorf("bounded, compares = %v, %v; want %v, %v", q.bounded, q.compares, tt.bounded, tt.compares)
			}
		})
	}
}

func TestRewriteQuery(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"$.a", "$.a"},
		{`$['a\n']`, `$['a\n']`},
		{`$['\u0061']`, `$['a']`},
		{`$["a\rb"]`, "$[\"a\rb\"]"},
		{`$['\u0027\u005c']`, `$['\'\\']`},
		{`$["\u0022"]`, `$["\""]`},
		{`$[?@.a == 12345678901234567890]`, `$[?@.a == 12345678901234567890.0]`},
		{`$[?12345678901234567890 < @.a]`, `$[?12345678901234567890.0 < @.a]`},
		{`$[?@.a == 1234567890123456789]`, `$[?@.a == 1234567890123456789]`},
		{`$[?@.a == 12345678901234567890.5]`, `$[?@.a == 12345678901234567890.5]`},
		{`$[12345678901234567890]`, `$[12345678901234567890]`},
		{`$.a12345678901234567890[?@ == 1]`, `$.a12345678901234567890[?@ == 1]`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, offsets, err := rewriteQuery(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("rewriteQuery = %q, want %q", got, tt.want)
			}
			if got != tt.in && len(offsets) != len(got)+1 {
				t.Errorf("%d offsets for %d bytes", len(offsets), len(got))
			}
		})
	}
}

func TestGuardFunctions(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"$[?@.a]", "$[?@.a]"},
		{"$[?match(@.a, 'x')]", "$[?(@.a && match(@.a, 'x'))]"},
		{"$[?!search(@.a, $.p)]", "$[?!(@.a && $.p && search(@.a, $.p))]"},
		{"$[?match('abc', 'a.c')]", "$[?match('abc', 'a.c')]"},
		{"$[?match(@['a,b'], '(x)')]", "$[?(@['a,b'] && match(@['a,b'], '(x)'))]"},
		{"$[?@.x == 'match(@.a, 1)']", "$[?@.x == 'match(@.a, 1)']"},
		{"$[?match(value(@..a), 'x') && search(@.b, 'y')]", "$[?match(value(@..a), 'x') && (@.b && search(@.b, 'y'))]"},
		{"$.nomatch[?rematch(@.a, 'x')]", "$.nomatch[?rematch(@.a, 'x')]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := guardFunctions(tt.in); got != tt.want {
				t.Errorf("guardFunctions = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJSONDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		ok   bool
	}{
		{`[[1]]`, true},
		{`[[[1]]]`, false},
		{`{"a": {"b": 1}}`, true},
		{`{"a": {"b": [1]}}`, false},
		{`["[[[[", "\"[[[["]`, true},
		{`[[1], [2], [3]]`, true},
	}
	for _, tt := range tests {
		if got := jsonDepthOK(tt.text, 2); got != tt.ok {
			t.Errorf("jsonDepthOK(%s, 2) = %v, want %v", tt.text, got, tt.ok)
		}
	}
}
