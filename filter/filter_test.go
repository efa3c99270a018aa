package filter_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// cond is a node with a query and a condition.
func cond(query, condition string) *pimhook.Filter {
	return &pimhook.Filter{Query: query, Condition: condition}
}

func and(fs ...*pimhook.Filter) *pimhook.Filter {
	return &pimhook.Filter{Logic: "AND", Conditions: fs}
}

func or(fs ...*pimhook.Filter) *pimhook.Filter {
	return &pimhook.Filter{Logic: "OR", Conditions: fs}
}

const shopPayload = `{
  "data": {
    "sku": "SHOE-42", "status": "active", "price": 150, "stock": 0, "discount": null,
    "preorder": false, "name": "Trail runner", "tags": ["red", "sale"],
    "variants": [{"sku": "A", "stock": 0}, {"sku": "B", "stock": 4}],
    "attributes": {"color": "blue", "size": "42"}
  }
}`

func TestMatch(t *testing.T) {
	t.Parallel()
	yes, no := cond("$.data.price", "(p) => p > 100"), cond("$.data.price", "(p) => p < 100")
	tests := []struct {
		name   string
		filter *pimhook.Filter
		want   bool
	}{
		// A query alone: existence, not truthiness.
		{"query selects a value", &pimhook.Filter{Query: "$.data.sku"}, true},
		{"query selects null", &pimhook.Filter{Query: "$.data.discount"}, true},
		{"query selects false", &pimhook.Filter{Query: "$.data.preorder"}, true},
		{"query selects zero", &pimhook.Filter{Query: "$.data.stock"}, true},
		{"query selects nothing", &pimhook.Filter{Query: "$.data.missing"}, false},
		{"non-singular query selects something", &pimhook.Filter{Query: "$.data.variants[?@.stock > 0]"}, true},
		{"non-singular query selects nothing", &pimhook.Filter{Query: "$.data.variants[?@.stock > 10]"}, false},
		{"empty array is a node", &pimhook.Filter{Query: "$.data.tags"}, true},

		// A condition alone gets the whole payload.
		{"condition on payload", &pimhook.Filter{Condition: "(e) => e.data.status === 'active'"}, true},
		{"condition on payload false", &pimhook.Filter{Condition: "(e) => e.data.status === 'draft'"}, false},
		{"condition sees nested arrays", &pimhook.Filter{Condition: "(e) => e.data.variants[1].sku === 'B'"}, true},

		// Singular queries pass the value or undefined.
		{"singular value", cond("$.data.name", "(n) => typeof n === 'string' && n.startsWith('Trail')"), true},
		{"singular index", cond("$.data.variants[-1].stock", "(n) => n === 4"), true},
		{"singular bracket name", cond("$['data']['attributes']['color']", "(c) => c === 'blue'"), true},
		{"singular object", cond("$.data.attributes", "(a) => a.size === '42' && Object.keys(a).length === 2"), true},
		{"singular null", cond("$.data.discount", "(d) => d === null"), true},
		{"singular nothing is passed as undefined", cond("$.data.missing", "function (d) { return d === undefined && arguments.length === 1 }"), true},
		{"singular nothing is undefined (arrow)", cond("$.data.missing", "(d) => d === undefined"), true},
		{"index out of range is undefined", cond("$.data.variants[5]", "(d) => typeof d === 'undefined'"), true},
		{"name on an array is undefined", cond("$.data.tags.x", "(d) => d === undefined"), true},

		// Non-singular queries pass arrays.
		{"wildcard array", cond("$.data.variants[*].sku", "(s) => s.join() === 'A,B'"), true},
		{"wildcard object", cond("$.data.attributes.*", "(s) => Array.isArray(s) && s.length === 2"), true},
		{"one match is still an array", cond("$.data.variants[?@.sku == 'B']", "(s) => Array.isArray(s) && s[0].stock === 4"), true},
		{"no match is an empty array", cond("$.data.variants[?@.sku == 'Z']", "(s) => Array.isArray(s) && s.length === 0"), true},
		{"descendant", cond("$..stock", "(s) => s.length === 3 && s.reduce((a, b) => a + b, 0) === 4"), true},
		{"slice", cond("$.data.tags[0:1]", "(s) => s.length === 1 && s[0] === 'red'"), true},
		{"union", cond("$.data.tags[0,0]", "(s) => s.length === 2"), true},

		// Truthiness of the result.
		{"zero is false", cond("$.data.stock", "(s) => s"), false},
		{"empty string is false", cond("$.data.sku", "(s) => ''"), false},
		{"NaN is false", cond("$.data.sku", "(s) => Number(s)"), false},
		{"null is false", cond("$.data.sku", "(s) => null"), false},
		{"undefined is false", cond("$.data.sku", "(s) => {}"), false},
		{"empty array is true", cond("$.data.sku", "(s) => []"), true},
		{"empty object is true", cond("$.data.sku", "(s) => ({})"), true},
		{"non-empty string is true", cond("$.data.sku", "(s) => 'no'"), true},
		{"function result is true", cond("$.data.sku", "(s) => () => false"), true},

		// Condition forms.
		{"function expression", cond("$.data.tags", "function (v) { return v.includes('red') }"), true},
		{"named function expression", cond("$.data.tags", "function has(v) { return v.includes('blue') }"), false},
		{"arrow with block", cond("$.data.price", "v => { const n = Number(v); return n >= 100 && n < 200; }"), true},
		{"arrow with default and rest", cond("$.data.price", "(v, limit = 100, ...rest) => v > limit && rest.length === 0"), true},
		{"trailing line comment", cond("$.data.price", "(v) => v > 100 // cheap ones are dull"), true},
		{"multi-line", cond("$.data.price", "(v) => {\n  // over a hundred\n  return v > 100;\n}"), true},
		{"regexp literal", cond("$.data.name", "(n) => /^trail/i.test(n)"), true},
		{"lowercase logic", &pimhook.Filter{Logic: "or", Conditions: []*pimhook.Filter{no, yes}}, true},

		// Logic.
		{"and of true and true", and(yes, yes), true},
		{"and of true and false", and(yes, no), false},
		{"or of false and true", or(no, yes), true},
		{"or of false and false", or(no, no), false},
		{"default logic is and", &pimhook.Filter{Conditions: []*pimhook.Filter{yes, no}}, false},
		{"own check and children (and)", &pimhook.Filter{Query: "$.data.sku", Conditions: []*pimhook.Filter{yes}}, true},
		{"own check false (and)", &pimhook.Filter{Query: "$.data.missing", Conditions: []*pimhook.Filter{yes}}, false},
		{"own check false, child true (or)", &pimhook.Filter{Logic: "OR", Query: "$.data.missing", Conditions: []*pimhook.Filter{yes}}, true},
		{"own check true (or) skips failing children", &pimhook.Filter{Logic: "OR", Query: "$.data.sku", Conditions: []*pimhook.Filter{{Condition: "() => { throw new Error('not run') }"}}}, true},
		{"and stops at first false", and(no, &pimhook.Filter{Condition: "() => { throw new Error('not run') }"}), false},
		{"or stops at first true", or(yes, &pimhook.Filter{Condition: "() => { throw new Error('not run') }"}), true},
		{"three levels", and(
			&pimhook.Filter{Query: "$.data.status", Condition: "(s) => s === 'active'"},
			or(
				and(cond("$.data.stock", "(s) => s > 0"), &pimhook.Filter{Query: "$.data.sku"}),
				and(cond("$.data.preorder", "(p) => p === false"), or(no, cond("$.data.tags", "(t) => t.includes('sale')"))),
			),
		), true},
		{"three levels false", and(
			&pimhook.Filter{Query: "$.data.sku"},
			or(
				and(cond("$.data.stock", "(s) => s > 0"), yes),
				and(yes, or(no, cond("$.data.tags", "(t) => t.includes('blue')"))),
			),
		), false},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, shopPayload)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := e.Filter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Match(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMatchValues checks the JavaScript value a condition gets for each
// kind of JSON value.
func TestMatchValues(t *testing.T) {
	t.Parallel()
	payload := `{"s": "x\u00e9\ud83d\ude00", "n": "10", "i": 42, "neg": -7, "z": -0, "f": 1.50, "e": 1e3,
		"big": 12345678901234567890, "exact": 9007199254740993, "t": true, "nil": null,
		"o": {"toString": 1, "__proto__": 2, "constructor": 3}, "a": [1, "2", [3]], "dup": {"k": 1, "k": 2}}`
	tests := []struct {
		query, condition string
	}{
		{"$.s", "(v) => v === 'xé😀' && v.length === 4"},
		{"$.n", "(v) => v === '10' && typeof v === 'string'"},
		{"$.i", "(v) => v === 42"},
		{"$.neg", "(v) => v === -7"},
		{"$.z", "(v) => v === 0 && 1 / v === -Infinity"},
		{"$.f", "(v) => v === 1.5"},
		{"$.e", "(v) => v === 1000"},
		{"$.big", "(v) => v === 12345678901234567000"},
		{"$.exact", "(v) => v === 9007199254740992"},
		{"$.t", "(v) => v === true"},
		{"$.nil", "(v) => v === null"},
		{"$.o", "(v) => v.toString === 1 && v.constructor === 3 && Object.getPrototypeOf(v) === Object.prototype && Object.keys(v).join() === 'toString,__proto__,constructor'"},
		{"$.a", "(v) => Array.isArray(v) && v.length === 3 && v[1] === '2' && v[2][0] === 3"},
		{"$.dup", "(v) => v.k === 2 && Object.keys(v).length === 1"},
		{"$.o", "(v) => !Object.isFrozen(v) && (v.added = 1) === 1"},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, payload)
	for _, tt := range tests {
		t.Run(tt.query+" "+tt.condition, func(t *testing.T) {
			t.Parallel()
			f, err := e.Filter(cond(tt.query, tt.condition))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := f.Match(doc); !ok || err != nil {
				t.Errorf("Match = %v, %v; want true", ok, err)
			}
		})
	}
}

// TestMatchFreshValues checks that conditions cannot change what later
// conditions, or later evaluations, see.
func TestMatchFreshValues(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: testTimeout, Runtimes: 1, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, shopPayload)
	mutate, err := e.Filter(&pimhook.Filter{Condition: "(e) => { e.data.price = 1; e.data.tags.length = 0; delete e.data.sku; return true }"})
	if err != nil {
		t.Fatal(err)
	}
	check, err := e.Filter(and(
		cond("$.data.price", "(p) => p === 150"),
		&pimhook.Filter{Condition: "(e) => e.data.tags.length === 2 && e.data.sku === 'SHOE-42' && e.data.price === 150"},
	))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, err := mutate.Match(doc); !ok || err != nil {
			t.Fatalf("mutate: %v, %v", ok, err)
		}
		if ok, err := check.Match(doc); !ok || err != nil {
			t.Fatalf("check after mutate: %v, %v", ok, err)
		}
	}
}

