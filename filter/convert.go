package filter

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/dop251/goja"
	"gopkg.in/yaml.v3"

	"github.com/pimhook/pimhook/internal/jsontext"
)

// errTooLarge is a value too large to pass to a condition or to write as
// a reducer's output.
var errTooLarge = errors.New("too large")

// maxSafeInteger is the largest integer a JavaScript number holds exactly.
const maxSafeInteger = 1<<53 - 1

// toJS makes a fresh JavaScript value of n. Every call makes new objects,
// so that a condition that changes its argument changes nothing shared.
// budget counts the values made, and the conversion stops with errTooLarge
// when it runs out.
func toJS(vm *goja.Runtime, n *yaml.Node, budget *int) (goja.Value, error) {
	if *budget--; *budget < 0 {
		return nil, errTooLarge
	}
	switch n.Kind {
	case yaml.MappingNode:
		o := vm.NewObject()
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := toJS(vm, n.Content[i+1], budget)
			if err != nil {
				return nil, err
			}
			// Define rather than set: the realm is frozen, and setting
			// "toString" or "__proto__" would not make an own property.
			if err := o.DefineDataProperty(n.Content[i].Value, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE); err != nil {
				return nil, err
			}
		}
		return o, nil
	case yaml.SequenceNode:
		items := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := toJS(vm, c, budget)
			if err != nil {
				return nil, err
			}
			items[i] = v
		}
		return vm.NewArray(items...), nil
	}
	return scalarToJS(vm, n), nil
}

func scalarToJS(vm *goja.Runtime, n *yaml.Node) goja.Value {
	switch n.Tag {
	case tagStr:
		return vm.ToValue(n.Value)
	case tagInt:
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil && i >= -maxSafeInteger && i <= maxSafeInteger {
			if i == 0 && n.Value[0] == '-' {
				return vm.ToValue(negativeZero)
			}
			return vm.ToValue(i)
		}
		f, _ := strconv.ParseFloat(n.Value, 64)
		return vm.ToValue(f)
	case tagFloat:
		f, _ := strconv.ParseFloat(n.Value, 64)
		return vm.ToValue(f)
	case tagBool:
		return vm.ToValue(n.Value == "true")
	}
	return goja.Null()
}

var negativeZero = func() float64 { z := 0.0; return -z }()

// appendJSON appends n as JSON text: numbers as they were written, no
// space. It stops with errTooLarge past limit bytes.
func appendJSON(b []byte, n *yaml.Node, limit int) ([]byte, error) {
	if len(b) > limit {
		return b, errTooLarge
	}
	var err error
	switch n.Kind {
	case yaml.MappingNode:
		b = append(b, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, n.Content[i].Value)
			b = append(b, ':')
			if b, err = appendJSON(b, n.Content[i+1], limit); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case yaml.SequenceNode:
		b = append(b, '[')
		for i, c := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, c, limit); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	if n.Tag == tagStr {
		return appendString(b, n.Value), nil
	}
	return append(b, n.Value...), nil
}

// appendString appends s as a JSON string. It escapes what JSON requires
// and U+2028 and U+2029 (for embedding in JavaScript), and nothing else.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = jsontext.AppendEscape(append(b, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = jsontext.AppendSeparatorEscape(append(b, s[start:i]...), r)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
