package change_test

import (
	"bytes"
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/pimhook/pimhook/change"
)

// blank reports an empty document: no bytes, or only JSON whitespace.
func blank(b []byte) bool { return len(bytes.Trim(b, " \t\r\n")) == 0 }

// noData reports a document that holds no fields: empty, or a top-level null.
func noData(b []byte) bool { return blank(b) || string(bytes.Trim(b, " \t\r\n")) == "null" }

// hugeExponent matches exponents too large to compare as big.Rat values.
var hugeExponent = regexp.MustCompile(`[eE][+-]?0*[0-9]{4,}`)

// refEqual is the reference for Equal: the documents decoded by
// encoding/json, numbers compared exactly as rationals.
func refEqual(t *testing.T, a, b []byte) bool {
	va, vb := refDecode(t, a), refDecode(t, b)
	_, objA := va.(map[string]any)
	_, objB := vb.(map[string]any)
	if noData(a) && (noData(b) || objB) || noData(b) && objA {
		return len(asMap(va)) == 0 && len(asMap(vb)) == 0
	}
	if noData(a) || noData(b) {
		return false
	}
	return refValueEqual(t, va, vb)
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func refDecode(t *testing.T, b []byte) any {
	if blank(b) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("reference decode of %q: %v", b, err)
	}
	return v
}

