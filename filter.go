package pimhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Filter logic operators (reference document 5).
const (
	LogicAnd = "AND"
	LogicOr  = "OR"
)

// Filter limits: how large a filter tree may grow.
const (
	MaxFilterDepth      = 8
	MaxFilterNodes      = 64
	MaxFilterQueryLen   = 1024
	MaxConditionLen     = 8 << 10
	MaxReducerBytes     = 16 << 10
	MaxFilterReducers   = 64 // per webhook
	MaxEventSlugLength  = 200
	AnyEventSlug        = "*"
	filterFieldFilter   = "filter_configuration"
	filterFieldReducer  = "reducer_configuration"
	filterFieldSlug     = "event_slug"
	filterFieldReducers = "filter_reducers"
)

// Filter decides whether a webhook hears an event (reference document 5).
// Query is an RFC 9535 JSONPath expression applied to the payload;
// Condition is the source of a JavaScript function called with what Query
// selected; Logic (AND, OR) combines the node's own check with its nested
// Conditions. The rules of evaluation are in docs/filters.md.
type Filter struct {
	Query      string    `json:"query,omitempty"`
	Condition  string    `json:"condition,omitempty"`
	Logic      string    `json:"logic,omitempty"`
	Conditions []*Filter `json:"conditions,omitempty"`
}

// Normalize checks the shape of f: sizes, depth, logic names. Whether its
// query and condition compile is package filter's question. field names f
// in errors ("filter_configuration").
func (f *Filter) Normalize(field string) error {
	nodes := 0
	return f.normalize(field, 1, &nodes)
}

func (f *Filter) normalize(field string, depth int, nodes *int) error {
	if f == nil {
		return FieldError(CodeInvalidFilter, field, "a filter must be an object")
	}
	*nodes++
	if *nodes > MaxFilterNodes {
		return FieldError(CodeInvalidFilter, field, "a filter has at most %d nodes", MaxFilterNodes)
	}
	if depth > MaxFilterDepth {
		return FieldError(CodeInvalidFilter, field, "filters nest at most %d levels deep", MaxFilterDepth)
	}
	f.Query = strings.TrimSpace(f.Query)
	f.Condition = strings.TrimSpace(f.Condition)
	if len(f.Query) > MaxFilterQueryLen {
		return FieldError(CodeInvalidFilter, field+".query", "query is longer than %d bytes", MaxFilterQueryLen)
	}
	if len(f.Condition) > MaxConditionLen {
		return FieldError(CodeInvalidFilter, field+".condition", "condition is longer than %d bytes", MaxConditionLen)
	}
	switch strings.ToUpper(f.Logic) {
	case "":
		f.Logic = ""
		if len(f.Conditions) > 0 {
			f.Logic = LogicAnd
		}
	case LogicAnd, LogicOr:
		f.Logic = strings.ToUpper(f.Logic)
	default:
		return FieldError(CodeInvalidFilter, field+".logic", "logic must be %q or %q, got %q", LogicAnd, LogicOr, f.Logic)
	}
	if f.Query == "" && f.Condition == "" && len(f.Conditions) == 0 {
		return FieldError(CodeInvalidFilter, field, "a filter needs a query, a condition or nested conditions")
	}
	for i, c := range f.Conditions {
		if err := c.normalize(fmt.Sprintf("%s.conditions[%d]", field, i), depth+1, nodes); err != nil {
			return err
		}
	}
	return nil
}

// FilterReducer is what one webhook does with one event: the filter that
// decides whether it is sent and the reducer that reshapes its payload.
// EventSlug is the event name ("products.updated"), or "*" for every event
// the webhook hears that has no configuration of its own.
type FilterReducer struct {
	EventSlug string          `json:"event_slug"`
	Filter    *Filter         `json:"filter_configuration,omitempty"`
	Reducer   json.RawMessage `json:"reducer_configuration,omitempty"`
}

// Normalize checks the shape of fr; field prefixes the names in errors.
func (fr *FilterReducer) Normalize(field string) error {
	fr.EventSlug = strings.TrimSpace(fr.EventSlug)
	if err := ValidateEventSlug(fr.EventSlug, field+filterFieldSlug); err != nil {
		return err
	}
	if IsNullJSON(fr.Reducer) {
		fr.Reducer = nil
	} else {
		r := bytes.TrimSpace(fr.Reducer)
		if len(r) > MaxReducerBytes {
			return FieldError(CodeInvalidReducer, field+filterFieldReducer, "reducer_configuration is larger than %d bytes", MaxReducerBytes)
		}
		if r[0] != '{' || !json.Valid(r) {
			return FieldError(CodeInvalidReducer, field+filterFieldReducer, "reducer_configuration must be a JSON object")
		}
		fr.Reducer = json.RawMessage(r)
	}
	if fr.Filter != nil {
		if err := fr.Filter.Normalize(field + filterFieldFilter); err != nil {
			return err
		}
	}
	if fr.Filter == nil && fr.Reducer == nil {
		return FieldError(CodeInvalidFilter, field+filterFieldFilter, "give a filter_configuration, a reducer_configuration or both")
	}
	return nil
}

