package change

import "strings"

// JoinPath returns the dotted path Diff uses to name the member reached
// through the given member names, outermost first: the names joined by ".",
// with each "." and "\" inside a name escaped by a "\". JoinPath("price",
// "amount") is "price.amount"; JoinPath("a.b", "c") is `a\.b.c`.
func JoinPath(keys ...string) string {
	var b []byte
	for i, k := range keys {
		b = appendSegment(b, []byte(k), i > 0)
	}
	return string(b)
}

// SplitPath returns the member names of a dotted path, undoing JoinPath:
// SplitPath(JoinPath(keys...)) equals keys for any names but a single empty
// one. It is lenient: a "\" before any character keeps that character, and
// a trailing "\" is kept. The empty path, the whole document, gives no names.
func SplitPath(path string) []string {
	if path == "" {
		return nil
	}
	var keys []string
	var cur strings.Builder
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '\\' && i+1 < len(path):
			i++
			cur.WriteByte(path[i])
		case c == '.':
			keys = append(keys, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(keys, cur.String())
}

// appendSegment appends one member name to a path, escaped, after a "."
// unless it is the first.
func appendSegment(path, key []byte, nested bool) []byte {
	if nested {
		path = append(path, '.')
	}
	start := 0
	for i, c := range key {
		if c == '.' || c == '\\' {
			path = append(path, key[start:i]...)
			path = append(path, '\\')
			start = i
		}
	}
	return append(path, key[start:]...)
}
