package pimhook

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Action is what happened to an entity. The job vocabulary ADDED, UPDATED and
// REMOVED is accepted as an alias of the same three.
type Action string

// Actions.
const (
	ActionCreated Action = "created"
	ActionUpdated Action = "updated"
	ActionDeleted Action = "deleted"
)

// ParseAction accepts created/updated/deleted, ADDED/UPDATED/REMOVED (any
// case) and full event names such as "products.updated".
func ParseAction(s string) (Action, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if i := strings.LastIndexByte(v, '.'); i >= 0 {
		v = v[i+1:]
	}
	switch v {
	case "created", "added", "create":
		return ActionCreated, nil
	case "updated", "update":
		return ActionUpdated, nil
	case "deleted", "removed", "delete":
		return ActionDeleted, nil
	}
	return "", Errorf(KindInvalid, CodeInvalidAction, "action must be created, updated or deleted (or ADDED, UPDATED, REMOVED), got %q", s)
}

var entityTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// EndpointName returns the endpoint (plural) name of an entity type given in
// either form: "product" and "products" both give "products",
// "concrete_entity" gives "concrete_entities". A name ending in a single "s"
// (not "ss", "us" or "is") is taken to be plural already.
func EndpointName(t string) (string, error) {
	t = strings.ToLower(strings.TrimSpace(t))
	if !entityTypeRE.MatchString(t) {
		return "", Errorf(KindInvalid, CodeInvalidEntityType, "entity type must be 1-64 characters of a-z, 0-9 and _, starting with a letter, got %q", t)
	}
	if strings.HasSuffix(t, "s") && !strings.HasSuffix(t, "ss") && !strings.HasSuffix(t, "us") && !strings.HasSuffix(t, "is") {
		return t, nil
	}
	return pluralize(t), nil
}

// SingularName returns the singular name of an endpoint name.
func SingularName(endpoint string) string {
	switch {
	case strings.HasSuffix(endpoint, "ies") && len(endpoint) > 3:
		return endpoint[:len(endpoint)-3] + "y"
	case strings.HasSuffix(endpoint, "sses"), strings.HasSuffix(endpoint, "uses"),
		strings.HasSuffix(endpoint, "xes"), strings.HasSuffix(endpoint, "ches"), strings.HasSuffix(endpoint, "shes"):
		return endpoint[:len(endpoint)-2]
	case strings.HasSuffix(endpoint, "s"):
		return endpoint[:len(endpoint)-1]
	}
	return endpoint
}

func pluralize(s string) string {
	switch {
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiou", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	}
	return s + "s"
}

// EventName returns "<endpoint>.<action>", e.g. "products.updated".
func EventName(endpoint string, a Action) string { return endpoint + "." + string(a) }

// Event is one change of one entity as the PIM reports it, and, once
// ingested, as pimhook understood it.
type Event struct {
	// Input.
	ID          string          // idempotency key: the client's id or Idempotency-Key, else generated
	CompanyID   string          //
	EntityType  string          // endpoint name
	EntityID    string          //
	Action      Action          // as posted
	Data        json.RawMessage // the entity's new data; may be empty for deleted
	Previous    json.RawMessage // optional: the data before the change, instead of the stored state
	SourceAppID string          // optional: the app whose integration made the change
	// BaseRevision, when set, is the entity revision the change was made
	// against; a different stored revision makes the event stale.
	BaseRevision *int64
	ReceivedAt   time.Time //
	Fingerprint  string    // hash of what was posted, to tell a retry from a reused key

	// Filled by change detection.
	EffectiveAction Action        // created for an update of an unknown entity, and so on
	Revision        int64         // the entity's revision after this event
	ChangedFields   []FieldChange // for updates
}

// Name is the event name, e.g. "products.updated".
func (e *Event) Name() string { return EventName(e.EntityType, e.EffectiveAction) }

// FieldChange is one changed field: a dotted path and its values before and
// after. FromMissing/ToMissing tell a field that appeared or disappeared from
// one that was or became a real null.
type FieldChange struct {
	Name        string          `json:"name"`
	From        json.RawMessage `json:"from"`
	To          json.RawMessage `json:"to"`
	FromMissing bool            `json:"from_missing,omitempty"`
	ToMissing   bool            `json:"to_missing,omitempty"`
}

// Entity is one record of the catalogue with its latest data and revision.
type Entity struct {
	CompanyID string
	Type      string // endpoint name
	ID        string
	Data      json.RawMessage
	Revision  int64
	Deleted   bool
	UpdatedAt time.Time
}
