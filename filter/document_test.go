package filter_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pimhook/pimhook/filter"
)

func TestParse(t *testing.T) {
	t.Parallel()
	// Each payload parses, and a reducer selecting it all gives it back
	// compact, with its numbers' text and its members' order.
	tests := []struct{ payload, want string }{
		{`{}`, `{}`},
		{` { "a" : [ 1 , 2.50 , -0 , 1e2 , 1E-2 , 12345678901234567890 ] } `, `{"a":[1,2.50,-0,1e2,1E-2,12345678901234567890]}`},
		{`{"z": 1, "a": 2}`, `{"z":1,"a":2}`},
		{`{"k": 1, "x": 0, "k": 2}`, `{"k":2,"x":0}`},
		{`{"s": "\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`, `{"s":"\"\\/\b\f\n\r\té😀"}`},
		{`{"s": "\ud800"}`, `{"s":"�"}`},
		{"{\"s\": \"\xff\"}", `{"s":"�"}`},
		{`{"t": true, "f": false, "n": null, "e": [], "o": {}}`, `{"t":true,"f":false,"n":null,"e":[],"o":{}}`},
		{`{"nested": [[[{"a": [{}]}]]]}`, `{"nested":[[[{"a":[{}]}]]]}`},
	}
	e := filter.New(filter.Config{Timeout: testTimeout, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	r, err := e.Reducer(json.RawMessage(`{"r": "$"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			t.Parallel()
			out, err := r.Apply(parse(t, tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"r":` + tt.want + `}`; string(out) != want {
				t.Errorf("Apply = %s, want %s", out, want)
			}
		})
	}
	t.Run("many members", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		b.WriteString(`{`)
		for i := range 40 {
			b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `": 1, `)
		}
		b.WriteString(`"ka": 2}`)
		out, err := r.Apply(parse(t, b.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(out), `{"r":{"kaa":1,`) || !strings.Contains(string(out), `"ka":2`) || strings.Count(string(out), `"ka"`) != 1 {
			t.Errorf("Apply = %s", out)
		}
	})
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ payload, want string }{
		{``, "empty document"},
		{`   `, "empty document"},
		{`{`, "offset 1: expected a member name, found end of input"},
		{`{"a" 1}`, "offset 5: expected ':'"},
		{`{"a": 1,}`, "offset 8: expected a member name"},
		{`[1,]`, "offset 3: unexpected ']'"},
		{`[1 2]`, "offset 3: expected ',' or ']'"},
		{`{"a": 1} x`, "offset 9: unexpected 'x' after the document"},
		{`01`, "offset 1: unexpected '1' after the document"},
		{`1.`, "no digits after '.'"},
		{`1e`, "no digits in the exponent"},
		{`-`, "invalid number"},
		{`+1`, "unexpected '+'"},
		{`tru`, "unexpected 't'"},
		{`"a`, "unterminated string"},
		{"\"a\tb\"", "control character U+0009"},
		{`"\x"`, `invalid escape '\x'`},
		{`"\u12"`, `invalid \u escape`},
		{`NaN`, "unexpected 'N'"},
		{strings.Repeat("[", 10001) + strings.Repeat("]", 10001), "nested more than 10000 levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.payload[:min(len(tt.payload), 20)], func(t *testing.T) {
			t.Parallel()
			doc, err := filter.Parse([]byte(tt.payload))
			if err == nil || doc != nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, %v; want an error containing %q", doc, err, tt.want)
			}
		})
	}
}
