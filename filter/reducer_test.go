package filter_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

func TestApply(t *testing.T) {
	t.Parallel()
	payload := `{"data": {"sku": "SHOE-42", "price": 1.50, "big": 12345678901234567890, "exp": 1E+2, "neg": -0.0,
		"tags": ["red", "sale"], "empty": [], "none": {}, "nil": null, "flag": false,
		"text": "a\"b\\c\n\u0001\u2028é😀</script>",
		"variants": [{"sku": "A", "stock": 0}, {"sku": "B", "stock": 4}]}}`
	tests := []struct {
		name, reducer, want string
	}{
		{"literals kept", `{"n": 1.50, "i": 12345678901234567890, "e": 1e2, "t": true, "f": false, "z": null, "s": "plain", "u": "\u00e9"}`,
			`{"n":1.50,"i":12345678901234567890,"e":1e2,"t":true,"f":false,"z":null,"s":"plain","u":"é"}`},
		{"singular query", `{"sku": "$.data.sku"}`, `{"sku":"SHOE-42"}`},
		{"number text kept", `{"p": "$.data.price", "b": "$.data.big", "x": "$.data.exp", "n": "$.data.neg"}`,
			`{"p":1.50,"b":12345678901234567890,"x":1E+2,"n":-0.0}`},
		{"singular no match is null", `{"d": "$.data.discount", "i": "$.data.tags[9]"}`, `{"d":null,"i":null}`},
		{"singular null", `{"n": "$.data.nil"}`, `{"n":null}`},
		{"non-singular is an array", `{"skus": "$.data.variants[*].sku", "in": "$.data.variants[?@.stock > 0].sku"}`, `{"skus":["A","B"],"in":["B"]}`},
		{"non-singular no match is empty", `{"none": "$.data.variants[?@.stock > 10]"}`, `{"none":[]}`},
		{"objects and arrays selected", `{"v": "$.data.variants[0]", "e": "$.data.empty", "o": "$.data.none"}`, `{"v":{"sku":"A","stock":0},"e":[],"o":{}}`},
		{"nested objects", `{"product": {"id": "$.data.sku", "meta": {"tags": "$.data.tags", "source": "pim"}}}`,
			`{"product":{"id":"SHOE-42","meta":{"tags":["red","sale"],"source":"pim"}}}`},
		{"arrays walked", `{"list": ["$.data.sku", 1, ["$.data.tags[0]", "x"], {"k": "$.data.flag"}]}`, `{"list":["SHOE-42",1,["red","x"],{"k":false}]}`},
		{"key order kept", `{"z": 1, "a": "$.data.sku", "m": 2, "b": 3}`, `{"z":1,"a":"SHOE-42","m":2,"b":3}`},
		{"keys with escapes", `{"a\"b": 1, "é": 2, "\u00e9x": 3, "": 4}`, `{"a\"b":1,"é":2,"éx":3,"":4}`},
		{"strings escaped", `{"t": "$.data.text"}`, `{"t":"a\"b\\c\n\u0001\u2028é😀</script>"}`},
		{"dollar strings only", `{"a": "price in $", "b": " $.data.sku", "c": "$"}`, `{"a":"price in $","b":" $.data.sku","c":{"data":{"sku":"SHOE-42","price":1.50,"big":12345678901234567890,"exp":1E+2,"neg":-0.0,"tags":["red","sale"],"empty":[],"none":{},"nil":null,"flag":false,"text":"a\"b\\c\n\u0001\u2028é😀</script>","variants":[{"sku":"A","stock":0},{"sku":"B","stock":4}]}}}`},
		{"empty reducer", `{}`, `{}`},
		{"whitespace", " {\n\t\"a\" : \"$.data.sku\" ,\"b\":[ 1 , 2 ]\n} ", `{"a":"SHOE-42","b":[1,2]}`},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, payload)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := e.Reducer(json.RawMessage(tt.reducer))
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Apply(doc)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("Apply =\n%s\nwant\n%s", out, tt.want)
			}
			if !json.Valid(out) {
				t.Errorf("Apply gave invalid JSON %s", out)
			}
		})
	}
}

func TestCheckReducer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, reducer, field, want string
	}{
		{"not an object", `["$.a"]`, "reducer_configuration", "must be a JSON object"},
		{"a string", `"$.a"`, "reducer_configuration", "must be a JSON object"},
		{"invalid JSON", `{"a": }`, "reducer_configuration", "must be a JSON object"},
		{"empty", ``, "reducer_configuration", "must be a JSON object"},
		{"too large", `{"a": "` + strings.Repeat("x", pimhook.MaxReducerBytes) + `"}`, "reducer_configuration", "larger than"},
		{"bad query", `{"a": "$.["}`, "reducer_configuration.a", "invalid JSONPath query"},
		{"bad nested query", `{"product": {"sku": "$.data[sku]"}}`, "reducer_configuration.product.sku", "invalid JSONPath query at column 8"},
		{"bad query in array", `{"list": [1, {"x": ["$$"]}]}`, "reducer_configuration.list[1].x[0]", "invalid JSONPath query at column 2"},
		{"odd key", `{"a b": {"c.d": "$["}}`, `reducer_configuration["a b"]["c.d"]`, "invalid JSONPath query"},
		{"repeated key", `{"a": 1, "b": {"c": 1, "c": 2}}`, "reducer_configuration.b.c", `key "c" appears twice`},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := e.CheckReducer(json.RawMessage(tt.reducer), "reducer_configuration")
			checkFieldError(t, err, pimhook.CodeInvalidReducer, tt.field, tt.want)
			_, err = e.Reducer(json.RawMessage(tt.reducer))
			if err == nil {
				t.Error("Reducer compiled what CheckReducer refused")
			}
		})
	}
}

// TestApplyLimits checks that a reducer whose output would exceed the
// memory budget fails with ErrMemory.
func TestApplyLimits(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: 64 << 10})
	t.Cleanup(e.Close)
	doc := parse(t, `{"s": "`+strings.Repeat("x", 40<<10)+`"}`)
	r, err := e.Reducer(json.RawMessage(`{"a": "$.s", "b": "$.s", "c": ["$..*"]}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Apply(doc)
	if !errors.Is(err, filter.ErrMemory) || out != nil {
		t.Fatalf("Apply = %d bytes, %v; want ErrMemory", len(out), err)
	}
	if want := "output is larger than 64 KiB"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
}
