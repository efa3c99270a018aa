package http

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
)

// checkParams refuses a query parameter that is not in known, or is given
// twice: ignoring it would answer a different question than the one asked.
func checkParams(q url.Values, known []string) error {
	for name, vs := range q {
		if !slices.Contains(known, name) {
			return pimhook.FieldError(pimhook.CodeInvalidQuery, name,
				"unknown query parameter %q; known: %s", name, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return pimhook.FieldError(pimhook.CodeInvalidQuery, name,
				"query parameter %q is given %d times", name, len(vs))
		}
	}
	return nil
}

// timeParam reads an RFC 3339 time parameter; absent is the zero time.
func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, pimhook.FieldError(pimhook.CodeInvalidQuery, name, "%s must be an RFC 3339 time such as 2025-01-31T12:00:00Z, got %q", name, v)
	}
	return t.UTC(), nil
}

// limitParam reads the page size: 1 to pimhook.MaxPage, by default
// pimhook.DefaultPage.
func limitParam(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return pimhook.DefaultPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > pimhook.MaxPage {
		return 0, pimhook.FieldError(pimhook.CodeInvalidQuery, "limit", "limit must be an integer from 1 to %d, got %q", pimhook.MaxPage, v)
	}
	return n, nil
}

// idCursorPrefix marks a cursor of a list ordered by ID.
const idCursorPrefix = "i:"

// encodeIDCursor returns the cursor of a page that ends at the item id.
func encodeIDCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(idCursorPrefix + id))
}

// cursorParam reads the cursor parameter of a list ordered by ID.
func cursorParam(q url.Values) (string, error) {
	v := q.Get("cursor")
	if v == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	id, ok := strings.CutPrefix(string(b), idCursorPrefix)
	if err != nil || !ok || id == "" || !pimhook.Printable(id) {
		return "", pimhook.FieldError(pimhook.CodeInvalidCursor, "cursor", "cursor is not a cursor this API handed out; start again without it")
	}
	return id, nil
}

// page is the envelope of a paged list: pass next_cursor as cursor to get
// the next page; it is null on the last.
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// idPage makes a page of list, read with a limit of one more than limit to
// learn whether another page follows. Stores return at most
// pimhook.MaxPage items, so a page of that size always offers a next page,
// which may come back empty.
func idPage[In, Out any](list []In, limit int, id func(In) string, f func(In) Out) page[Out] {
	var next *string
	if len(list) > limit || len(list) == pimhook.MaxPage {
		list = list[:min(limit, len(list))]
		c := encodeIDCursor(id(list[len(list)-1]))
		next = &c
	}
	return page[Out]{Data: mapList(list, f).Data, NextCursor: next}
}
