package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pimhook/pimhook"
)

// decode reads the request body strictly into v, a pointer to a struct: see
// readBody and unmarshal.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	data, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return unmarshal(data, v, "")
}

// readBody checks the request's media type and reads its whole body, at most
// limit bytes. Reading it all before decoding anything means an oversized
// body is refused before any of it is acted on.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge(limit)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return nil, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeBodyIncomplete, "the request body did not arrive in time")
		}
		return nil, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeMalformedJSON, "the request body could not be read: %v", err)
	}
	return data, nil
}

// DefaultBodyReadTimeout is how long a request body may take to arrive.
const DefaultBodyReadTimeout = 30 * time.Second

func errTooLarge(limit int64) error {
	return pimhook.Errorf(pimhook.KindTooLarge, pimhook.CodeBodyTooLarge,
		"the request body is larger than %d bytes", limit)
}

// checkContentType accepts no Content-Type at all, or application/json in
// UTF-8.
func checkContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return pimhook.Errorf(pimhook.KindUnsupported, pimhook.CodeUnsupportedMedia,
			"Content-Type must be application/json, got %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return pimhook.Errorf(pimhook.KindUnsupported, pimhook.CodeUnsupportedMedia,
			"the JSON body must be UTF-8, got charset %q", cs)
	}
	return nil
}

// unmarshal decodes data, which must hold exactly one JSON value, into v.
// Unknown fields are refused, field names match exactly (encoding/json
// alone would accept "Name" for "name"), and a field may appear only once.
// prefix is where data sits in the request ("events[3]"), so that errors
// name the field as the client wrote it.
func unmarshal(data []byte, v any, prefix string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &pimhook.Error{Kind: pimhook.KindInvalid, Code: pimhook.CodeMalformedJSON, Field: prefix,
			Message: "the body is empty; a JSON object is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, reflect.TypeOf(v), data, prefix)
	}
	end := dec.InputOffset()
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeMalformedJSON,
			"unexpected data after the JSON value at byte offset %d", int64(len(data)-len(rest)))
	}
	return checkKeys(data, v, prefix)
}

// decodeError turns an encoding/json error into a problem a client can act
// on. target is the type decoded into; data is the input.
func decodeError(err error, target reflect.Type, data []byte, prefix string) error {
	size := int64(len(data))
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		// Offset counts the bytes read, the offending one included; clients
		// want the 0-based position of that byte.
		return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeMalformedJSON,
			"malformed JSON at byte offset %d: %s", max(se.Offset-1, 0), strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeMalformedJSON,
			"malformed JSON: the document ends early, at byte offset %d", size)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		// te.Type is what the offending value should have been, which for an
		// element of a list or object is the element's type; name the
		// field's whole type instead: "an array of strings".
		want := te.Type
		if ft := fieldType(target, te.Field); ft != nil {
			want = ft
		}
		field := joinPath(prefix, te.Field)
		if field == "" {
			return &pimhook.Error{Kind: pimhook.KindInvalid, Code: pimhook.CodeWrongType,
				Message: fmt.Sprintf("the body must be %s, got %s", typeName(want), te.Value)}
		}
		return pimhook.FieldError(pimhook.CodeWrongType, field, "%s must be %s, got %s", field, typeName(want), te.Value)
	}
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, uerr := strconv.Unquote(rest)
		if uerr != nil {
			name = rest
		}
		// encoding/json names the key only; find where it is.
		var doc any
		if json.Unmarshal(data, &doc) == nil {
			if path, ok := unknownFieldPath(doc, target, name, ""); ok {
				name = path
			}
		}
		field := joinPath(prefix, name)
		return pimhook.FieldError(pimhook.CodeUnknownField, field, "unknown field %q", field)
	}
	if _, ok := errors.AsType[*json.InvalidUnmarshalError](err); ok {
		return fmt.Errorf("decode: %w", err) // a bug here, not in the request
	}
	return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeMalformedJSON, "the body cannot be decoded: %s",
		strings.TrimPrefix(err.Error(), "json: "))
}

