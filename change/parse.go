package change

import (
	"bytes"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of objects and arrays accepted, the same
// limit encoding/json applies, so a document is valid here exactly when
// json.Valid accepts it.
const maxDepth = 10000

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is one JSON value of a parsed document. Values keep their raw span in
// the source, so unchanged subtrees are recognised by comparing bytes and
// reported values are copied, never re-encoded.
type node struct {
	key        []byte // decoded member name, when the value is an object member
	start, end int    // raw span in doc.src
	kid, n     int    // children: doc.kids[kid : kid+n]
	kind       kind
	// flag marks a string that must be decoded before it is compared (it
	// has escapes or invalid UTF-8), or a number with a fraction or exponent.
	flag bool
}

// doc is a parsed document: a flat arena of nodes. An object's members are
// sorted by decoded name, and of repeated names only the last is kept, as
// encoding/json does when it decodes into a map.
type doc struct {
	src   []byte
	nodes []node
	kids  []int
	stack []int  // members and elements of the containers being parsed
	keys  []byte // names that needed decoding
	root  int    // -1 for an empty document
}

type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

func errAt(s []byte, i int, context string) error {
	if i >= len(s) {
		return &syntaxError{msg: "unexpected end of JSON input", off: i}
	}
	return &syntaxError{msg: fmt.Sprintf("invalid character %q %s", s[i], context), off: i}
}

func (d *doc) reset() {
	clear(d.nodes) // drop references into the caller's bytes
	d.src, d.nodes, d.kids, d.stack, d.keys = nil, d.nodes[:0], d.kids[:0], d.stack[:0], d.keys[:0]
	d.root = -1
}

// parse parses src, which must hold at most one JSON value surrounded by
// optional whitespace.
func (d *doc) parse(src []byte) error {
	d.reset()
	d.src = src
	i := skipSpace(src, 0)
	if i == len(src) {
		return nil
	}
	root, i, err := d.value(i, 0)
	if err != nil {
		return err
	}
	if i = skipSpace(src, i); i != len(src) {
		return errAt(src, i, "after top-level value")
	}
	d.root = root
	return nil
}

// data returns the root node, or -1 when the document holds no data: it is
// empty, or it is a top-level null.
func (d *doc) data() int {
	if d.root < 0 || d.nodes[d.root].kind == kindNull {
		return -1
	}
	return d.root
}

func (d *doc) add(n node) int {
	d.nodes = append(d.nodes, n)
	return len(d.nodes) - 1
}

func (d *doc) raw(i int) []byte { return d.src[d.nodes[i].start:d.nodes[i].end] }

func (d *doc) children(i int) []int {
	n := &d.nodes[i]
	return d.kids[n.kid : n.kid+n.n]
}

func skipSpace(s []byte, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (d *doc) value(i, depth int) (int, int, error) {
	s := d.src
	if i >= len(s) {
		return 0, i, errAt(s, i, "")
	}
	switch c := s[i]; {
	case c == '{':
		return d.object(i, depth+1)
	case c == '[':
		return d.array(i, depth+1)
	case c == '"':
		end, flag, err := scanString(s, i)
		if err != nil {
			return 0, end, err
		}
		return d.add(node{kind: kindString, start: i, end: end, flag: flag}), end, nil
	case c == '-' || '0' <= c && c <= '9':
		end, flag, err := scanNumber(s, i)
		if err != nil {
			return 0, end, err
		}
		return d.add(node{kind: kindNumber, start: i, end: end, flag: flag}), end, nil
	case c == 't':
		return d.literal(i, "true", kindBool)
	case c == 'f':
		return d.literal(i, "false", kindBool)
	case c == 'n':
		return d.literal(i, "null", kindNull)
	}
	return 0, i, errAt(s, i, "looking for beginning of value")
}

func (d *doc) literal(i int, lit string, k kind) (int, int, error) {
	s := d.src
	for j := 0; j < len(lit); j++ {
		if i+j >= len(s) || s[i+j] != lit[j] {
			return 0, i + j, errAt(s, i+j, "in literal "+lit)
		}
	}
	end := i + len(lit)
	return d.add(node{kind: k, start: i, end: end}), end, nil
}

func (d *doc) object(i, depth int) (int, int, error) {
	s := d.src
	if depth > maxDepth {
		return 0, i, &syntaxError{msg: "exceeded max depth", off: i}
	}
	self := d.add(node{kind: kindObject, start: i})
	base := len(d.stack)
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			if i >= len(s) || s[i] != '"' {
				return 0, i, errAt(s, i, "looking for beginning of object key string")
			}
			end, flag, err := scanString(s, i)
			if err != nil {
				return 0, end, err
			}
			key := s[i+1 : end-1 : end-1]
			if flag {
				start := len(d.keys)
				d.keys = appendUnquoted(d.keys, key)
				key = d.keys[start:len(d.keys):len(d.keys)]
			}
			if i = skipSpace(s, end); i >= len(s) || s[i] != ':' {
				return 0, i, errAt(s, i, "after object key")
			}
			v, next, err := d.value(skipSpace(s, i+1), depth)
			if err != nil {
				return 0, next, err
			}
			d.nodes[v].key = key
			d.stack = append(d.stack, v)
			if i = skipSpace(s, next); i < len(s) && s[i] == ',' {
				i = skipSpace(s, i+1)
				continue
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			return 0, i, errAt(s, i, "after object key:value pair")
		}
	}
	members := d.sortMembers(d.stack[base:])
	d.nodes[self].end, d.nodes[self].kid, d.nodes[self].n = i, len(d.kids), len(members)
	d.kids = append(d.kids, members...)
	d.stack = d.stack[:base]
	return self, i, nil
}

// sortMembers sorts an object's members by name and keeps only the last of
// each repeated name.
func (d *doc) sortMembers(m []int) []int {
	nodes := d.nodes
	sorted := true
	for j := 1; j < len(m); j++ {
		if bytes.Compare(nodes[m[j-1]].key, nodes[m[j]].key) >= 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return m
	}
	slices.SortStableFunc(m, func(a, b int) int { return bytes.Compare(nodes[a].key, nodes[b].key) })
	w := 0
	for j, v := range m {
		if j+1 < len(m) && bytes.Equal(nodes[v].key, nodes[m[j+1]].key) {
			continue
		}
		m[w] = v
		w++
	}
	return m[:w]
}

func (d *doc) array(i, depth int) (int, int, error) {
	s := d.src
	if depth > maxDepth {
		return 0, i, &syntaxError{msg: "exceeded max depth", off: i}
	}
	self := d.add(node{kind: kindArray, start: i})
	base := len(d.stack)
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		i++
	} else {
		for {
			v, next, err := d.value(i, depth)
			if err != nil {
				return 0, next, err
			}
			d.stack = append(d.stack, v)
			if i = skipSpace(s, next); i < len(s) && s[i] == ',' {
				i = skipSpace(s, i+1)
				continue
			}
			if i < len(s) && s[i] == ']' {
				i++
				break
			}
			return 0, i, errAt(s, i, "after array element")
		}
	}
	d.nodes[self].end, d.nodes[self].kid, d.nodes[self].n = i, len(d.kids), len(d.stack)-base
	d.kids = append(d.kids, d.stack[base:]...)
	d.stack = d.stack[:base]
	return self, i, nil
}

