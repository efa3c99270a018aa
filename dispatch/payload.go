package dispatch

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/internal/jsontext"
)

// eventBody renders the payload of ev for webhook w of app a. changes are the
// changes w is told about (only its monitored fields, when it has some).
// data is ev's data as appendCompactJSON writes it, rendered once per event
// for all its webhooks; it is used when w includes entity data.
//
// The body is appended by hand, not marshalled: it is rendered for every
// delivery, on the store's writer, and encoding/json would validate and
// compact the data again each time. The bytes are those json.Marshal writes
// for an eventPayload (TestEventBodyIsMarshalled), on the condition that the
// data and the changes' values are valid JSON, which ingest has made sure of
// (fingerprint and change.Diff parse them). Its shape is that of reference
// document 1: entity, company, app, event, workflow, revision.
func eventBody(ev *pimhook.Event, co *pimhook.Company, a *pimhook.App, w *pimhook.Webhook, changes []pimhook.FieldChange, data []byte) []byte {
	n := 320 + len(ev.ID) + len(ev.EntityID) + len(co.Name) + len(a.Name) + len(w.Name)
	if w.IncludeEntityData {
		n += len(data)
	}
	for _, c := range changes {
		n += 48 + len(c.Name) + len(c.From) + len(c.To)
	}
	b := make([]byte, 0, n)
	b = appendField(b, `{"id":`, ev.ID)
	b = appendField(b, `,"event":`, ev.Name())
	b = appendField(b, `,"entity":`, pimhook.SingularName(ev.EntityType))
	b = appendField(b, `,"entity_id":`, ev.EntityID)
	b = appendField(b, `,"company":{"id":`, co.ID)
	b = appendField(b, `,"name":`, co.Name)
	b = appendField(b, `},"app":{"id":`, a.ID)
	b = appendField(b, `,"name":`, a.Name)
	b = appendField(b, `,"app_type":`, a.AppType)
	b = appendField(b, `},"workflow":{"webhook_id":`, w.ID)
	b = appendField(b, `,"name":`, w.Name)
	b = append(b, `,"attempt":1},"revision":{"number":`...)
	b = strconv.AppendInt(b, ev.Revision, 10)
	b = append(b, `,"changed_fields":[`...)
	for i, c := range changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, c.Name)
		b = append(b, `,"from":`...)
		b = appendRawJSON(b, c.From)
		b = append(b, `,"to":`...)
		b = appendRawJSON(b, c.To)
		if c.FromMissing {
			b = append(b, `,"from_missing":true`...)
		}
		if c.ToMissing {
			b = append(b, `,"to_missing":true`...)
		}
		b = append(b, '}')
	}
	b = appendField(b, `]},"timestamp":`, ev.ReceivedAt.UTC().Format(time.RFC3339Nano))
	if w.IncludeEntityData {
		b = append(b, `,"data":`...)
		if len(data) == 0 {
			b = append(b, nullJSON...)
		} else {
			b = append(b, data...)
		}
	}
	return append(b, '}')
}

const nullJSON = "null"

// appendField appends prefix, the JSON text before a string value, and
// the value.
func appendField(dst []byte, prefix, value string) []byte {
	return appendJSONString(append(dst, prefix...), value)
}

// appendRawJSON appends a JSON value as encoding/json writes a
// json.RawMessage: null when there is none, compacted otherwise. An empty
// value, which json.Marshal refuses, is null too.
func appendRawJSON(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, nullJSON...)
	}
	return appendCompactJSON(dst, v)
}

// appendCompactJSON appends valid JSON src without its insignificant
// whitespace, with <, >, & and the line and paragraph separators escaped
// as encoding/json escapes them. It does not check that src is valid.
func appendCompactJSON(dst, src []byte) []byte {
	start, inString := 0, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !inString {
			switch c {
			case ' ', '\t', '\n', '\r':
				dst = append(dst, src[start:i]...)
				start = i + 1
			case '"':
				inString = true
			}
			continue
		}
		// Most of a document is the inside of its strings: skip what
		// needs nothing done.
		for !inStringSpecial[c] {
			if i++; i == len(src) {
				return append(dst, src[start:]...)
			}
			c = src[i]
		}
		switch {
		case c == '\\':
			i++ // the escaped character, whatever it is
		case c == '"':
			inString = false
		case c == '<' || c == '>' || c == '&':
			dst = jsontext.AppendEscape(append(dst, src[start:i]...), c)
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			// U+2028 or U+2029
			dst = jsontext.AppendSeparatorEscape(append(dst, src[start:i]...), '\u2028'+rune(src[i+2]&1))
			i += 2
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}

// inStringSpecial marks the bytes of a JSON string that appendCompactJSON
// looks at.
var inStringSpecial = [256]bool{'\\': true, '"': true, '<': true, '>': true, '&': true, 0xE2: true}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it: HTML characters and the line and paragraph separators too,
// and invalid UTF-8 as U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = jsontext.AppendEscape(append(dst, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = jsontext.AppendSeparatorEscape(append(dst, s[start:i]...), r)
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// attemptMarker is how eventBody writes the attempt number of the first try.
// The body is rendered once, at ingest, and stored; a retry only swaps this
// number.
var attemptMarker = []byte(`"attempt":1},"revision":`)

// withAttempt returns body with workflow.attempt set to n. Bodies that do not
// carry the marker (other formats, reshaped payloads) go out unchanged.
func withAttempt(body []byte, n int) []byte {
	if n <= 1 {
		return body
	}
	i := bytes.Index(body, attemptMarker)
	if i < 0 {
		return body
	}
	out := make([]byte, 0, len(body)+8)
	out = append(out, body[:i]...)
	out = fmt.Appendf(out, `"attempt":%d},"revision":`, n)
	return append(out, body[i+len(attemptMarker):]...)
}