// ValidateEventSlug checks an event slug: "*" or "<entity type>.<action>"
// with a known action, as in "products.updated".
func ValidateEventSlug(slug, field string) error {
	if slug == AnyEventSlug {
		return nil
	}
	if slug == "" {
		return FieldError(CodeValidation, field, "event_slug is required, e.g. \"products.updated\" or \"*\"")
	}
	if len(slug) > MaxEventSlugLength {
		return FieldError(CodeValidation, field, "event_slug is longer than %d characters", MaxEventSlugLength)
	}
	typ, action, ok := strings.Cut(slug, ".")
	if !ok {
		return FieldError(CodeValidation, field, "event_slug must be <entity type>.<action>, e.g. \"products.updated\", got %q", slug)
	}
	ep, err := EndpointName(typ)
	if err != nil || ep != typ {
		return FieldError(CodeValidation, field, "event_slug %q does not start with an entity type's plural name", slug)
	}
	if _, err := ParseAction(action); err != nil {
		return FieldError(CodeValidation, field, "event_slug %q: %s", slug, err.(*Error).Message)
	}
	return nil
}

// FilterReducerFor returns the configuration w applies to the event named
// name: the one of that slug, else the "*" one, else nil.
func (w *Webhook) FilterReducerFor(name string) *FilterReducer {
	var wildcard *FilterReducer
	for i := range w.FilterReducers {
		fr := &w.FilterReducers[i]
		switch fr.EventSlug {
		case name:
			return fr
		case AnyEventSlug:
			wildcard = fr
		}
	}
	return wildcard
}

// SetFilterReducer replaces w's configuration for fr.EventSlug with fr, or
// adds it.
func (w *Webhook) SetFilterReducer(fr FilterReducer) {
	for i := range w.FilterReducers {
		if w.FilterReducers[i].EventSlug == fr.EventSlug {
			w.FilterReducers[i] = fr
			return
		}
	}
	w.FilterReducers = append(w.FilterReducers, fr)
}

// normalizeFilterReducers checks every configuration of w.
func (w *Webhook) normalizeFilterReducers() error {
	if w.FilterReducers == nil {
		w.FilterReducers = []FilterReducer{}
	}
	if len(w.FilterReducers) > MaxFilterReducers {
		return FieldError(CodeValidation, filterFieldReducers, "a webhook has at most %d filter_reducers", MaxFilterReducers)
	}
	seen := make(map[string]bool, len(w.FilterReducers))
	for i := range w.FilterReducers {
		fr := &w.FilterReducers[i]
		if err := fr.Normalize(fmt.Sprintf("%s[%d].", filterFieldReducers, i)); err != nil {
			return err
		}
		if seen[fr.EventSlug] {
			return FieldError(CodeValidation, fmt.Sprintf("%s[%d].%s", filterFieldReducers, i, filterFieldSlug), "event_slug %q appears twice", fr.EventSlug)
		}
		seen[fr.EventSlug] = true
	}
	if len(w.FilterReducers) > 0 && w.Format == FormatJob {
		return FieldError(CodeValidation, filterFieldReducers, "filters and reducers apply to event webhooks; a job webhook has none")
	}
	return nil
}

// FilterCompiler compiles filters and reducers, which reports errors with
// their position; package filter implements it.
type FilterCompiler interface {
	CheckFilter(f *Filter, field string) error
	CheckReducer(r json.RawMessage, field string) error
}

// CheckFilterReducers compiles every configuration of w with c.
func CheckFilterReducers(c FilterCompiler, w *Webhook) error {
	for i := range w.FilterReducers {
		prefix := fmt.Sprintf("%s[%d].", filterFieldReducers, i)
		if err := CheckFilterReducer(c, &w.FilterReducers[i], prefix+filterFieldFilter, prefix+filterFieldReducer); err != nil {
			return err
		}
	}
	return nil
}

// CheckFilterReducer compiles one configuration with c; errors name its
// filter and reducer filterField and reducerField, as the caller's input
// calls them.
func CheckFilterReducer(c FilterCompiler, fr *FilterReducer, filterField, reducerField string) error {
	if fr.Filter != nil {
		if err := c.CheckFilter(fr.Filter, filterField); err != nil {
			return err
		}
	}
	if fr.Reducer != nil {
		return c.CheckReducer(fr.Reducer, reducerField)
	}
	return nil
}

// IsNullJSON reports whether b holds no JSON value, or null.
func IsNullJSON(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || bytes.Equal(b, []byte("null"))
}

// EncodeFilterReducers encodes a webhook's filter_reducers as a JSON array,
// as the stores keep it. json.Marshal would compact each reducer
// configuration and escape its HTML characters; the configuration is the
// user's document, so it is written as given instead, and json.Unmarshal
// gives it back byte for byte.
func EncodeFilterReducers(frs []FilterReducer) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, fr := range frs {
		head, err := json.Marshal(struct {
			EventSlug string  `json:"event_slug"`
			Filter    *Filter `json:"filter_configuration,omitempty"`
		}{fr.EventSlug, fr.Filter})
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		if len(fr.Reducer) == 0 {
			b.Write(head)
			continue
		}
		if !json.Valid(fr.Reducer) {
			return nil, FieldError(CodeInvalidReducer, fmt.Sprintf("filter_reducers[%d].reducer_configuration", i),
				"reducer_configuration is not valid JSON")
		}
		b.Write(head[:len(head)-1]) // without its closing brace
		b.WriteString(`,"reducer_configuration":`)
		b.Write(fr.Reducer)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}
