package filter

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/speakeasy-api/jsonpath/pkg/jsonpath"
	"gopkg.in/yaml.v3"
)

// query is a compiled RFC 9535 JSONPath query.
type query struct {
	text string
	path *jsonpath.JSONPath

	// singular is true for a singular query (RFC 9535 section 2.3.5.1):
	// only name and index selectors, one per segment. Such a query is
	// evaluated here, by steps, rather than by the library.
	singular bool
	steps    []step

	// bounded is false when a filter selector holds a query that is not
	// singular: evaluating it may cost the square of the document's size,
	// so it runs on a goroutine of its own that the evaluation's deadline
	// can abandon.
	bounded bool

	// compares is true when a filter compares two queries; see
	// Document.equalityTree.
	compares bool
}

// step is one segment of a singular query: a member name or an array index.
type step struct {
	name    string
	index   int64
	isIndex bool
}

// compileQuery parses text. The error is a message for the user, with the
// column (in characters, from 1) where the query went wrong.
func compileQuery(text string) (*query, error) {
	if text == "" {
		return nil, &queryError{msg: "the query is empty"}
	}
	fixed, offsets, err := rewriteQuery(text)
	if err != nil {
		return nil, err
	}
	path, err := jsonpath.NewPath(fixed)
	if err != nil {
		return nil, libraryError(text, err, offsets)
	}
	if guarded := guardFunctions(fixed); guarded != fixed {
		if path, err = jsonpath.NewPath(guarded); err != nil {
			return nil, &queryError{msg: fmt.Sprintf("internal error: %q: %v", guarded, err)}
		}
	}
	q := &query{text: text, path: path, bounded: true}
	steps, end := singularAt(text, 0)
	q.singular = end == len(text)
	if q.singular {
		q.steps = steps
	}
	// Every '@', and every '$' but the first, starts a query inside a filter.
	embedded, comparisons := 0, false
	for i := 1; i < len(text); i++ {
		switch c := text[i]; c {
		case '\'', '"':
			_, n, _ := scanString(text, i)
			i = n - 1
		case '$', '@':
			embedded++
			_, end := singularAt(text, i)
			if segmentFollows(text, end) {
				q.bounded = false
			}
			i = end - 1
		case '=': // in ==, !=, <= and >=, which compare for equality
			comparisons = true
		}
	}
	q.compares = comparisons && embedded >= 2
	return q, nil
}

// singularAt reads the longest singular query starting at text[i] ('$' or
// '@') and returns its steps and where it ends.
func singularAt(text string, i int) ([]step, int) {
	var steps []step
	end := i + 1
	for {
		j := skipBlank(text, end)
		if j >= len(text) {
			return steps, end
		}
		switch text[j] {
		case '.':
			k := j + 1
			for k < len(text) {
				r, size := utf8.DecodeRuneInString(text[k:])
				if !isNameChar(r, k == j+1) {
					break
				}
				k += size
			}
			if k == j+1 {
				return steps, end // ".." or ".*"
			}
			steps = append(steps, step{name: text[j+1 : k]})
			end = k
		case '[':
			k := skipBlank(text, j+1)
			if k >= len(text) {
				return steps, end
			}
			var s step
			switch c := text[k]; {
			case c == '\'' || c == '"':
				name, n, err := scanString(text, k)
				if err != nil {
					return steps, end
				}
				s.name, k = name, n
			case c == '-' || c >= '0' && c <= '9':
				n := k + 1
				for n < len(text) && text[n] >= '0' && text[n] <= '9' {
					n++
				}
				idx, err := strconv.ParseInt(text[k:n], 10, 64)
				if err != nil {
					return steps, end
				}
				s.index, s.isIndex, k = idx, true, n
			default:
				return steps, end
			}
			k = skipBlank(text, k)
			if k >= len(text) || text[k] != ']' {
				return steps, end // a union, a slice
			}
			steps = append(steps, s)
			end = k + 1
		default:
			return steps, end
		}
	}
}

// segmentFollows reports whether another segment starts at text[i], after
// blank space.
func segmentFollows(text string, i int) bool {
	i = skipBlank(text, i)
	return i < len(text) && (text[i] == '.' || text[i] == '[')
}

func skipBlank(text string, i int) int {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
		i++
	}
	return i
}

// isNameChar tells whether r may appear in a member-name-shorthand.
func isNameChar(r rune, first bool) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		return true
	case r >= '0' && r <= '9':
		return !first
	case r == utf8.RuneError:
		return false
	}
	return r >= 0x80 && r <= 0xD7FF || r >= 0xE000 && r <= 0x10FFFF
}

