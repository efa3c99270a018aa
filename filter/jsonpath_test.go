package filter_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// storePayload is the document of the JSONPath tests.
const storePayload = `{
  "store": {
    "name": "Northpeak",
    "open": true,
    "rating": null,
    "books": [
      {"title": "Alpha", "price": 8.95, "tags": ["a", "x"], "isbn": "0-1"},
      {"title": "Beta", "price": 12, "tags": [], "author": {"name": "Bo"}},
      {"title": "Gamma", "price": 22.5, "tags": ["x"], "isbn": "0-3", "sale": false},
      {"title": "Delta", "price": 12.0, "tags": ["y", "x", "z"], "sale": true}
    ],
    "bike": {"color": "red", "price": 399}
  },
  "codes": [10, 20, 30, 40, 50],
  "odd keys": {"a.b": 1, "it's": 2, "q\"q": 3, "": 4, "é": 5, "😀": 6, "\\": 7, "tab\t": 8, "nl\n": 9, "cr\r": 10, "$": 11, "@": 12},
  "mixed": [1, "1", true, null, [1], {"a": 1}, 1.0, "one", false, 0]
}`

// TestJSONPath runs queries of every form of RFC 9535, grouped as the
// JSONPath compliance test suite groups them, through a reducer
// {"r": query}: a singular query gives a value or null, any other an array.
func TestJSONPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		group, query, want string
	}{
		{"root", "$", compact(storePayload)},

		{"name selector", "$.store.name", `"Northpeak"`},
		{"name selector", "$['store']['name']", `"Northpeak"`},
		{"name selector", `$["store"]["name"]`, `"Northpeak"`},
		{"name selector", "$.store.missing", `null`},
		{"name selector", "$.codes.name", `null`},
		{"name selector", "$['odd keys']['a.b']", `1`},
		{"name selector", `$['odd keys']['it\'s']`, `2`},
		{"name selector", `$['odd keys']["it's"]`, `2`},
		{"name selector", `$['odd keys']['q"q']`, `3`},
		{"name selector", `$['odd keys']["q\"q"]`, `3`},
		{"name selector", "$['odd keys']['']", `4`},
		{"name selector", "$['odd keys']['é']", `5`},
		{"name selector", `$['odd keys']['\u00e9']`, `5`},
		{"name selector", `$['odd keys']['\u00E9']`, `5`},
		{"name selector", "$['odd keys'].é", `5`},
		{"name selector", `$['odd keys']['\ud83d\ude00']`, `6`},
		{"name selector", "$['odd keys'].😀", `6`},
		{"name selector", `$['odd keys']['\\']`, `7`},
		{"name selector", `$['odd keys']['tab\t']`, `8`},
		{"name selector", `$['odd keys']['nl\n']`, `9`},
		{"name selector", `$['odd keys']['cr\r']`, `10`},
		{"name selector", `$['odd keys']["cr\u000d"]`, `10`},
		{"name selector", `$['odd keys']['\/']`, `null`},
		{"name selector", "$['odd keys']['$']", `11`},
		{"name selector", "$['odd keys']['@']", `12`},
		{"name selector", "$.store.books[0].title", `"Alpha"`},

		{"wildcard", "$.store.bike.*", `["red",399]`},
		{"wildcard", "$.store.bike[*]", `["red",399]`},
		{"wildcard", "$.codes[*]", `[10,20,30,40,50]`},
		{"wildcard", "$.codes.*", `[10,20,30,40,50]`},
		{"wildcard", "$.store.books[*].title", `["Alpha","Beta","Gamma","Delta"]`},
		{"wildcard", "$.store.name.*", `[]`},
		{"wildcard", "$.store.books[1].tags[*]", `[]`},
		{"wildcard", "$.store.books[*].author.*", `["Bo"]`},

		{"index selector", "$.codes[0]", `10`},
		{"index selector", "$.codes[4]", `50`},
		{"index selector", "$.codes[-1]", `50`},
		{"index selector", "$.codes[-5]", `10`},
		{"index selector", "$.codes[5]", `null`},
		{"index selector", "$.codes[-6]", `null`},
		{"index selector", "$.store[0]", `null`},
		{"index selector", "$.mixed[4][0]", `1`},

		{"slice selector", "$.codes[1:3]", `[20,30]`},
		{"slice selector", "$.codes[:2]", `[10,20]`},
		{"slice selector", "$.codes[3:]", `[40,50]`},
		{"slice selector", "$.codes[:]", `[10,20,30,40,50]`},
		{"slice selector", "$.codes[::2]", `[10,30,50]`},
		{"slice selector", "$.codes[1:4:2]", `[20,40]`},
		{"slice selector", "$.codes[::-1]", `[50,40,30,20,10]`},
		{"slice selector", "$.codes[4:1:-1]", `[50,40,30]`},
		{"slice selector", "$.codes[-2:]", `[40,50]`},
		{"slice selector", "$.codes[-10:2]", `[10,20]`},
		{"slice selector", "$.codes[10:20]", `[]`},
		{"slice selector", "$.codes[3:1]", `[]`},
		{"slice selector", "$.codes[0:5:0]", `[]`},
		{"slice selector", "$.store[0:1]", `[]`},

		{"descendant segment", "$..price", `[8.95,12,22.5,12.0,399]`},
		{"descendant segment", "$..name", `["Northpeak","Bo"]`},
		{"descendant segment", "$.store..title", `["Alpha","Beta","Gamma","Delta"]`},
		{"descendant segment", "$.store.books..tags[0]", `["a","x","y"]`},
		{"descendant segment", "$.store.bike..*", `["red",399]`},
		{"descendant segment", "$.store.bike..[*]", `["red",399]`},
		{"descendant segment", "$.codes..[0]", `[10]`},
		{"descendant segment", "$..['color','title']", `["Alpha","Beta","Gamma","Delta","red"]`},
		{"descendant segment", "$.mixed..a", `[1]`},

		{"filter, comparison", "$.store.books[?@.price > 10].title", `["Beta","Gamma","Delta"]`},
		{"filter, comparison", "$.store.books[?@.price == 12].title", `["Beta","Delta"]`},
		{"filter, comparison", "$.store.books[?@.price == 12.0].title", `["Beta","Delta"]`},
		{"filter, comparison", "$.store.books[?@.price == 1.2e1].title", `["Beta","Delta"]`},
		{"filter, comparison", "$.store.books[?@.price != 12].title", `["Alpha","Gamma"]`},
		{"filter, comparison", "$.store.books[?@.price < 12].title", `["Alpha"]`},
		{"filter, comparison", "$.store.books[?@.price <= 12].title", `["Alpha","Beta","Delta"]`},
		{"filter, comparison", "$.store.books[?@.price >= 22.5].title", `["Gamma"]`},
		{"filter, comparison", "$.store.books[?10 < @.price].title", `["Beta","Gamma","Delta"]`},
		{"filter, comparison", "$.store.books[?@.title > 'B'].title", `["Beta","Gamma","Delta"]`},
		{"filter, comparison", `$.store.books[?@.title == "Beta"].title`, `["Beta"]`},
		{"filter, comparison", "$.store.books[?@.isbn < '0-2'].title", `["Alpha"]`},
		{"filter, comparison", "$.store[?@ == null]", `[null]`},
		{"filter, comparison", "$.mixed[?@ == null]", `[null]`},
		{"filter, comparison", "$.store.books[?@.sale == true].title", `["Delta"]`},
		{"filter, comparison", "$.store.books[?@.sale == false].title", `["Gamma"]`},
		{"filter, comparison", "$.mixed[?@ == 1]", `[1,1.0]`},
		{"filter, comparison", "$.mixed[?@ == '1']", `["1"]`},
		{"filter, comparison", "$.mixed[?@ > 0]", `[1,1.0]`},
		{"filter, comparison", "$.mixed[?@ == false]", `[false]`},
		{"filter, comparison", "$.mixed[?@ == 0]", `[0]`},
		{"filter, comparison", "$.mixed[?@ == -0]", `[0]`},
		{"filter, comparison", "$.mixed[?@ < true]", `[]`},
		{"filter, comparison", "$.mixed[?@ == [1]]", ``}, // arrays are not literals
		{"filter, comparison", "$.store.books[?@.isbn == @.missing].title", `["Beta","Delta"]`},
		{"filter, comparison", "$.mixed[?@ == $.mixed[4]]", `[[1]]`},
		{"filter, comparison", "$.mixed[?@ == $.mixed[5]]", `[{"a":1}]`},
		{"filter, comparison", "$.store.books[?@.tags == $.store.books[2].tags].title", `["Gamma"]`},
		{"filter, comparison", "$[?@.x == 12345678901234567890]", `[]`},

		{"filter, logical", "$.store.books[?@.price > 10 && @.sale].title", `["Gamma","Delta"]`},
		{"filter, logical", "$.store.books[?@.price < 10 || @.author].title", `["Alpha","Beta"]`},
		{"filter, logical", "$.store.books[?!@.isbn].title", `["Beta","Delta"]`},
		{"filter, logical", "$.store.books[?!(@.price > 10 && @.price < 20)].title", `["Alpha","Gamma"]`},
		{"filter, logical", "$.store.books[?@.price < 10 || @.price > 20 && @.sale == false].title", `["Alpha","Gamma"]`},
		{"filter, logical", "$.store.books[?(@.price < 10 || @.price > 20) && @.sale == false].title", `["Gamma"]`},
		{"filter, logical", "$.store.books[?((@.price == 12))].title", `["Beta","Delta"]`},

		{"filter, existence", "$.store.books[?@.author].title", `["Beta"]`},
		{"filter, existence", "$.store.books[?@.sale].title", `["Gamma","Delta"]`},
		{"filter, existence", "$.store.books[?@.tags[0]].title", `["Alpha","Gamma","Delta"]`},
		{"filter, existence", "$.store.books[?@.tags[*]].title", `["Alpha","Gamma","Delta"]`},
		{"filter, existence", "$.store.books[?@..name].title", `["Beta"]`},
		{"filter, existence", "$.store[?@.color]", `[{"color":"red","price":399}]`},
		{"filter, existence", "$.store.bike[?@ == 'red']", `["red"]`},

		{"filter, absolute query", "$.store.books[?@.price > $.codes[0]].title", `["Beta","Gamma","Delta"]`},
		{"filter, absolute query", "$.codes[?@ > $.store.books[1].price]", `[20,30,40,50]`},
		{"filter, absolute query", "$.store.books[?$.store.open].title", `["Alpha","Beta","Gamma","Delta"]`},
		{"filter, absolute query", "$.store.books[?$.store.missing].title", `[]`},
		{"filter, absolute query", "$.store.books[?$..bike].title", `["Alpha","Beta","Gamma","Delta"]`},

		{"filter, nested", "$.store.books[?@.tags[?@ == 'z']].title", `["Delta"]`},
		{"filter, nested", "$.store.books[?@.tags[?@ == 'x']].title", `["Alpha","Gamma","Delta"]`},

		{"functions, length", "$.store.books[?length(@.tags) >= 2].title", `["Alpha","Delta"]`},
		{"functions, length", "$.store.books[?length(@.title) == 4].title", `["Beta"]`},
		{"functions, length", "$.store.books[?length(@.author) == 1].title", `["Beta"]`},
		{"functions, length", "$.store.books[?length(@.price) == 1].title", `[]`},
		{"functions, length", "$['odd keys'][?length(@) == 1]", `[]`},
		{"functions, count", "$.store.books[?count(@.tags[*]) == 1].title", `["Gamma"]`},
		{"functions, count", "$.store.books[?count(@.*) == 5].title", `["Gamma"]`},
		{"functions, count", "$.store.books[?count(@..*) >= 7].title", `["Delta"]`},
		{"functions, match", "$.store.books[?match(@.title, '[AB].*')].title", `["Alpha","Beta"]`},
		{"functions, match", "$.store.books[?match(@.title, 'lph')].title", `[]`},
		{"functions, match", "$.store.books[?match(@.price, '8.*')].title", `[]`},
		{"functions, search", "$.store.books[?search(@.title, 'lph')].title", `["Alpha"]`},
		{"functions, search", "$.store.books[?search(@.isbn, '^0-')].title", `["Alpha","Gamma"]`},
		{"functions, search", "$.store.books[?search(@.title, $.store.books[2].title)].title", `["Gamma"]`},
		{"functions, search", "$.store.books[?!search(@.isbn, '^0-')].title", `["Beta","Delta"]`},
		{"functions, search", "$.store.books[?search(@.title, @.missing)].title", `[]`},
		{"functions, match", "$.store.books[?match(@.isbn, '0-.')].title", `["Alpha","Gamma"]`},
		{"functions, match", "$.store.books[?match(@.isbn, '0-.') || @.sale].title", `["Alpha","Gamma","Delta"]`},
		{"functions, match", "$.store.books[?match(@.title, 'match(')].title", `[]`},
		{"functions, value", "$.store.books[?value(@.author.name) == 'Bo'].title", `["Beta"]`},
		{"functions, value", "$.store.books[?value(@.tags[*]) == 'x'].title", `["Gamma"]`},
		{"functions, value", "$.store.books[?value(@..name) == 'Bo'].title", `["Beta"]`},

		{"union", "$.codes[0,2]", `[10,30]`},
		{"union", "$.codes[0,0]", `[10,10]`},
		{"union", "$.codes[-1,1]", `[50,20]`},
		{"union", "$.codes[4,0:2]", `[50,10,20]`},
		{"union", "$.store['name','open']", `["Northpeak",true]`},
		{"union", `$.store['open',"name"]`, `[true,"Northpeak"]`},
		{"union", "$.store.books[?@.price < 10, ?@.price > 20].title", `["Alpha","Gamma"]`},
		{"union", "$.store.bike['color',*]", `["red","red",399]`},

		{"whitespace", "$.store.books[? @.price > 10 ].title", `["Beta","Gamma","Delta"]`},
		{"whitespace", "$.store.books[?@.price>10].title", `["Beta","Gamma","Delta"]`},
		{"whitespace", "$.codes[ 0 , 2 ]", `[10,30]`},
		{"whitespace", "$.codes [0]", `10`},
		{"whitespace", "$\n.codes\t[1]", `20`},
		{"whitespace", "$.codes[ 1 : 3 ]", `[20,30]`},
		{"whitespace", "$.store.books[?@.price > 10\n&&\n@.sale].title", `["Gamma","Delta"]`},
		{"whitespace", "$.store.books[?length( @.tags ) == 3].title", `["Delta"]`},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, storePayload)
	for _, tt := range tests {
		t.Run(tt.group+" "+tt.query, func(t *testing.T) {
			t.Parallel()
			r, err := e.Reducer(reducerOf(t, tt.query))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("query compiled, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Apply(doc)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"r":` + tt.want + `}`; string(out) != want {
				t.Errorf("Apply = %s, want %s", out, want)
			}
		})
	}
}

