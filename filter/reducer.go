package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/pimhook/pimhook"
)

// Reducer is a compiled reducer: a JSON object whose strings that begin
// with "$" are JSONPath queries. It is immutable and safe for concurrent
// use.
type Reducer struct {
	e    *Engine
	root *template
	size int // bytes of the reducer's own JSON, a first guess at the output's
}

// template is one value of a reducer.
type template struct {
	where string // key path in the reducer: "product.sku", "items[0]"
	raw   []byte // a literal, as JSON
	query *query
	keys  [][]byte // of an object: its member names as JSON strings, in order
	items []*template
	array bool
}

func compileReducer(e *Engine, r json.RawMessage, field string) (*Reducer, error) {
	r = bytes.TrimSpace(r)
	if len(r) > pimhook.MaxReducerBytes {
		return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, field, "reducer is larger than %d bytes", pimhook.MaxReducerBytes)
	}
	if len(r) == 0 || r[0] != '{' || !json.Valid(r) {
		return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, field, "reducer must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.UseNumber()
	root, err := compileTemplate(dec, field, "")
	if err != nil {
		return nil, err
	}
	return &Reducer{e: e, root: root, size: len(r)}, nil
}

// compileTemplate reads the next value of dec; where is its path inside
// the reducer, and field names the reducer in errors.
func compileTemplate(dec *json.Decoder, field, where string) (*template, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, field, "reducer must be a JSON object: %v", err)
	}
	t := &template{where: where}
	switch v := tok.(type) {
	case json.Delim:
		t.array = v == '['
		seen := map[string]bool{}
		for i := 0; dec.More(); i++ {
			var sub string
			if t.array {
				sub = where + "[" + strconv.Itoa(i) + "]"
			} else {
				k, err := dec.Token()
				if err != nil {
					return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, field, "reducer must be a JSON object: %v", err)
				}
				name := k.(string)
				sub = joinKey(where, name)
				if seen[name] {
					return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, fieldPath(field, sub), "key %q appears twice", name)
				}
				seen[name] = true
				t.keys = append(t.keys, appendString(nil, name))
			}
			item, err := compileTemplate(dec, field, sub)
			if err != nil {
				return nil, err
			}
			t.items = append(t.items, item)
		}
		if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
			return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, field, "reducer must be a JSON object: %v", err)
		}
	case string:
		if len(v) > 0 && v[0] == '$' {
			q, err := compileQuery(v)
			if err != nil {
				return nil, pimhook.FieldError(pimhook.CodeInvalidReducer, fieldPath(field, where), "%v", err)
			}
			t.query = q
		} else {
			t.raw = appendString(nil, v)
		}
	case json.Number:
		t.raw = []byte(v)
	case bool:
		t.raw = strconv.AppendBool(nil, v)
	case nil:
		t.raw = []byte("null")
	}
	return t, nil
}

// joinKey appends a member name to a path: ".name" when it is a plain
// name, else `["name"]`.
func joinKey(where, name string) string {
	plain := name != ""
	for i, r := range name {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	if !plain {
		return where + "[" + string(appendString(nil, name)) + "]"
	}
	if where == "" {
		return name
	}
	return where + "." + name
}

func fieldPath(field, where string) string {
	if where == "" || where[0] == '[' {
		return field + where
	}
	return field + "." + where
}

// Apply builds the reducer's output for doc: its object with every query
// replaced by what it selects. An error means it could not: the
// evaluation ran past its budget (the error then wraps ErrTimeout or
// ErrMemory).
func (r *Reducer) Apply(doc *Document) (out json.RawMessage, err error) {
	ev := r.e.begin()
	defer ev.end()
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("reducer failed: internal error: %v", p)
		}
	}()
	b, err := ev.reduce(make([]byte, 0, 2*r.size), r.root, doc)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (ev *evaluation) reduce(b []byte, t *template, doc *Document) ([]byte, error) {
	limit := int(ev.e.cfg.MaxMemory)
	tooLarge := func() error {
		return &budgetError{where: t.where, part: "reducer", reason: reasonMemory, e: ev.e,
			detail: fmt.Sprintf("output is larger than %s", formatBytes(ev.e.cfg.MaxMemory))}
	}
	var err error
	switch {
	case t.raw != nil:
		return append(b, t.raw...), nil
	case t.query != nil && t.query.singular:
		n := t.query.one(doc.root)
		if n == nil {
			return append(b, "null"...), nil
		}
		if b, err = appendJSON(b, n, limit); err != nil {
			return b, tooLarge()
		}
		return b, nil
	case t.query != nil:
		nodes, err := ev.all(t.query, doc, t.where)
		if err != nil {
			return b, err
		}
		b = append(b, '[')
		for i, n := range nodes {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, n, limit); err != nil {
				return b, tooLarge()
			}
		}
		return append(b, ']'), nil
	}
	open, close := byte('{'), byte('}')
	if t.array {
		open, close = '[', ']'
	}
	b = append(b, open)
	for i, item := range t.items {
		if i > 0 {
			b = append(b, ',')
		}
		if !t.array {
			b = append(b, t.keys[i]...)
			b = append(b, ':')
		}
		if b, err = ev.reduce(b, item, doc); err != nil {
			return b, err
		}
	}
	return append(b, close), nil
}