// scanString reads the string literal quoted by text[i] and returns its
// value and the index after its closing quote, following RFC 9535: the
// escapes \b \f \n \r \t \/ \\, \uXXXX (surrogates in pairs) and the quote
// that opened it; no raw control characters.
func scanString(text string, i int) (string, int, error) {
	quote := text[i]
	var b strings.Builder
	for j := i + 1; j < len(text); {
		c := text[j]
		switch {
		case c == quote:
			return b.String(), j + 1, nil
		case c < 0x20:
			return "", j, queryErrorf(text, j, "control character %U must be escaped", rune(c))
		case c != '\\':
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(text) {
			break
		}
		switch e := text[j+1]; e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '/', '\\':
			b.WriteByte(e)
		case '\'', '"':
			if e != quote {
				return "", j, queryErrorf(text, j, "invalid escape \\%c", e)
			}
			b.WriteByte(e)
		case 'u':
			r, ok := hex4(text, j+2)
			if !ok {
				return "", j, queryErrorf(text, j, "invalid \\u escape")
			}
			n := j + 6
			if utf16.IsSurrogate(r) {
				r2, ok := hex4(text, n+2)
				if !ok || text[n] != '\\' || text[n+1] != 'u' {
					return "", j, queryErrorf(text, j, "a surrogate \\u escape must be followed by its pair")
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", j, queryErrorf(text, j, "invalid surrogate pair")
				}
				n += 6
			}
			b.WriteRune(r)
			j = n
			continue
		default:
			return "", j, queryErrorf(text, j, "invalid escape \\%c", e)
		}
		j += 2
	}
	return "", len(text), queryErrorf(text, len(text), "unterminated string")
}

// rewriteQuery returns text as the JSONPath library reads it right. The
// library decodes "\r" as a line feed and does not know "\uXXXX", but it
// takes any other character inside quotes as itself: a string literal
// with either escape is rewritten with the characters themselves (a quote
// or backslash escaped). It also refuses an integer literal that does not
// fit an int, which RFC 9535 allows in a comparison: such a literal gets
// a ".0" and is compared as a float. offsets maps a byte of the result to
// a byte of text; it is nil when nothing was rewritten.
func rewriteQuery(text string) (string, []int, error) {
	var b []byte
	var offsets []int
	last := 0
	// copyTo copies text[last:i] to the result, which it starts if need be.
	copyTo := func(i int) {
		if b == nil {
			b = make([]byte, 0, len(text)+8)
			offsets = make([]int, 0, len(text)+8)
		}
		for k := last; k < i; k++ {
			b, offsets = append(b, text[k]), append(offsets, k)
		}
		last = i
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '-' || c >= '0' && c <= '9' {
			end := bigInteger(text, i)
			if end > i {
				copyTo(end)
				b, offsets = append(b, '.', '0'), append(offsets, end, end)
			}
			for i+1 < len(text) && isNumberChar(text[i+1]) {
				i++
			}
			continue
		}
		if c != '\'' && c != '"' {
			continue
		}
		value, end, err := scanString(text, i)
		if err != nil {
			return "", nil, err
		}
		lit := text[i:end]
		if !strings.Contains(lit, `\u`) && !strings.Contains(lit, `\r`) {
			i = end - 1
			continue
		}
		copyTo(i)
		b, offsets = append(b, c), append(offsets, i)
		for k := 0; k < len(value); k++ {
			if value[k] == c || value[k] == '\\' {
				b, offsets = append(b, '\\'), append(offsets, i)
			}
			b, offsets = append(b, value[k]), append(offsets, i)
		}
		b, offsets = append(b, c), append(offsets, end-1)
		last, i = end, end-1
	}
	if b == nil {
		return text, nil, nil
	}
	copyTo(len(text))
	return string(b), append(offsets, len(text)), nil
}