// checkKeys walks the top-level keys of the object in data and refuses a
// key that is not one of v's field names exactly, and a key given twice.
// data is already known to decode into v.
func checkKeys(data []byte, v any, prefix string) error {
	known := fieldNames(reflect.TypeOf(v))
	if known == nil {
		return nil
	}
	keys, ok := topLevelKeys(data)
	if !ok {
		return nil // null, which decodes to nothing
	}
	seen := make(map[string]bool, len(keys))
	for _, key := range keys {
		field := joinPath(prefix, key)
		if !known[key] {
			return pimhook.FieldError(pimhook.CodeUnknownField, field, "unknown field %q (field names are case-sensitive)", field)
		}
		if seen[key] {
			return pimhook.FieldError(pimhook.CodeValidation, field, "field %q appears more than once", field)
		}
		seen[key] = true
	}
	return nil
}

// topLevelKeys returns the keys of the JSON object in data, in order, with
// ok false when data does not hold one object (and nothing but space after
// it). It skips over values without
// checking them: it is for data that encoding/json decodes as well, and so
// costs one quick pass instead of another full decode.
func topLevelKeys(data []byte) (keys []string, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	if i = skipSpace(data, i+1); i < len(data) && data[i] == '}' {
		return keys, skipSpace(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, false
		}
		end, escaped := skipString(data, i)
		if end < 0 {
			return nil, false
		}
		key := string(data[i+1 : end-1])
		if escaped {
			if json.Unmarshal(data[i:end], &key) != nil {
				return nil, false
			}
		}
		keys = append(keys, key)
		if i = skipSpace(data, end); i >= len(data) || data[i] != ':' {
			return nil, false
		}
		if i = skipValue(data, skipSpace(data, i+1)); i < 0 {
			return nil, false
		}
		if i = skipSpace(data, i); i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			if skipSpace(data, i+1) != len(data) {
				return nil, false // more after the object: not one object
			}
			return keys, true
		default:
			return nil, false
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at data[i]
// (a quote), or -1 if it does not end, and whether it holds escapes.
func skipString(data []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index just past the value starting at data[i], or
// -1 if it does not end.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		end, _ := skipString(data, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, _ := skipString(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

var fieldNameCache sync.Map // reflect.Type -> map[string]bool

// fieldNames returns the JSON names of the fields of the struct t points
// to, or nil if t is not a pointer to a struct.
func fieldNames(t reflect.Type) map[string]bool {
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	if m, ok := fieldNameCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := make(map[string]bool)
	addFieldNames(t.Elem(), m)
	fieldNameCache.Store(t, m)
	return m
}

func addFieldNames(t reflect.Type, m map[string]bool) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			addFieldNames(f.Type, m)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = true
	}
}

// unknownFieldPath finds, in the decoded document v meant for type t, the
// path of a key called name that t has no field for.
func unknownFieldPath(v any, t reflect.Type, name, path string) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return "", false // it reads its own JSON
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ft := structField(t, k)
			if ft == nil {
				if k == name {
					return joinPath(path, k), true
				}
				continue
			}
			if p, ok := unknownFieldPath(obj[k], ft, name, joinPath(path, k)); ok {
				return p, true
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return "", false
		}
		for i, e := range arr {
			if p, ok := unknownFieldPath(e, t.Elem(), name, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if p, ok := unknownFieldPath(obj[k], t.Elem(), name, joinPath(path, k)); ok {
				return p, true
			}
		}
	}
	return "", false
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// joinPath joins a field path and a field name: "events[3]" and "entity_id"
// give "events[3].entity_id".
func joinPath(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

// fieldType returns the type of the field at path (JSON names joined by
// dots) in the struct t points to, or nil if there is none.
func fieldType(t reflect.Type, path string) reflect.Type {
	if path == "" {
		return nil
	}
	for name := range strings.SplitSeq(path, ".") {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return nil
		}
		t = structField(t, name)
	}
	return t
}

// structField returns the type of the field of struct t whose JSON name is
// name, looking into embedded structs, or nil.
func structField(t reflect.Type, name string) reflect.Type {
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			if ft := structField(f.Type, name); ft != nil {
				return ft
			}
		case tag == name, tag == "" && f.IsExported() && f.Name == name:
			return f.Type
		}
	}
	return nil
}

// typeName names the JSON type a Go type decodes from, with its article:
// "an integer", "an array of strings".
func typeName(t reflect.Type) string {
	n := jsonNoun(t)
	if strings.ContainsRune("aeiou", rune(n[0])) {
		return "an " + n
	}
	return "a " + n
}

func jsonNoun(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array of " + jsonNoun(t.Elem()) + "s"
	case reflect.Map:
		return "object of " + jsonNoun(t.Elem()) + "s"
	case reflect.Struct:
		return "object"
	}
	return "JSON value"
}
