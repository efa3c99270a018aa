package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/pimhook/pimhook"
)

// Event limits.
const (
	// MaxEventsPerRequest bounds a batch posted to /v1/events.
	MaxEventsPerRequest = 1000
	// MaxEventIDLength bounds an event id (idempotency key) and an entity id.
	MaxEventIDLength = 255
)

// eventInput is one posted event.
type eventInput struct {
	ID          *string         `json:"id"`
	EntityType  *string         `json:"entity_type"`
	EntityID    json.RawMessage `json:"entity_id"` // a string or an integer
	Action      *string         `json:"action"`
	Data        json.RawMessage `json:"data"`
	Previous    json.RawMessage `json:"previous"`
	SourceAppID *string         `json:"source_app_id"`
	// Revision is the entity revision the change was made against; when
	// the stored revision differs, the event is stale and refused.
	Revision *int64 `json:"revision"`
}

// eventBatch is the body of a batch post.
type eventBatch struct {
	Events []json.RawMessage `json:"events"`
}

// postEvents ingests one event or a batch. Every event is checked before
// any is handed on, so a batch is taken whole or not at all.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) error {
	if s.Ingester == nil {
		return pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "event ingestion is not running")
	}
	data, err := readBody(w, r, s.MaxEventBodyBytes)
	if err != nil {
		return err
	}
	co := companyFrom(r.Context())
	now := s.Clock.Now().UTC()
	key := r.Header.Get("Idempotency-Key")
	if key != "" {
		if err := checkEventID(key, "Idempotency-Key"); err != nil {
			return err
		}
	}

	var events []*pimhook.Event
	if isBatch(data) {
		var batch eventBatch
		if err := unmarshal(data, &batch, ""); err != nil {
			return err
		}
		switch n := len(batch.Events); {
		case n == 0:
			return pimhook.FieldError(pimhook.CodeValidation, "events", "events must hold at least one event")
		case n > MaxEventsPerRequest:
			return pimhook.FieldError(pimhook.CodeValidation, "events", "a request holds at most %d events, got %d", MaxEventsPerRequest, n)
		}
		events = make([]*pimhook.Event, 0, len(batch.Events))
		for i, raw := range batch.Events {
			path := "events[" + strconv.Itoa(i) + "]"
			var in eventInput
			if err := unmarshal(raw, &in, path); err != nil {
				return err
			}
			ev, err := in.event(path, now)
			if err != nil {
				return err
			}
			if ev.ID == "" && key != "" {
				// One key for the batch: each event gets its own, derived
				// from it, so the whole batch can be retried.
				ev.ID = key + ":" + strconv.Itoa(i)
			}
			events = append(events, ev)
		}
	} else {
		var in eventInput
		if err := unmarshal(data, &in, ""); err != nil {
			return err
		}
		ev, err := in.event("", now)
		if err != nil {
			return err
		}
		if ev.ID == "" {
			ev.ID = key
		}
		events = []*pimhook.Event{ev}
	}
	for _, ev := range events {
		ev.CompanyID = co.ID
	}

	results, err := s.Ingester.Ingest(r.Context(), co, events)
	if err != nil {
		return fmt.Errorf("ingest %d events: %w", len(events), err)
	}
	return writeJSON(w, http.StatusAccepted, map[string][]pimhook.IngestResult{"events": nonNil(results)})
}

// isBatch tells a batch body ({"events": [...]}) from a single event by its
// top-level "events" key.
func isBatch(data []byte) bool {
	keys, ok := topLevelKeys(data)
	return ok && slices.Contains(keys, "events")
}

var integerRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// event validates in and builds the event it describes. path is where in
// sits in the body ("" or "events[3]").
func (in *eventInput) event(path string, now time.Time) (*pimhook.Event, error) {
	ev := &pimhook.Event{ReceivedAt: now}
	if in.ID != nil {
		if err := checkEventID(*in.ID, joinPath(path, "id")); err != nil {
			return nil, err
		}
		ev.ID = *in.ID
	}

	if in.EntityType == nil || *in.EntityType == "" {
		return nil, pimhook.FieldError(pimhook.CodeInvalidEntityType, joinPath(path, "entity_type"), "entity_type is required")
	}
	endpoint, err := pimhook.EndpointName(*in.EntityType)
	if err != nil {
		return nil, asField(err, joinPath(path, "entity_type"))
	}
	ev.EntityType = endpoint

	if ev.EntityID, err = entityID(in.EntityID, joinPath(path, "entity_id")); err != nil {
		return nil, err
	}

	if in.Action == nil || *in.Action == "" {
		return nil, pimhook.FieldError(pimhook.CodeInvalidAction, joinPath(path, "action"), "action is required")
	}
	if ev.Action, err = pimhook.ParseAction(*in.Action); err != nil {
		return nil, asField(err, joinPath(path, "action"))
	}

	if isNull(in.Data) {
		if ev.Action != pimhook.ActionDeleted {
			return nil, pimhook.FieldError(pimhook.CodeInvalidEvent, joinPath(path, "data"), "data is required unless the action is deleted")
		}
	} else {
		if err := checkObject(in.Data, joinPath(path, "data")); err != nil {
			return nil, err
		}
		ev.Data = in.Data
	}
	if !isNull(in.Previous) {
		if err := checkObject(in.Previous, joinPath(path, "previous")); err != nil {
			return nil, err
		}
		ev.Previous = in.Previous
	}
	if in.SourceAppID != nil {
		ev.SourceAppID = *in.SourceAppID
	}
	if in.Revision != nil {
		if *in.Revision < 0 {
			return nil, pimhook.FieldError(pimhook.CodeValidation, joinPath(path, "revision"), "revision must be 0 (a new entity) or more, got %d", *in.Revision)
		}
		ev.BaseRevision = in.Revision
	}
	return ev, nil
}

// entityID reads an entity id given as a JSON string or integer; an integer
// is kept as its decimal digits.
func entityID(raw json.RawMessage, field string) (string, error) {
	if isNull(raw) {
		return "", pimhook.FieldError(pimhook.CodeMissingEntityID, field, "entity_id is required")
	}
	var id string
	switch raw = bytes.TrimSpace(raw); raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", fmt.Errorf("entity_id: %w", err) // raw was validated as JSON already
		}
	default:
		if !integerRE.Match(raw) {
			return "", pimhook.FieldError(pimhook.CodeWrongType, field, "%s must be a string or an integer, got %s", field, raw)
		}
		id = string(raw)
	}
	if id == "" {
		return "", pimhook.FieldError(pimhook.CodeMissingEntityID, field, "entity_id is required and may not be empty")
	}
	if len(id) > MaxEventIDLength || !pimhook.Printable(id) {
		return "", pimhook.FieldError(pimhook.CodeValidation, field, "entity_id must be at most %d printable characters", MaxEventIDLength)
	}
	return id, nil
}

// checkEventID checks an idempotency key: 1 to 255 printable characters.
func checkEventID(id, field string) error {
	if id == "" || len(id) > MaxEventIDLength || !pimhook.Printable(id) {
		return pimhook.FieldError(pimhook.CodeValidation, field, "%s must be 1 to %d printable characters", field, MaxEventIDLength)
	}
	return nil
}

// checkObject requires raw to be a JSON object.
func checkObject(raw json.RawMessage, field string) error {
	if b := bytes.TrimSpace(raw); len(b) == 0 || b[0] != '{' {
		return pimhook.FieldError(pimhook.CodeWrongType, field, "%s must be an object", field)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return pimhook.IsNullJSON(raw) }

// asField returns err, a *pimhook.Error, naming field.
func asField(err error, field string) error {
	if e, ok := err.(*pimhook.Error); ok {
		return e.WithField(field)
	}
	return err
}