// TestMatchErrors checks the errors of evaluations that fail, and where
// they say it happened.
func TestMatchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter *pimhook.Filter
		want   string
	}{
		{"throw at root", &pimhook.Filter{Condition: "(e) => { throw new Error('boom') }"}, "condition threw Error: boom (line 1, column 16)"},
		{"throw a string", &pimhook.Filter{Condition: "(e) => { throw 'plain' }"}, "condition threw plain"},
		{"throw an object", &pimhook.Filter{Condition: "(e) => { throw { code: 1 } }"}, "condition threw [object Object]"},
		{"throw a bad object", &pimhook.Filter{Condition: "(e) => { throw { toString() { throw 1 } } }"}, "condition threw a value whose toString failed"},
		{"type error nested", and(&pimhook.Filter{Query: "$.data"}, &pimhook.Filter{Condition: "(e) => e.nope.deeper"}),
			"conditions[1]: condition threw TypeError: Cannot read property 'deeper' of undefined"},
		{"deeply nested", and(&pimhook.Filter{Query: "$.data"}, or(cond("$.data.x", "(x) => false"), cond("$.data.y", "(y) => y.z"))),
			"conditions[1].conditions[1]: condition threw TypeError"},
		{"multi-line position", &pimhook.Filter{Condition: "(e) => {\n  const x = 1;\n  null.y;\n}"}, "TypeError: Cannot read property 'y' of undefined (line 3, column 8)"},
		{"reference error", &pimhook.Filter{Condition: "(e) => undefinedVariable > 1"}, "condition threw ReferenceError: undefinedVariable is not defined"},
		{"stack overflow", &pimhook.Filter{Condition: "function f(v) { return f(v) + 1 }"}, "condition exceeded the call stack limit of 256"},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, `{"data": {}}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := e.Filter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			ok, err := f.Match(doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Match = %v, %v; want an error containing %q", ok, err, tt.want)
			}
			if ok {
				t.Error("Match = true with an error")
			}
		})
	}
}

// TestFilterCache checks that compiling is cached by content and leaves
// the caller's filter alone.
func TestFilterCache(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: testTimeout, Cache: 2, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	in := &pimhook.Filter{Logic: "or", Conditions: []*pimhook.Filter{{Query: "  $.a  "}, {Condition: " (v) => v "}}}
	before, _ := json.Marshal(in)
	a, err := e.Filter(in)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(in)
	if string(before) != string(after) {
		t.Errorf("Filter changed its argument: %s → %s", before, after)
	}
	if err := e.CheckFilter(in, "f"); err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(in); string(before) != string(after) {
		t.Errorf("CheckFilter changed its argument: %s → %s", before, after)
	}
	var same pimhook.Filter
	if err := json.Unmarshal(before, &same); err != nil {
		t.Fatal(err)
	}
	b, err := e.Filter(&same)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("the same filter compiled twice gave two *Filter")
	}
	other, err := e.Filter(&pimhook.Filter{Query: "$.b"})
	if err != nil {
		t.Fatal(err)
	}
	if other == a {
		t.Error("different filters share a *Filter")
	}
	// The cache holds 2: compiling more evicts, and still works.
	for _, q := range []string{"$.c", "$.d", "$.e"} {
		if _, err := e.Filter(&pimhook.Filter{Query: q}); err != nil {
			t.Fatal(err)
		}
	}
	ok, err := a.Match(parse(t, `{"a": 1}`))
	if !ok || err != nil {
		t.Errorf("Match after eviction = %v, %v", ok, err)
	}
	r1, err := e.Reducer(json.RawMessage(`{"a": "$.a"}`))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.Reducer(json.RawMessage(`{"a": "$.a"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 {
		t.Error("the same reducer compiled twice gave two *Reducer")
	}
}

// TestConfigDefaults checks the defaults of Config.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := filter.Config{}.WithDefaults()
	if c.Timeout.String() != "25ms" || c.MaxMemory != 64<<20 || c.MaxStack != 256 || c.Runtimes < 2 || c.Cache != 4096 {
		t.Errorf("defaults = %+v", c)
	}
	set := filter.Config{Timeout: 1, MaxMemory: 2, MaxStack: 3, Runtimes: 4, Cache: 5}
	if got := set.WithDefaults(); !reflect.DeepEqual(got, set) {
		t.Errorf("WithDefaults changed set fields: %+v", got)
	}
}
