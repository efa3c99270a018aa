package change_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/change"
)

// encode renders changes as JSON, the way a webhook payload carries them.
func encode(t testing.TB, changes []pimhook.FieldChange) string {
	t.Helper()
	if changes == nil {
		return "[]"
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(changes); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

func TestDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		// Identical data.
		{"identical", `{"a":1,"b":{"c":[1,2]}}`, `{"a":1,"b":{"c":[1,2]}}`, `[]`},
		{"identical with whitespace", `{"a": 1, "b": {"c": [1, 2]}}`, "{\n\t\"a\":1,\"b\":{\"c\":[1,2]}}", `[]`},
		{"key order", `{"a":1,"b":{"x":1,"y":2}}`, `{"b":{"y":2,"x":1},"a":1}`, `[]`},
		{"key order inside arrays", `{"a":[{"x":1,"y":2}]}`, `{"a":[{"y":2,"x":1}]}`, `[]`},
		{"both empty objects", `{}`, `{}`, `[]`},

		// Scalars and nesting.
		{"top-level field", `{"sku":"A1","stock":5}`, `{"sku":"A1","stock":4}`,
			`[{"name":"stock","from":5,"to":4}]`},
		{"nested field", `{"price":{"amount":10,"currency":"EUR"}}`, `{"price":{"amount":12,"currency":"EUR"}}`,
			`[{"name":"price.amount","from":10,"to":12}]`},
		{"deeply nested", `{"a":{"b":{"c":{"d":true}}}}`, `{"a":{"b":{"c":{"d":false}}}}`,
			`[{"name":"a.b.c.d","from":true,"to":false}]`},
		{"several, sorted by name", `{"z":1,"a":{"y":1,"b":1},"m":"x"}`, `{"z":2,"a":{"y":2,"b":2},"m":"y"}`,
			`[{"name":"a.b","from":1,"to":2},{"name":"a.y","from":1,"to":2},{"name":"m","from":"x","to":"y"},{"name":"z","from":1,"to":2}]`},
		{"sorted by full name, not by walk", `{"a":{"b":1},"a!":1}`, `{"a":{"b":2},"a!":2}`,
			`[{"name":"a!","from":1,"to":2},{"name":"a.b","from":1,"to":2}]`},

		// Path escaping.
		{"dot in key", `{"a.b":1}`, `{"a.b":2}`, `[{"name":"a\\.b","from":1,"to":2}]`},
		{"dot in nested key", `{"x":{"a.b":{"c":1}}}`, `{"x":{"a.b":{"c":2}}}`, `[{"name":"x.a\\.b.c","from":1,"to":2}]`},
		{"backslash in key", `{"a\\b":1}`, `{"a\\b":2}`, `[{"name":"a\\\\b","from":1,"to":2}]`},
		{"escaped key decoded", `{"\u0070rice":1}`, `{"price":2}`, `[{"name":"price","from":1,"to":2}]`},
		{"empty nested key", `{"a":{"":1}}`, `{"a":{"":2}}`, `[{"name":"a.","from":1,"to":2}]`},
		{"empty top-level key then nested", `{"":{"b":1}}`, `{"":{"b":2}}`, `[{"name":".b","from":1,"to":2}]`},

		// Arrays are whole values.
		{"array element changed", `{"tags":["a","b"]}`, `{"tags":["a","c"]}`, `[{"name":"tags","from":["a","b"],"to":["a","c"]}]`},
		{"array reordered", `{"tags":["a","b"]}`, `{"tags":["b","a"]}`, `[{"name":"tags","from":["a","b"],"to":["b","a"]}]`},
		{"array grew", `{"tags":["a"]}`, `{"tags":["a","b"]}`, `[{"name":"tags","from":["a"],"to":["a","b"]}]`},
		{"array shrank", `{"tags":["a","b"]}`, `{"tags":[]}`, `[{"name":"tags","from":["a","b"],"to":[]}]`},
		{"object inside array changed", `{"img":[{"url":"a","alt":"x"}]}`, `{"img":[{"url":"a","alt":"y"}]}`,
			`[{"name":"img","from":[{"url":"a","alt":"x"}],"to":[{"url":"a","alt":"y"}]}]`},
		{"array compacted", `{"a":[ 1, {"b" : "x y"} ]}`, `{"a":[1]}`, `[{"name":"a","from":[1,{"b":"x y"}],"to":[1]}]`},
		{"array equal by value", `{"a":[1,{"b":1.0}]}`, `{"a":[1.00,{"b":1}]}`, `[]`},

		// Type changes.
		{"number to string", `{"a":1}`, `{"a":"1"}`, `[{"name":"a","from":1,"to":"1"}]`},
		{"object to scalar", `{"a":{"b":1}}`, `{"a":5}`, `[{"name":"a","from":{"b":1},"to":5}]`},
		{"scalar to object", `{"a":5}`, `{"a":{"b":1}}`, `[{"name":"a","from":5,"to":{"b":1}}]`},
		{"object to array", `{"a":{"b":1}}`, `{"a":[1]}`, `[{"name":"a","from":{"b":1},"to":[1]}]`},
		{"bool to number", `{"a":true}`, `{"a":1}`, `[{"name":"a","from":true,"to":1}]`},

		// Nulls.
		{"null to value", `{"a":null}`, `{"a":1}`, `[{"name":"a","from":null,"to":1}]`},
		{"value to null", `{"a":1}`, `{"a":null}`, `[{"name":"a","from":1,"to":null}]`},
		{"absent to null", `{}`, `{"a":null}`, `[{"name":"a","from":null,"to":null,"from_missing":true}]`},
		{"null to absent", `{"a":null}`, `{}`, `[{"name":"a","from":null,"to":null,"to_missing":true}]`},
		{"null to object", `{"a":null}`, `{"a":{"b":1}}`, `[{"name":"a","from":null,"to":{"b":1}}]`},
		{"null stays null", `{"a":null}`, `{"a":null}`, `[]`},

		// Appearing and disappearing.
		{"field appears", `{"a":1}`, `{"a":1,"b":"x"}`, `[{"name":"b","from":null,"to":"x","from_missing":true}]`},
		{"field disappears", `{"a":1,"b":"x"}`, `{"a":1}`, `[{"name":"b","from":"x","to":null,"to_missing":true}]`},
		{"nested field appears", `{"p":{"a":1}}`, `{"p":{"a":1,"b":2}}`, `[{"name":"p.b","from":null,"to":2,"from_missing":true}]`},
		{"object appears whole", `{}`, `{"price":{"amount":1,"currency":"EUR"}}`,
			`[{"name":"price","from":null,"to":{"amount":1,"currency":"EUR"},"from_missing":true}]`},
		{"object disappears whole", `{"price":{"amount":1,"currency":"EUR"}}`, `{}`,
			`[{"name":"price","from":{"amount":1,"currency":"EUR"},"to":null,"to_missing":true}]`},
		{"empty object appears", `{}`, `{"a":{}}`, `[{"name":"a","from":null,"to":{},"from_missing":true}]`},
		{"array appears", `{}`, `{"a":[]}`, `[{"name":"a","from":null,"to":[],"from_missing":true}]`},

		// Numbers.
		{"1 vs 1.0", `{"a":1}`, `{"a":1.0}`, `[]`},
		{"1 vs 1e0", `{"a":1}`, `{"a":1e0}`, `[]`},
		{"1 vs 1.00", `{"a":1}`, `{"a":1.00}`, `[]`},
		{"100 vs 1E+2", `{"a":100}`, `{"a":1E+2}`, `[]`},
		{"0.5 vs 5e-1", `{"a":0.5}`, `{"a":5e-1}`, `[]`},
		{"0 vs -0", `{"a":0}`, `{"a":-0}`, `[]`},
		{"0 vs 0e10", `{"a":0}`, `{"a":-0.000e10}`, `[]`},
		{"big integers differ", `{"id":9007199254740993}`, `{"id":9007199254740992}`,
			`[{"name":"id","from":9007199254740993,"to":9007199254740992}]`},
		{"big integer equal to its decimal", `{"id":9007199254740993}`, `{"id":9007199254740993.000}`, `[]`},
		{"long decimals differ", `{"a":0.10000000000000000000000001}`, `{"a":0.1}`,
			`[{"name":"a","from":0.10000000000000000000000001,"to":0.1}]`},
		{"huge exponents differ", `{"a":1e999999999999999999999}`, `{"a":1e999999999999999999998}`,
			`[{"name":"a","from":1e999999999999999999999,"to":1e999999999999999999998}]`},
		{"huge exponents equal", `{"a":1e999999999999999999999}`, `{"a":10e999999999999999999998}`, `[]`},
		{"number kept as written", `{"a":1.50}`, `{"a":2.0}`, `[{"name":"a","from":1.50,"to":2.0}]`},
		{"sign", `{"a":1}`, `{"a":-1}`, `[{"name":"a","from":1,"to":-1}]`},

		// Strings.
		{"unicode equal", `{"n":"Grüße 😀"}`, `{"n":"Grüße 😀"}`, `[]`},
		{"unicode escape equals literal", `{"n":"Gr\u00fc\u00dfe \ud83d\ude00"}`, `{"n":"Grüße 😀"}`, `[]`},
		{"unicode changed", `{"n":"Grüße"}`, `{"n":"Grüsse"}`, `[{"name":"n","from":"Grüße","to":"Grüsse"}]`},
		{"combining accent is not precomposed", `{"n":"é"}`, `{"n":"e\u0301"}`, `[{"name":"n","from":"é","to":"e\u0301"}]`},
		{"case matters", `{"n":"abc"}`, `{"n":"ABC"}`, `[{"name":"n","from":"abc","to":"ABC"}]`},
		{"escaped slash", `{"u":"a/b"}`, `{"u":"a\/b"}`, `[]`},
		{"whitespace in string kept", `{"s":"a  b"}`, `{"s":"a b"}`, `[{"name":"s","from":"a  b","to":"a b"}]`},

		// Repeated names: the last one counts, as in encoding/json.
		{"repeated name", `{"a":1,"a":2}`, `{"a":2}`, `[]`},

		// Documents without data, and documents that are not objects.
		{"empty from", ``, `{"a":1,"b":{"c":2}}`,
			`[{"name":"a","from":null,"to":1,"from_missing":true},{"name":"b","from":null,"to":{"c":2},"from_missing":true}]`},
		{"whitespace from", " \n", `{"a":1}`, `[{"name":"a","from":null,"to":1,"from_missing":true}]`},
		{"null from", `null`, `{"a":1}`, `[{"name":"a","from":null,"to":1,"from_missing":true}]`},
		{"empty to", `{"a":1}`, ``, `[{"name":"a","from":1,"to":null,"to_missing":true}]`},
		{"both empty", ``, ``, `[]`},
		{"empty and {}", ``, `{}`, `[]`},
		{"null and {}", `null`, `{}`, `[]`},
		{"object to array document", `{"a":1}`, `[1]`, `[{"name":"","from":{"a":1},"to":[1]}]`},
		{"scalar documents", `1`, `2`, `[{"name":"","from":1,"to":2}]`},
		{"scalar documents equal", `1`, `1.0`, `[]`},
		{"array documents", `[1,2]`, `[2,1]`, `[{"name":"","from":[1,2],"to":[2,1]}]`},
		{"empty to scalar", ``, `"x"`, `[{"name":"","from":null,"to":"x","from_missing":true}]`},
		{"array to null", `[1]`, `null`, `[{"name":"","from":[1],"to":null,"to_missing":true}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := change.Diff(json.RawMessage(tt.from), json.RawMessage(tt.to))
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if s := encode(t, got); s != tt.want {
				t.Errorf("Diff(%s, %s)\n got %s\nwant %s", tt.from, tt.to, s, tt.want)
			}
			equal, err := change.Equal(json.RawMessage(tt.from), json.RawMessage(tt.to))
			if err != nil {
				t.Fatalf("Equal: %v", err)
			}
			if equal != (len(got) == 0) {
				t.Errorf("Equal = %v with %d changes", equal, len(got))
			}
		})
	}
}

func TestDiffInvalidJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, from, to, side string
	}{
		{"truncated from", `{"a":`, `{}`, "from"},
		{"truncated to", `{}`, `{"a":1`, "to"},
		{"trailing comma", `{"a":1,}`, `{}`, "from"},
		{"single quotes", `{}`, `{'a':1}`, "to"},
		{"two values", `{} {}`, `{}`, "from"},
		{"leading zero", `{"a":01}`, `{}`, "from"},
		{"bad escape", `{}`, `{"a":"\x"}`, "to"},
		{"control character", "{\"a\":\"\x01\"}", `{}`, "from"},
		{"bare word", `nope`, `{}`, "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := change.Diff(json.RawMessage(tt.from), json.RawMessage(tt.to))
			var e *pimhook.Error
			if !errors.As(err, &e) || e.Kind != pimhook.KindInvalid || e.Code != pimhook.CodeMalformedJSON {
				t.Fatalf("Diff error = %v, want a KindInvalid %s *pimhook.Error", err, pimhook.CodeMalformedJSON)
			}
			if !strings.HasPrefix(e.Message, tt.side+" ") {
				t.Errorf("message %q does not name %q", e.Message, tt.side)
			}
			if _, err := change.Equal(json.RawMessage(tt.from), json.RawMessage(tt.to)); pimhook.ErrorCode(err) != pimhook.CodeMalformedJSON {
				t.Errorf("Equal error = %v", err)
			}
		})
	}
}

// TestDiffValuesAreCopies checks that changes stay valid after the caller
// reuses its buffers.
func TestDiffValuesAreCopies(t *testing.T) {
	t.Parallel()
	from := []byte(`{"a":"old"}`)
	to := []byte(`{"a":"new"}`)
	got, err := change.Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	copy(from, `{"a":"xxx"}`)
	copy(to, `{"a":"yyy"}`)
	if s := encode(t, got); s != `[{"name":"a","from":"old","to":"new"}]` {
		t.Errorf("got %s", s)
	}
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{``, ``},
		{"  ", ``},
		{`null`, `null`},
		{`{}`, `{}`},
		{` { "b" : 1 , "a" : [ true , false , null ] } `, `{"a":[true,false,null],"b":1}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"b":{"d":1,"c":2},"a":0}`, `{"a":0,"b":{"c":2,"d":1}}`},
		{`{"é":1,"z":2,"a":3}`, `{"a":3,"z":2,"é":1}`},
		{`"\u00e9\/\ud83d\ude00"`, `"é/😀"`},
		{`"\u0001\b\f\n\r\t\"\\"`, `"\u0001\b\f\n\r\t\"\\"`},
		{`"\u2028<>&"`, "\"\u2028<>&\""},
		{`"\ud800x"`, `"` + "\uFFFD" + `x"`},
		{"\"\xff\"", `"` + "\uFFFD" + `"`},
		{`0`, `0`},
		{`-0`, `0`},
		{`-0.0e-5`, `0`},
		{`1.0`, `1`},
		{`1e0`, `1`},
		{`1E+2`, `100`},
		{`-1.50`, `-1.5`},
		{`0.001`, `0.001`},
		{`0.000001`, `0.000001`},
		{`0.0000001`, `1e-7`},
		{`123.456e2`, `12345.6`},
		{`100000000000000000000`, `100000000000000000000`},
		{`1000000000000000000000`, `1e21`},
		{`10000000000000000000000`, `1e22`},
		{`12345678901234567890123`, `1.2345678901234567890123e22`},
		{`9007199254740993`, `9007199254740993`},
		{`1e999999999999999999999`, `1e999999999999999999999`},
		{`-2.5e-999999999999999999999`, `-2.5e-999999999999999999999`},
		{`0.25e-999999999999999999999`, `2.5e-1000000000000000000000`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := change.Canonical(json.RawMessage(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonical(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	if _, err := change.Canonical(json.RawMessage(`{"a"}`)); pimhook.ErrorCode(err) != pimhook.CodeMalformedJSON {
		t.Errorf("Canonical of invalid JSON: error %v", err)
	}
}

func TestJoinSplitPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		keys []string
		path string
	}{
		{nil, ""},
		{[]string{"price"}, "price"},
		{[]string{"price", "amount"}, "price.amount"},
		{[]string{"a.b", "c"}, `a\.b.c`},
		{[]string{`a\`, "b"}, `a\\.b`},
		{[]string{"a", ""}, "a."},
		{[]string{"", "b"}, ".b"},
		{[]string{"ü.ß", "ø"}, `ü\.ß.ø`},
	}
	for _, tt := range tests {
		if got := change.JoinPath(tt.keys...); got != tt.path {
			t.Errorf("JoinPath(%q) = %q, want %q", tt.keys, got, tt.path)
		}
		if got := change.SplitPath(tt.path); !equalStrings(got, tt.keys) {
			t.Errorf("SplitPath(%q) = %q, want %q", tt.path, got, tt.keys)
		}
	}
	// Lenient reading of what JoinPath never writes.
	for path, want := range map[string][]string{`a\b`: {"ab"}, `a\`: {`a\`}, `a..b`: {"a", "", "b"}} {
		if got := change.SplitPath(path); !equalStrings(got, want) {
			t.Errorf("SplitPath(%q) = %q, want %q", path, got, want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
