package jsontext

import (
	"encoding/json"
	"testing"
)

// TestEscapesDecode checks that every escape decodes back to its character.
func TestEscapesDecode(t *testing.T) {
	for c := range 0x80 {
		s := "\"" + string(AppendEscape(nil, byte(c))) + "\""
		var got string
		if err := json.Unmarshal([]byte(s), &got); err != nil || got != string(rune(c)) {
			t.Errorf("escape of %#x: %s decodes to %q, %v", c, s, got, err)
		}
	}
	for _, r := range []rune{'\u2028', '\u2029'} {
		s := "\"" + string(AppendSeparatorEscape(nil, r)) + "\""
		var got string
		if err := json.Unmarshal([]byte(s), &got); err != nil || got != string(r) {
			t.Errorf("escape of %U: %s decodes to %q, %v", r, s, got, err)
		}
	}
}
