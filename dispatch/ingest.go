package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/change"
)

// subscription is a webhook with the app it belongs to, as fan-out needs it.
type subscription struct {
	hook *pimhook.Webhook
	app  *pimhook.App
	pos  int // the webhook's place among the company's webhooks
}

// Ingest detects what changed in each event, fans the event out to the
// company's webhooks, and stores events, entity states and deliveries in one
// durable write. When it returns, the apps that received deliveries have been
// woken.
func (d *Dispatcher) Ingest(ctx context.Context, co *pimhook.Company, events []*pimhook.Event) ([]pimhook.IngestResult, error) {
	now := d.clock.Now()
	for _, ev := range events {
		ev.CompanyID = co.ID
		if ev.ID == "" {
			ev.ID = pimhook.NewID(pimhook.PrefixEvent, now)
		}
		if ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = now
		}
		fp, err := fingerprint(ev)
		if err != nil {
			return nil, err
		}
		ev.Fingerprint = fp
	}
	subs, err := d.subscriptions(ctx, co.ID)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	var woken []string
	ferrs := make(map[*pimhook.Event][]*pimhook.ErrorLogEntry)
	decide := func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
		dec, err := detect(ev, stored)
		if err != nil || dec.Unchanged {
			return dec, err
		}
		fo := fanOut(ev, co, subs.forType(ev.EntityType), now, d.shaper)
		dec.Deliveries, dec.Errors = fo.deliveries, fo.errors
		ferrs[ev] = fo.errors
		for _, dl := range dec.Deliveries {
			if dl.Status == pimhook.DeliveryPending {
				woken = append(woken, dl.AppID)
			}
		}
		return dec, nil
	}
	results, err := d.store.Ingest(ctx, co.ID, events, decide)
	if err != nil {
		return nil, err
	}
	for i, ev := range events {
		if results[i].Status == pimhook.IngestAccepted {
			for _, e := range ferrs[ev] {
				results[i].FilterErrors = append(results[i].FilterErrors, pimhook.FilterError{WebhookID: e.WebhookID, Message: e.Error})
			}
		}
	}
	d.cfg.Metrics.ingested(results)
	// One event may reach many webhooks of one app: wake each app once.
	slices.Sort(woken)
	for _, id := range slices.Compact(woken) {
		d.Notify(id)
	}
	return results, nil
}

// subscriptions returns the company's webhooks with their apps, indexed by
// the entity types they hear. Disabled ones are included: their deliveries
// are kept as skipped, to be recovered. The index is built once per load of
// the company's webhooks, so an ingest looks at the webhooks of its event's
// entity type only instead of walking every webhook of the company.
func (d *Dispatcher) subscriptions(ctx context.Context, companyID string) (*subscriptionIndex, error) {
	cw, err := d.cat.webhooks(ctx, companyID)
	if err != nil {
		return nil, err
	}
	cw.idxMu.Lock()
	defer cw.idxMu.Unlock()
	if cw.idx != nil {
		return cw.idx, nil
	}
	idx := &subscriptionIndex{byType: map[string][]subscription{}}
	for i, w := range cw.list {
		if w.JobID != "" {
			continue // job webhooks hear job runs only
		}
		a, err := d.cat.app(ctx, w.AppID)
		if err != nil {
			return nil, fmt.Errorf("app of webhook %s: %w", w.ID, err)
		}
		s := subscription{hook: w, app: a, pos: i}
		if len(w.EntityTypes) == 0 {
			idx.anyType = append(idx.anyType, s)
			continue
		}
		for j, t := range w.EntityTypes {
			if !slices.Contains(w.EntityTypes[:j], t) {
				idx.byType[t] = append(idx.byType[t], s)
			}
		}
	}
	cw.idx = idx
	return idx, nil
}

// subscriptionIndex is a company's entity webhooks by the entity types they
// hear.
type subscriptionIndex struct {
	byType  map[string][]subscription // webhooks that name the type
	anyType []subscription            // webhooks of every type
}

// forType returns the subscriptions that may hear events of entity type t,
// in the company's webhook order.
func (x *subscriptionIndex) forType(t string) []subscription {
	named := x.byType[t]
	switch {
	case len(named) == 0:
		return x.anyType
	case len(x.anyType) == 0:
		return named
	}
	out := make([]subscription, 0, len(named)+len(x.anyType))
	i, j := 0, 0
	for i < len(named) && j < len(x.anyType) {
		if named[i].pos < x.anyType[j].pos {
			out = append(out, named[i])
			i++
		} else {
			out = append(out, x.anyType[j])
			j++
		}
	}
	out = append(out, named[i:]...)
	return append(out, x.anyType[j:]...)
}