// TestJSONPathInvalid checks that invalid queries are refused at compile
// time, in filters and in reducers.
func TestJSONPathInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct{ query, want string }{
		{"$.", "column 3: unexpected end of input"},
		{"$..", "column 3"},
		{"$[", ""},
		{"$['a", "unterminated string"},
		{"$['a']]", ""},
		{"$.codes[01]", ""},
		{"$.codes[-0]", ""},
		{"$.codes[1.0]", ""},
		{"$.codes[9007199254740992]", ""},
		{"$.codes[1:2:3:4]", ""},
		{" $.a", ""},
		{"$.a ", ""},
		{"@.a", ""},
		{"a", ""},
		{"$a", ""},
		{"$.a b", ""},
		{"$.1a", ""},
		{`$['\x']`, "invalid escape"},
		{`$["\'"]`, "invalid escape"},
		{`$['\u12']`, "invalid \\u escape"},
		{`$['\ud800']`, "surrogate"},
		{`$['\udc00\ud800']`, "surrogate"},
		{"$['tab\t']", "control character"},
		{"$[?@.a = 1]", ""},
		{"$[?@.a === 1]", ""},
		{"$[?@.a == $..b]", ""},
		{"$[?@.a == @.*]", ""},
		{"$[?@.a == @[0:1]]", ""},
		{"$[?length(@.*) > 1]", ""},
		{"$[?length(@.a)]", ""},
		{"$[?match(@.a, 'x') == true]", ""},
		{"$[?count(@.a) == 1 == true]", ""},
		{"$[?foo(@)]", ""},
		{"$[?(@.a]", ""},
		{"$[?@.a <]", ""},
		{"$[?]", ""},
		{"$[?@.a ~ 1]", ""},
		{"$[?@.a in [1]]", ""},
		{"$..*..", ""},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			if tt.query[0] == '$' {
				// Other strings are literals in a reducer.
				err := e.CheckReducer(reducerOf(t, tt.query), "reducer_configuration")
				checkFieldError(t, err, pimhook.CodeInvalidReducer, "reducer_configuration.r", "invalid JSONPath query")
				checkFieldError(t, err, pimhook.CodeInvalidReducer, "reducer_configuration.r", tt.want)
			}
			err := e.CheckFilter(&pimhook.Filter{Conditions: []*pimhook.Filter{{Query: "$.a"}, {Query: tt.query, Condition: "(v) => v"}}}, "filter_configuration")
			if tt.query == " $.a" || tt.query == "$.a " {
				// Normalize trims queries; the reducer has no Normalize.
				if err != nil {
					t.Errorf("CheckFilter = %v, want nil for a query with blank space around", err)
				}
				return
			}
			checkFieldError(t, err, pimhook.CodeInvalidFilter, "filter_configuration.conditions[1].query", tt.want)
		})
	}
}

// reducerOf returns the reducer {"r": query}.
func reducerOf(t *testing.T, query string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]string{"r": query})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compact(s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(err)
	}
	return b.String()
}