func isNumberChar(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// bigInteger returns the end of the integer literal at text[i] when it is
// one that does not fit an int and stands next to a comparison operator;
// else i.
func bigInteger(text string, i int) int {
	if i > 0 && (isNameChar(rune(text[i-1]), false) || text[i-1] == '.' || text[i-1] >= 0x80) {
		return i // inside a name
	}
	j := i
	if text[j] == '-' {
		j++
	}
	k := j
	for k < len(text) && text[k] >= '0' && text[k] <= '9' {
		k++
	}
	if k-j < 19 || k < len(text) && isNumberChar(text[k]) {
		return i
	}
	if _, err := strconv.Atoi(text[i:k]); err == nil {
		return i
	}
	before := i - 1
	for before >= 0 && strings.IndexByte(" \t\n\r", text[before]) >= 0 {
		before--
	}
	after := skipBlank(text, k)
	if before >= 0 && strings.IndexByte("=<>", text[before]) >= 0 || after < len(text) && strings.IndexByte("=<>!", text[after]) >= 0 {
		return k
	}
	return i
}

// guardFunctions rewrites every call match(a, b) and search(a, b) whose
// arguments include queries as (a && b && match(a, b)), with only the
// query arguments tested. The library takes a test function's result
// "nothing", which it gives when an argument selects no node, for true;
// RFC 9535 says such a call is false.
func guardFunctions(text string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\'' || c == '"':
			_, end, _ := scanString(text, i)
			i = end - 1
			continue
		case c != 'm' && c != 's':
			continue
		}
		var name string
		switch {
		case strings.HasPrefix(text[i:], "match("):
			name = "match"
		case strings.HasPrefix(text[i:], "search("):
			name = "search"
		default:
			continue
		}
		if i > 0 && (isNameChar(rune(text[i-1]), false) || text[i-1] >= 0x80) {
			continue
		}
		open := i + len(name)
		args, end := splitArguments(text, open)
		if end < 0 {
			continue
		}
		var tests []string
		for _, a := range args {
			if a = strings.TrimSpace(a); a != "" && (a[0] == '@' || a[0] == '$') {
				tests = append(tests, a)
			}
		}
		if len(tests) == 0 {
			continue
		}
		b.WriteString(text[last:i])
		b.WriteByte('(')
		for _, t := range tests {
			b.WriteString(t)
			b.WriteString(" && ")
		}
		b.WriteString(text[i : end+1])
		b.WriteByte(')')
		last = end + 1
		i = end
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// splitArguments splits the argument list that opens at text[open], '(',
// at its top-level commas, and returns the index of its ')' (-1 if none).
func splitArguments(text string, open int) ([]string, int) {
	var args []string
	depth, start := 0, open+1
	for i := open; i < len(text); i++ {
		switch c := text[i]; c {
		case '\'', '"':
			_, end, err := scanString(text, i)
			if err != nil {
				return nil, -1
			}
			i = end - 1
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth--; depth == 0 {
				return append(args, text[start:i]), i
			}
		case ',':
			if depth == 1 {
				args = append(args, text[start:i])
				start = i + 1
			}
		}
	}
	return nil, -1
}

var libraryErrorRE = regexp.MustCompile(`Error at line \d+, column (\d+): ([^\n\[\]]*)`)

// libraryError turns an error of the JSONPath library into a message
// with a column of text: the library's column counts bytes from 0 of the
// query it was given. Of its nested messages the one that got furthest
// is kept.
func libraryError(text string, err error, offsets []int) error {
	col, msg := -1, strings.TrimSpace(strings.SplitN(err.Error(), "\n", 2)[0])
	for _, m := range libraryErrorRE.FindAllStringSubmatch(err.Error(), -1) {
		c, _ := strconv.Atoi(m[1])
		if c >= col {
			col, msg = c, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[2]), ":"))
		}
	}
	if col < 0 {
		return &queryError{msg: msg}
	}
	if offsets != nil {
		col = offsets[min(col, len(offsets)-1)]
	}
	return queryErrorf(text, col, "%s", msg)
}

// queryError is why a query does not compile.
type queryError struct {
	col int // in characters, from 1; 0 when unknown
	msg string
}

func (e *queryError) Error() string {
	if e.col == 0 {
		return "invalid JSONPath query: " + e.msg
	}
	return fmt.Sprintf("invalid JSONPath query at column %d: %s", e.col, e.msg)
}

// queryErrorf describes an error at byte i of text.
func queryErrorf(text string, i int, format string, args ...any) error {
	i = min(max(i, 0), len(text))
	return &queryError{col: utf8.RuneCountInString(text[:i]) + 1, msg: fmt.Sprintf(format, args...)}
}

// one evaluates a singular query: the node it selects, or nil.
func (q *query) one(root *yaml.Node) *yaml.Node {
	n := root
	for i := range q.steps {
		s := &q.steps[i]
		if s.isIndex {
			if n.Kind != yaml.SequenceNode {
				return nil
			}
			idx := s.index
			if idx < 0 {
				idx += int64(len(n.Content))
			}
			if idx < 0 || idx >= int64(len(n.Content)) {
				return nil
			}
			n = n.Content[idx]
			continue
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for k := 0; k+1 < len(n.Content); k += 2 {
			if n.Content[k].Value == s.name {
				next = n.Content[k+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// all evaluates a query that is not singular on the tree it needs.
func (q *query) all(doc *Document) []*yaml.Node {
	root := doc.root
	if q.compares {
		root = doc.equalityTree()
	}
	return q.path.Query(root)
}
