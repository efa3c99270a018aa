package filter

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Node tags. The JSONPath library reads scalars by tag, so a JSON string is
// always !!str and can never be taken for a number.
const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagNull  = "!!null"
	tagMap   = "!!map"
	tagSeq   = "!!seq"
)

// maxDocumentDepth is how deeply a payload may nest, as in encoding/json.
const maxDocumentDepth = 10000

// Document is a parsed JSON payload. It is immutable: any number of
// filters and reducers may evaluate it at the same time.
type Document struct {
	root *yaml.Node

	// eqRoot is a copy of root whose objects and arrays carry a fingerprint
	// of their value in their tag; see equalityTree.
	eqOnce sync.Once
	eqRoot *yaml.Node
}

// Parse parses a JSON payload. Numbers keep their text exactly; an object
// that repeats a member name keeps the last value at the first position, as
// JavaScript's JSON.parse does.
func Parse(payload []byte) (*Document, error) {
	p := jsonParser{src: string(payload)}
	// Every value but the root follows a ':', ',' or '[', and every member
	// name a '{' or ','; one slab of that many nodes and pointers is
	// enough (brackets and commas in strings make it an overestimate).
	colons := bytes.Count(payload, []byte{':'})
	n := colons + bytes.Count(payload, []byte{','}) + bytes.Count(payload, []byte{'['}) + bytes.Count(payload, []byte{'{'}) + 1
	p.nodes = make([]yaml.Node, 0, n)
	p.ptrs = make([]*yaml.Node, 0, n)
	p.skipSpace()
	if p.pos == len(p.src) {
		return nil, errors.New("parse payload: empty document")
	}
	root, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("parse payload: %w", err)
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("parse payload: %w", p.errorf("unexpected %s after the document", p.describe()))
	}
	return &Document{root: root}, nil
}

// jsonParser reads JSON into yaml nodes. Nodes and content slices come from
// slabs, so that a document costs a few allocations rather than one per
// value; unescaped strings are slices of src.
type jsonParser struct {
	src   string
	pos   int
	nodes []yaml.Node
	ptrs  []*yaml.Node
	stack []*yaml.Node
}

func (p *jsonParser) node() *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		n := 2 * cap(p.nodes)
		if n < 16 {
			n = 16
		}
		if n > 1024 {
			n = 1024
		}
		p.nodes = make([]yaml.Node, 0, n)
	}
	p.nodes = p.nodes[:len(p.nodes)+1]
	return &p.nodes[len(p.nodes)-1]
}

// content moves the top n entries of the stack into a slice of their own.
func (p *jsonParser) content(n int) []*yaml.Node {
	if n == 0 {
		return nil
	}
	if cap(p.ptrs)-len(p.ptrs) < n {
		size := 2 * cap(p.ptrs)
		if size < 64 {
			size = 64
		}
		if size > 4096 {
			size = 4096
		}
		if size < n {
			size = n
		}
		p.ptrs = make([]*yaml.Node, 0, size)
	}
	start := len(p.ptrs)
	p.ptrs = append(p.ptrs, p.stack[len(p.stack)-n:]...)
	p.stack = p.stack[:len(p.stack)-n]
	return p.ptrs[start:len(p.ptrs):len(p.ptrs)]
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) describe() string {
	if p.pos >= len(p.src) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return strconv.QuoteRune(r)
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*yaml.Node, error) {
	if depth >= maxDocumentDepth {
		return nil, p.errorf("nested more than %d levels deep", maxDocumentDepth)
	}
	if p.pos >= len(p.src) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		n := p.node()
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, tagStr, s
		return n, nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true", tagBool)
	case c == 'f':
		return p.literal("false", tagBool)
	case c == 'n':
		return p.literal("null", tagNull)
	}
	return nil, p.errorf("unexpected %s", p.describe())
}

func (p *jsonParser) literal(word, tag string) (*yaml.Node, error) {
	if len(p.src)-p.pos < len(word) || p.src[p.pos:p.pos+len(word)] != word {
		return nil, p.errorf("unexpected %s", p.describe())
	}
	p.pos += len(word)
	n := p.node()
	n.Kind, n.Tag, n.Value = yaml.ScalarNode, tag, word
	return n, nil
}

