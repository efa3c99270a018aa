package http

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// TestTopLevelKeys: the quick key scan agrees with encoding/json on every
// object, whatever its values hold, and refuses what is not an object.
func TestTopLevelKeys(t *testing.T) {
	t.Parallel()
	objects := []string{
		`{}`,
		` { } `,
		`{"a":1}`,
		"{\n\t\"a\" : 1 ,\r\n \"b\":\"x\"\n}",
		`{"events":[{"id":"1","data":{"}":"{","]":[1,2,{"x":"\"}"}]}}],"id":null}`,
		`{"esc\"aped":true,"uni\u00e9":false,"tab\t":-1.5e+3}`,
		`{"s":"a\\","t":"\\\"","n":{"deep":[[[[]]]]}}`,
		`{"a":1,"a":2}`,
		`{"data":"{\"not\":\"a key\"}","b":[]}`,
		"{\"a\":1} \n\t",
	}
	for _, in := range objects {
		got, ok := topLevelKeys([]byte(in))
		if !ok {
			t.Errorf("%s: not taken for an object", in)
			continue
		}
		want := jsonKeys(t, in)
		if !slices.Equal(got, want) {
			t.Errorf("%s: keys %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{`, `{"a"`, `{"a":`, `{"a":1`, `{"a" 1}`, `{a:1}`, `{"a":1,}x`, `{"a":"unterminated}`, `{"a":[1,2}`, `{"events":[]} x`, `{} {}`, `{"a":1}}`} {
		if keys, ok := topLevelKeys([]byte(in)); ok {
			t.Errorf("%s: taken for an object with keys %q", in, keys)
		}
	}
}

func jsonKeys(t *testing.T, in string) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(in)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v", in, err)
	}
	keys := []string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