func refValueEqual(t *testing.T, a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !refValueEqual(t, va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !refValueEqual(t, a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, okA := new(big.Rat).SetString(string(a))
		rb, okB := new(big.Rat).SetString(string(b))
		if !okA || !okB {
			t.Fatalf("big.Rat cannot read %s or %s", a, b)
		}
		return ra.Cmp(rb) == 0
	}
	return a == b // nil, bool, string
}

func FuzzDiff(f *testing.F) {
	seeds := []string{
		``, `null`, `{}`, `[]`, `1`, `"x"`, `true`,
		`{"a":1}`, `{"a":1.0}`, `{"a":1e0}`, `{"a":-0}`, `{"a":"1"}`, `{"a":null}`,
		`{"a":{"b":1}}`, `{"a":{"b":2,"c":[1,2]}}`, `{"a.b":{"c\\d":1}}`, `{"":{"":1}}`,
		`{"a":[1,{"x":1,"y":2}]}`, `{"a":[{"y":2,"x":1.00},1]}`,
		`{"id":9007199254740993}`, `{"id":9007199254740992}`, `{"n":1e400}`, `{"n":10e399}`,
		`{"s":"Gr\u00fc\u00dfe"}`, `{"s":"Grüße"}`, `{"s":"\ud83d\ude00"}`, `{"s":"\ud800"}`, "{\"s\":\"\xff\"}",
		`{"a":1,"a":2}`, `{"b":2,"a":1}`, ` { "a" : [ 1 , 2 ] } `,
		`{"a":`, `{"a":1,}`, `[1,]`, `01`, `"\x"`,
	}
	for _, a := range seeds {
		for _, b := range seeds[:12] {
			f.Add([]byte(a), []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		validA := blank(a) || json.Valid(a)
		validB := blank(b) || json.Valid(b)
		changes, err := change.Diff(a, b)
		if (err == nil) != (validA && validB) {
			t.Fatalf("Diff(%q, %q) error = %v, but valid = %v, %v", a, b, err, validA, validB)
		}
		if err != nil {
			return
		}

		for _, doc := range [][]byte{a, b} {
			if self, err := change.Diff(doc, doc); err != nil || len(self) != 0 {
				t.Fatalf("Diff(%q, itself) = %v, %v", doc, self, err)
			}
		}

		equal, err := change.Equal(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if equal != (len(changes) == 0) {
			t.Fatalf("Equal(%q, %q) = %v, but Diff found %d changes", a, b, equal, len(changes))
		}
		if !hugeExponent.Match(a) && !hugeExponent.Match(b) {
			if want := refEqual(t, a, b); equal != want {
				t.Fatalf("Equal(%q, %q) = %v, reference says %v", a, b, equal, want)
			}
		}

		for i, c := range changes {
			if i > 0 && changes[i-1].Name >= c.Name {
				t.Fatalf("names not sorted and unique: %q then %q", changes[i-1].Name, c.Name)
			}
			for _, v := range []json.RawMessage{c.From, c.To} {
				var compact bytes.Buffer
				if err := json.Compact(&compact, v); err != nil || !bytes.Equal(compact.Bytes(), v) {
					t.Fatalf("change %q has a value that is not compact JSON: %q", c.Name, v)
				}
			}
			if c.FromMissing && string(c.From) != "null" || c.ToMissing && string(c.To) != "null" {
				t.Fatalf("missing side is not null: %+v", c)
			}
			if c.FromMissing && c.ToMissing {
				t.Fatalf("change missing on both sides: %+v", c)
			}
		}

		// Diff(b, a) is Diff(a, b) with the sides swapped.
		back, err := change.Diff(b, a)
		if err != nil || len(back) != len(changes) {
			t.Fatalf("Diff(b, a) = %d changes, %v; Diff(a, b) = %d", len(back), err, len(changes))
		}
		for i, c := range changes {
			r := back[i]
			if r.Name != c.Name || !bytes.Equal(r.From, c.To) || !bytes.Equal(r.To, c.From) ||
				r.FromMissing != c.ToMissing || r.ToMissing != c.FromMissing {
				t.Fatalf("Diff(b, a)[%d] = %+v, not the mirror of %+v", i, r, c)
			}
		}

		ca, err := change.Canonical(a)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := change.Canonical(b)
		if err != nil {
			t.Fatal(err)
		}
		if !blank(a) {
			if !json.Valid(ca) {
				t.Fatalf("Canonical(%q) = %q, not valid JSON", a, ca)
			}
			if again, _ := change.Canonical(ca); !bytes.Equal(again, ca) {
				t.Fatalf("Canonical is not idempotent: %q then %q", ca, again)
			}
			if same, _ := change.Equal(a, ca); !same {
				t.Fatalf("Canonical(%q) = %q, not Equal to its input", a, ca)
			}
		}
		if !noData(a) && !noData(b) && bytes.Equal(ca, cb) != equal {
			t.Fatalf("Canonical(%q) = %q and Canonical(%q) = %q, but Equal = %v", a, ca, b, cb, equal)
		}
	})
}

// TestValidity checks that a document is accepted exactly when encoding/json
// accepts it.
func TestValidity(t *testing.T) {
	t.Parallel()
	docs := []string{
		`{}`, `[]`, `""`, `0`, `-0`, `-`, `1.`, `.5`, `1e`, `1e+`, `1E-5`, `01`, `-01`, `1.5e3`,
		`true`, `tru`, `truex`, `nul`, `null `, ` null`, `falsey`,
		`{"a" 1}`, `{"a":1 "b":2}`, `{,}`, `{"a":1,}`, `[,]`, `[1 2]`, `[1,]`, `{1:2}`,
		`"\u12"`, `"\u123g"`, `"\uABCD"`, `"\q"`, "\"\t\"", "\"\x7f\"", "\"\xff\xfe\"", `"unterminated`,
		"\ufeff{}", `{}}`, `[]]`, `{"a":{"b":[{"c":null}]}}`, "{\"a\":1}\n",
	}
	for _, d := range docs {
		_, err := change.Canonical(json.RawMessage(d))
		if want := json.Valid([]byte(d)); (err == nil) != want {
			t.Errorf("Canonical(%q) error = %v, json.Valid = %v", d, err, want)
		}
	}
}

func TestNestingLimit(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{10000, 10001} {
		for _, open := range []string{"[", `{"a":`} {
			closer := "]"
			if open != "[" {
				closer = "}"
			}
			doc := strings.Repeat(open, depth) + "1" + strings.Repeat(closer, depth)
			_, err := change.Canonical(json.RawMessage(doc))
			if want := json.Valid([]byte(doc)); (err == nil) != want {
				t.Errorf("depth %d of %s: error = %v, json.Valid = %v", depth, open, err, want)
			}
		}
	}
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	deeper := strings.Repeat(`{"a":`, 10000) + "2" + strings.Repeat("}", 10000)
	changes, err := change.Diff(json.RawMessage(deep), json.RawMessage(deeper))
	if err != nil || len(changes) != 1 || changes[0].Name != strings.TrimSuffix(strings.Repeat("a.", 10000), ".") {
		t.Fatalf("deep Diff: %d changes, %v", len(changes), err)
	}
}
