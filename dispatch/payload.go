package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pimhook/pimhook"
)

// eventPayload is the body of a format "event" delivery: the elements of
// reference document 1 (entity, company, app, event, workflow, revision).
type eventPayload struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Entity    string          `json:"entity"`
	EntityID  string          `json:"entity_id"`
	Company   payloadCompany  `json:"company"`
	App       payloadApp      `json:"app"`
	Workflow  payloadWorkflow `json:"workflow"`
	Revision  payloadRevision `json:"revision"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data,omitempty"`
}

type payloadCompany struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type payloadApp struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	AppType string `json:"app_type"`
}

type payloadWorkflow struct {
	WebhookID string `json:"webhook_id"`
	Name      string `json:"name"`
	Attempt   int    `json:"attempt"`
}

type payloadRevision struct {
	Number        int64                 `json:"number"`
	ChangedFields []pimhook.FieldChange `json:"changed_fields"`
}

// eventBody renders the payload of ev for webhook w of app a. changes are the
// changes w is told about (only its monitored fields, when it has some).
func eventBody(ev *pimhook.Event, co *pimhook.Company, a *pimhook.App, w *pimhook.Webhook, changes []pimhook.FieldChange) ([]byte, error) {
	if changes == nil {
		changes = []pimhook.FieldChange{}
	}
	p := eventPayload{
		ID:        ev.ID,
		Event:     ev.Name(),
		Entity:    pimhook.SingularName(ev.EntityType),
		EntityID:  ev.EntityID,
		Company:   payloadCompany{ID: co.ID, Name: co.Name},
		App:       payloadApp{ID: a.ID, Name: a.Name, AppType: a.AppType},
		Workflow:  payloadWorkflow{WebhookID: w.ID, Name: w.Name, Attempt: 1},
		Revision:  payloadRevision{Number: ev.Revision, ChangedFields: changes},
		Timestamp: ev.ReceivedAt.UTC().Format(time.RFC3339Nano),
	}
	if w.IncludeEntityData {
		p.Data = ev.Data
		if len(p.Data) == 0 {
			p.Data = json.RawMessage("null")
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("render payload: %w", err)
	}
	return b, nil
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