func (p *jsonParser) object(depth int) (*yaml.Node, error) {
	p.pos++ // {
	base := len(p.stack)
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		n := p.node()
		n.Kind, n.Tag = yaml.MappingNode, tagMap
		return n, nil
	}
	var seen map[string]int // name → index of its key in stack, for large objects
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return nil, p.errorf("expected a member name, found %s", p.describe())
		}
		name, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("expected ':' after a member name, found %s", p.describe())
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		dup := -1
		members := (len(p.stack) - base) / 2
		switch {
		case seen != nil:
			if i, ok := seen[name]; ok {
				dup = i
			}
		case members < 16:
			for i := base; i < len(p.stack); i += 2 {
				if p.stack[i].Value == name {
					dup = i
					break
				}
			}
		default:
			seen = make(map[string]int, 2*members)
			for i := base; i < len(p.stack); i += 2 {
				seen[p.stack[i].Value] = i
			}
			if i, ok := seen[name]; ok {
				dup = i
			}
		}
		if dup >= 0 {
			p.stack[dup+1] = v
		} else {
			k := p.node()
			k.Kind, k.Tag, k.Value = yaml.ScalarNode, tagStr, name
			if seen != nil {
				seen[name] = len(p.stack)
			}
			p.stack = append(p.stack, k, v)
		}
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unexpected end of input in an object")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			continue
		case '}':
			p.pos++
			n := p.node()
			n.Kind, n.Tag = yaml.MappingNode, tagMap
			n.Content = p.content(len(p.stack) - base)
			return n, nil
		}
		return nil, p.errorf("expected ',' or '}' in an object, found %s", p.describe())
	}
}

func (p *jsonParser) array(depth int) (*yaml.Node, error) {
	p.pos++ // [
	base := len(p.stack)
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		n := p.node()
		n.Kind, n.Tag = yaml.SequenceNode, tagSeq
		return n, nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, v)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unexpected end of input in an array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			continue
		case ']':
			p.pos++
			n := p.node()
			n.Kind, n.Tag = yaml.SequenceNode, tagSeq
			n.Content = p.content(len(p.stack) - base)
			return n, nil
		}
		return nil, p.errorf("expected ',' or ']' in an array, found %s", p.describe())
	}
}

// number reads a JSON number. Its text is kept as it was written; it is
// tagged !!int when it is an integer that fits an int (the JSONPath library
// reads !!int with strconv.Atoi, which would clamp a larger one), else
// !!float.
func (p *jsonParser) number() (*yaml.Node, error) {
	start := p.pos
	s := p.src
	i := p.pos
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return nil, p.errorf("invalid number")
	}
	integer := true
	if i < len(s) && s[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return nil, p.errorf("invalid number: no digits after '.'")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return nil, p.errorf("invalid number: no digits in the exponent")
		}
	}
	p.pos = i
	text := s[start:i]
	tag := tagFloat
	if integer {
		if len(text) <= 18 {
			tag = tagInt
		} else if _, err := strconv.Atoi(text); err == nil {
			tag = tagInt
		}
	}
	n := p.node()
	n.Kind, n.Tag, n.Value = yaml.ScalarNode, tag, text
	return n, nil
}

// string reads a JSON string and returns its value: a slice of src when it
// has no escapes and is valid UTF-8, else a decoded copy in which invalid
// UTF-8 became U+FFFD (as encoding/json does).
func (p *jsonParser) string() (string, error) {
	p.pos++ // "
	start := p.pos
	s := p.src
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return s[start:i], nil
		case c == '\\':
			return p.decodeString(start)
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character %U in a string", rune(c))
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return p.decodeString(start)
			}
			i += size
		}
	}
	p.pos = i
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) decodeString(start int) (string, error) {
	s := p.src
	b := make([]byte, 0, 32)
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(b), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character %U in a string", rune(c))
		case c == '\\':
			if i+1 >= len(s) {
				p.pos = i
				return "", p.errorf("unterminated string")
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(s, i+2)
				if !ok {
					p.pos = i
					return "", p.errorf("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4(s, i+2); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b = utf8.AppendRune(b, d)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				p.pos = i
				return "", p.errorf("invalid escape '\\%c'", e)
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r) // RuneError for invalid bytes
			i += size
		}
	}
	p.pos = i
	return "", p.errorf("unterminated string")
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
