// Package model holds the Go types of the GraphQL schema: the ones gqlgen
// writes from it (models_gen.go) and the marshalling of its scalars.
package model

import (
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/pimhook/pimhook"
)

// MarshalTime writes the Time scalar: RFC 3339 in UTC, as the REST API
// writes times.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// UnmarshalTime reads the Time scalar. A malformed time is the client's
// mistake, reported with the code the REST API gives a malformed since or
// until.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery,
			"a Time must be an RFC 3339 string such as 2025-01-31T12:00:00Z, got %v", v)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeInvalidQuery,
			"a Time must be an RFC 3339 string such as 2025-01-31T12:00:00Z, got %q", s)
	}
	return t.UTC(), nil
}

// MarshalRawJSON writes the JSON scalar: the stored bytes as they are, or
// null when there are none.
func MarshalRawJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(v) == 0 {
			_, _ = io.WriteString(w, "null")
			return
		}
		_, _ = w.Write(v)
	})
}

// UnmarshalRawJSON reads the JSON scalar from any input value.
func UnmarshalRawJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeWrongType, "not a JSON value: %v", err)
	}
	return b, nil
}