// detect is change detection: given the stored state of the entity, it works
// out what the event really is, the entity's next revision and what changed.
//
// The rules: an update of an entity pimhook has never seen (and for which no
// previous data was posted) is a creation; a creation of a live entity is an
// update; an update that changes nothing is no event at all; deleting an
// entity that is already deleted is no event; a deletion without data
// carries the last known data. An event that names the revision it was made
// against is refused when the entity has moved on since.
func detect(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
	live := stored != nil && !stored.Deleted
	current := int64(0)
	if stored != nil {
		current = stored.Revision
	}
	if ev.BaseRevision != nil && *ev.BaseRevision != current {
		return pimhook.Decision{}, &pimhook.Error{
			Kind: pimhook.KindConflict, Code: pimhook.CodeRevisionConflict, Field: "revision",
			Message: fmt.Sprintf("%s %s is at revision %d; the event was made against revision %d", pimhook.SingularName(ev.EntityType), ev.EntityID, current, *ev.BaseRevision),
		}
	}
	rev := current + 1
	entity := &pimhook.Entity{CompanyID: ev.CompanyID, Type: ev.EntityType, ID: ev.EntityID, Data: ev.Data, Revision: rev, UpdatedAt: ev.ReceivedAt}

	switch ev.Action {
	case pimhook.ActionDeleted:
		if stored != nil && stored.Deleted {
			ev.EffectiveAction, ev.Revision = pimhook.ActionDeleted, current
			return pimhook.Decision{Unchanged: true}, nil
		}
		if pimhook.IsNullJSON(ev.Data) && stored != nil {
			ev.Data = stored.Data
		}
		entity.Data, entity.Deleted = ev.Data, true
		ev.EffectiveAction = pimhook.ActionDeleted
	default:
		prev := ev.Previous
		if len(prev) == 0 && live {
			prev = stored.Data
		}
		if len(prev) == 0 {
			ev.EffectiveAction = pimhook.ActionCreated
			break
		}
		changes, err := change.Diff(prev, ev.Data)
		if err != nil {
			return pimhook.Decision{}, pimhook.FieldError(pimhook.CodeInvalidEvent, "data", "cannot compare data: %v", err)
		}
		if len(changes) == 0 {
			dec := pimhook.Decision{Unchanged: true}
			ev.EffectiveAction, ev.Revision = pimhook.ActionUpdated, current
			// The posted previous state wins over the stored one; when the
			// stored state lags, it still becomes the posted data (a new
			// entity starts at revision 1).
			if len(ev.Previous) > 0 && (stored == nil || !bytes.Equal(stored.Data, ev.Data)) {
				entity.Revision = max(current, 1)
				ev.Revision = entity.Revision
				dec.Entity = entity
			}
			return dec, nil
		}
		ev.EffectiveAction = pimhook.ActionUpdated
		ev.ChangedFields = changes
	}
	ev.Revision = rev
	return pimhook.Decision{Entity: entity}, nil
}

// fanout is what fan-out made of one event.
type fanout struct {
	deliveries []*pimhook.Delivery
	errors     []*pimhook.ErrorLogEntry // filters and reducers that failed, for the error log
}

// fanOut matches ev against the subscriptions and renders one delivery per
// match, in webhook order. A webhook's filter, when it has one for the
// event, decides whether it gets a delivery; its reducer reshapes the body.
// A filter or reducer that fails costs its webhook the delivery and is
// recorded against the event.
func fanOut(ev *pimhook.Event, co *pimhook.Company, subs []subscription, now time.Time, sh *shaper) fanout {
	var out fanout
	var data []byte // ev.Data compacted, once for all the webhooks that include it
	for _, s := range subs {
		w := s.hook
		if !w.Subscribes(ev.EntityType, ev.EffectiveAction) || (ev.SourceAppID != "" && w.AppID == ev.SourceAppID) {
			continue
		}
		changes := ev.ChangedFields
		if ev.EffectiveAction == pimhook.ActionUpdated && len(w.Fields) > 0 {
			if changes = w.MonitoredChanges(changes); len(changes) == 0 {
				continue
			}
		}
		if w.IncludeEntityData && data == nil && len(ev.Data) > 0 {
			data = appendCompactJSON(make([]byte, 0, len(ev.Data)), ev.Data)
		}
		body := eventBody(ev, co, s.app, w, changes, data)
		if fr := w.FilterReducerFor(ev.Name()); fr != nil && sh != nil {
			shaped, ok, err := sh.shape(fr, body)
			if err != nil {
				out.errors = append(out.errors, &pimhook.ErrorLogEntry{
					ID:         pimhook.NewID(pimhook.PrefixErrorLog, now),
					CompanyID:  co.ID,
					Source:     pimhook.ErrorSourceFilter,
					OccurredAt: now,
					WebhookID:  w.ID,
					EventID:    ev.ID,
					Error:      err.Error(),
				})
				continue
			}
			if !ok {
				continue
			}
			body = shaped
		}
		dl := &pimhook.Delivery{
			ID:            pimhook.NewID(pimhook.PrefixDelivery, now),
			CompanyID:     co.ID,
			AppID:         w.AppID,
			WebhookID:     w.ID,
			EventID:       ev.ID,
			EventName:     ev.Name(),
			Payload:       body,
			Status:        pimhook.DeliveryPending,
			NextAttemptAt: now,
			CreatedAt:     now,
			UpdatedAt:     now,
		}
		if !w.Enabled {
			// Kept, not sent: recover sends it once the webhook is enabled.
			dl.Status, dl.LastError, dl.FinishedAt = pimhook.DeliverySkipped, skippedDisabled, &now
		}
		out.deliveries = append(out.deliveries, dl)
	}
	return out
}

// fingerprint identifies what was posted, so that a retried post with the
// same idempotency key is told apart from a reused key.
func fingerprint(ev *pimhook.Event) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", ev.EntityType, ev.EntityID, ev.Action, ev.SourceAppID)
	for _, doc := range []json.RawMessage{ev.Data, ev.Previous} {
		if pimhook.IsNullJSON(doc) {
			h.Write([]byte{0})
			continue
		}
		c, err := change.Canonical(doc)
		if err != nil {
			return "", pimhook.FieldError(pimhook.CodeInvalidEvent, "data", "data is not valid JSON: %v", err)
		}
		h.Write(c)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