// scanString checks the string starting at s[i] == '"' and returns the
// offset just past its closing quote. flag reports whether the string's
// decoded text differs from its raw bytes: it has an escape or invalid UTF-8.
func scanString(s []byte, i int) (end int, flag bool, err error) {
	j := i + 1
	for j < len(s) {
		c := s[j]
		switch {
		case c == '"':
			return j + 1, flag, nil
		case c == '\\':
			flag = true
			if j+1 >= len(s) {
				return j + 1, flag, errAt(s, j+1, "")
			}
			switch s[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				for k := j + 2; k < j+6; k++ {
					if k >= len(s) || !isHex(s[k]) {
						return k, flag, errAt(s, k, "in \\u hexadecimal character escape")
					}
				}
				j += 6
			default:
				return j + 1, flag, errAt(s, j+1, "in string escape code")
			}
		case c < 0x20:
			return j, flag, errAt(s, j, "in string literal")
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(s[j:])
			if r == utf8.RuneError && size == 1 {
				flag = true
			}
			j += size
		}
	}
	return j, flag, errAt(s, j, "")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber checks the number starting at s[i] and returns the offset just
// past it. flag reports a fraction or an exponent.
func scanNumber(s []byte, i int) (end int, flag bool, err error) {
	j := i
	if s[j] == '-' {
		j++
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case j < len(s) && '1' <= s[j] && s[j] <= '9':
		j = skipDigits(s, j+1)
	default:
		return j, false, errAt(s, j, "in numeric literal")
	}
	if j < len(s) && s[j] == '.' {
		flag = true
		if j++; j >= len(s) || !isDigit(s[j]) {
			return j, flag, errAt(s, j, "after decimal point in numeric literal")
		}
		j = skipDigits(s, j)
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		flag = true
		if j++; j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j >= len(s) || !isDigit(s[j]) {
			return j, flag, errAt(s, j, "in exponent of numeric literal")
		}
		j = skipDigits(s, j)
	}
	return j, flag, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(s []byte, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// appendUnquoted appends the decoded text of a string's raw contents (without
// its quotes), which scanString has checked. It decodes as encoding/json
// does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if p := utf16.DecodeRune(r, hex4(s[i+2:])); p != utf8.RuneError {
							dst = utf8.AppendRune(dst, p)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\' and '/' stand for themselves
				dst = append(dst, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst
}

func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendCompact appends a checked JSON value without its insignificant
// whitespace.
func appendCompact(dst, v []byte) []byte {
	start := 0
	inString := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, v[start:i]...)
			start = i + 1
		}
	}
	return append(dst, v[start:]...)
}
