package change

import (
	"encoding/json"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/pimhook/pimhook/internal/jsontext"
)

// Canonical returns the canonical encoding of a JSON document: no
// whitespace, object members sorted by name (byte order of their UTF-8
// text) with only the last of a repeated name kept, strings decoded and
// re-encoded with the fewest escapes, and numbers in one normal form (see
// docs/diff.md). Two documents have the same canonical encoding exactly when
// they are the same JSON value, so the result is a stable fingerprint input.
//
// An empty document (no bytes, or only whitespace) gives an empty result. It
// and a top-level null are kept apart here, although Equal and Diff treat
// both, and {}, as a document with no fields. Invalid JSON is a KindInvalid
// *pimhook.Error.
func Canonical(v json.RawMessage) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(v)), v)
}

// AppendCanonical appends the canonical encoding of v to dst, so that a
// caller canonicalising many documents can reuse one buffer. An empty
// document appends nothing.
func AppendCanonical(dst []byte, v json.RawMessage) ([]byte, error) {
	w := getWalker()
	defer putWalker(w)
	if err := w.a.parse(v); err != nil {
		return dst, invalid("document", err)
	}
	if w.a.root < 0 {
		return dst, nil
	}
	return w.appendCanonical(dst, w.a.root), nil
}

func (w *walker) appendCanonical(dst []byte, i int) []byte {
	d := w.a
	n := &d.nodes[i]
	switch n.kind {
	case kindNumber:
		return appendNumber(dst, d.raw(i))
	case kindString:
		if !n.flag {
			return append(dst, d.raw(i)...)
		}
		w.strA = appendUnquoted(w.strA[:0], d.src[n.start+1:n.end-1])
		return appendQuoted(dst, w.strA)
	case kindArray:
		dst = append(dst, '[')
		for j, k := range d.children(i) {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = w.appendCanonical(dst, k)
		}
		return append(dst, ']')
	case kindObject:
		dst = append(dst, '{')
		for j, k := range d.children(i) {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendQuoted(dst, d.nodes[k].key)
			dst = append(dst, ':')
			dst = w.appendCanonical(dst, k)
		}
		return append(dst, '}')
	}
	return append(dst, d.raw(i)...) // null, true, false
}

// AppendString appends s as a JSON string spelled as the canonical form
// spells strings, so that a quoted name can be matched against canonical
// documents byte for byte. Invalid UTF-8 becomes U+FFFD, as encoding/json
// decodes it.
func AppendString(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		return appendQuoted(dst, s)
	}
	valid := make([]byte, 0, len(s)+8)
	for _, r := range s { // ranging a string yields U+FFFD for each invalid byte
		valid = utf8.AppendRune(valid, r)
	}
	return appendQuoted(dst, valid)
}

// appendQuoted appends s, valid UTF-8, as a JSON string escaping only what
// must be escaped: the quote, the backslash and control characters.
func appendQuoted[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = jsontext.AppendEscape(append(dst, s[start:i]...), c)
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendNumber appends the normal form of a checked JSON number. Equal
// decimal values, however written, get the same form:
//
//   - zero, negative or not, is 0;
//   - otherwise the significant digits d1 d2 ... dn (no leading or trailing
//     zeros) and the decimal exponent E with value 0.d1d2...dn × 10^E give
//     plain notation when -6 < E <= 21 (123, 1.5, 0.001) and
//     d1.d2...dn e(E-1) otherwise (1e21, 1.5e-7), with a '-' sign when
//     negative and no '+'.
func appendNumber(dst, num []byte) []byte {
	neg := num[0] == '-'
	if neg {
		num = num[1:]
	}
	intEnd, fracEnd := len(num), len(num)
	for i, c := range num {
		if c == '.' && intEnd == len(num) {
			intEnd = i
		}
		if c == 'e' || c == 'E' {
			fracEnd = i
			if intEnd == len(num) {
				intEnd = i
			}
			break
		}
	}
	var buf [64]byte
	digits := append(buf[:0], num[:intEnd]...)
	if intEnd < fracEnd {
		digits = append(digits, num[intEnd+1:fracEnd]...)
	}
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	digits = digits[lead:]
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		return append(dst, '0')
	}
	if neg {
		dst = append(dst, '-')
	}
	point := int64(intEnd - lead) // value = 0.digits × 10^(point+exp)

	var expText []byte // the exponent's digits, without leading zeros
	expNeg := false
	if fracEnd < len(num) {
		expText = num[fracEnd+1:]
		if expText[0] == '+' || expText[0] == '-' {
			expNeg = expText[0] == '-'
			expText = expText[1:]
		}
		for len(expText) > 0 && expText[0] == '0' {
			expText = expText[1:]
		}
	}
	if len(expText) > 15 {
		// Beyond int64 arithmetic; such an exponent is never in plain range.
		e, _ := new(big.Int).SetString(string(expText), 10)
		if expNeg {
			e.Neg(e)
		}
		e.Add(e, big.NewInt(point-1))
		dst = appendScientific(dst, digits)
		return e.Append(dst, 10)
	}
	var exp int64
	for _, c := range expText {
		exp = exp*10 + int64(c-'0')
	}
	if expNeg {
		exp = -exp
	}
	e := point + exp
	n := int64(len(digits))
	switch {
	case e > 0 && e <= 21:
		if n <= e {
			dst = append(dst, digits...)
			for ; n < e; n++ {
				dst = append(dst, '0')
			}
			return dst
		}
		dst = append(dst, digits[:e]...)
		dst = append(dst, '.')
		return append(dst, digits[e:]...)
	case e <= 0 && e > -6:
		dst = append(dst, '0', '.')
		for ; e < 0; e++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = appendScientific(dst, digits)
	return strconv.AppendInt(dst, e-1, 10)
}

// appendScientific appends d1[.d2...dn]e, the exponent left to the caller.
func appendScientific(dst, digits []byte) []byte {
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	return append(dst, 'e')
}
