// Package jsontext holds what the packages that write JSON by hand share:
// how a character is escaped inside a string.
package jsontext

const hex = "0123456789abcdef"

// AppendEscape appends the escape of the ASCII byte c inside a JSON string:
// the short form for the quote, the backslash, \b, \f, \n, \r and \t, and
// \u00XX for any other byte, such as a control character or, where HTML
// characters are escaped, <, > and &.
func AppendEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
}

// AppendSeparatorEscape appends \u2028 or \u2029, the escape of the line
// or paragraph separator r, which JavaScript does not take raw in a string.
func AppendSeparatorEscape(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
}
