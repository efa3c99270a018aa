package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pimhook/pimhook"
)

// Ingest applies a company's events in order, atomically: all of them,
// their entities, their deliveries and their error-log entries commit
// together or not at all. The entries are stored in the company of the
// call, whatever company they name. It sets each stored delivery's Seq and
// CompanyID (and Status to pending when empty).
//
// Calls made at once share transactions (see batch.go): each call's events
// are applied after those of the calls queued before it, and a call that
// fails (decide returns an error, an event ID is reused) is left out of
// its transaction alone. decide runs on one of the store's ingest workers,
// so it should be quick, and must not write to the Store; a read from it
// takes a connection of the pool. A panic in decide fails the call. decide
// may be called again for an event whose transaction lost a race and ran
// again (see ingestTx).
//
// If ctx ends while the call waits for a worker, nothing is written and
// ctx's error is returned; once a worker has started it, its transaction
// is abandoned only when the contexts of every call sharing it have ended.
func (s *Store) Ingest(ctx context.Context, companyID string, events []*pimhook.Event, decide pimhook.Decider) ([]pimhook.IngestResult, error) {
	for _, ev := range events {
		if ev.ID == "" {
			return nil, fmt.Errorf("ingest: %w", pimhook.FieldError(pimhook.CodeInvalidEvent, "id", "an event needs an ID"))
		}
	}
	if len(events) == 0 {
		return []pimhook.IngestResult{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	r := &ingestRequest{ctx: ctx, companyID: companyID, events: events, decide: decide, done: make(chan struct{})}
	if err := s.ingestQ.push(r); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if s.ingestQ.withdraw(r) {
			return nil, fmt.Errorf("ingest: %w", ctx.Err())
		}
		<-r.done
	}
	if r.err != nil {
		return nil, fmt.Errorf("ingest: %w", storeError(r.err))
	}
	for _, p := range r.deliveries {
		p.d.Seq, p.d.CompanyID, p.d.Status = p.seq, companyID, p.status
	}
	return r.results, nil
}

// ingestRequest is one Ingest call, and what a transaction made of it.
type ingestRequest struct {
	ctx       context.Context
	companyID string
	events    []*pimhook.Event
	decide    pimhook.Decider
	done      chan struct{} // closed once err or the results are set

	err        error
	results    []pimhook.IngestResult
	eventRows  eventColumns
	errorRows  errorLogColumns
	deliveries []*placedDelivery
}

// reset forgets what an attempt made of r.
func (r *ingestRequest) reset() {
	r.err, r.results, r.eventRows, r.errorRows, r.deliveries = nil, nil, eventColumns{}, errorLogColumns{}, nil
}

// entityKey names an entity.
type entityKey struct{ companyID, typ, id string }

func compareEntityKeys(a, b entityKey) int {
	return cmp.Or(strings.Compare(a.companyID, b.companyID), strings.Compare(a.typ, b.typ), strings.Compare(a.id, b.id))
}

// eventKey names an event.
type eventKey struct{ companyID, id string }

// entityState is what a transaction knows of one of its entities.
type entityState struct {
	stored  *pimhook.Entity // nil when the entity has no state
	created bool            // the transaction created the row, as a placeholder, to lock it
	written bool            // the transaction gives it a state
}

// storedEvent is what an event ID already stands for.
type storedEvent struct {
	name        string
	revision    int64
	deliveries  int
	fingerprint string
}

// placedDelivery is a delivery stored by an Ingest call; its struct is
// updated only once the call has committed.
type placedDelivery struct {
	d         *pimhook.Delivery
	companyID string
	seq       int64
	status    pimhook.DeliveryStatus
}

// ingestTx is one transaction of Ingest calls: what it read, and what the
// calls applied so far have made of it.
type ingestTx struct {
	entities map[entityKey]*entityState
	seen     map[eventKey]storedEvent
}

// entityPlaceholderRevision marks the row a transaction creates to lock an
// entity that has no state yet. The transaction gives it a state or deletes
// it before it commits, so no other transaction ever sees one.
const entityPlaceholderRevision = -1

// The statements of an Ingest transaction, in the order it sends them.
const (
	// lockEntitiesSQL locks the row of each entity, in the order given,
	// creating the rows missing as placeholders. ON CONFLICT DO UPDATE
	// locks an existing row, and waits for one another transaction is
	// creating; WHERE false keeps it from writing a new version of the row.
	lockEntitiesSQL = `INSERT INTO entities AS e (company_id, type, id, data, revision, deleted, updated_at)
		SELECT u.company_id, u.type, u.id, NULL, -1, false, 'epoch'
		FROM unnest($1::text[], $2::text[], $3::text[]) AS u(company_id, type, id)
		ON CONFLICT (company_id, type, id) DO UPDATE SET revision = e.revision WHERE false`
	// readEntitiesSQL reads the rows locked: their latest state, since
	// every statement reads what committed before it began. OFFSET 0 keeps
	// the lateral subquery from being merged into a join, which PostgreSQL
	// could run as a scan of every entity: each is read through the
	// primary key.
	readEntitiesSQL = `SELECT e.company_id, e.type, e.id, e.data, e.revision, e.deleted, e.updated_at
		FROM unnest($1::text[], $2::text[], $3::text[]) AS u(company_id, type, id), LATERAL (
			SELECT * FROM entities e WHERE e.company_id = u.company_id AND e.type = u.type AND e.id = u.id OFFSET 0) AS e`
	// seenEventsSQL reads the events stored under the calls' event IDs,
	// each through the primary key, as readEntitiesSQL does: with
	// id = ANY($2), PostgreSQL may plan a scan of all a company's events.
	seenEventsSQL = `SELECT e.company_id, e.id, e.name, e.revision, e.deliveries, e.fingerprint
		FROM unnest($1::text[], $2::text[]) AS u(company_id, id), LATERAL (
			SELECT * FROM events e WHERE e.company_id = u.company_id AND e.id = u.id OFFSET 0) AS e`
	insertEventsSQL = `INSERT INTO events (company_id, id, entity_type, entity_id, action, effective_action, name,
			revision, changed_fields, status, deliveries, fingerprint, source_app_id, received_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::int8[], $9::bytea[], $10::text[], $11::int4[], $12::text[], $13::text[], $14::timestamptz[])`
	// writeEntitiesSQL stores the entities' new states. Their rows exist,
	// locked: the upsert updates each, found through the primary key.
	writeEntitiesSQL = `INSERT INTO entities AS e (company_id, type, id, data, revision, deleted, updated_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int8[], $6::bool[], $7::timestamptz[])
		ON CONFLICT (company_id, type, id) DO UPDATE
		SET data = excluded.data, revision = excluded.revision, deleted = excluded.deleted, updated_at = excluded.updated_at`
	// dropPlaceholderSQL deletes the placeholder of an entity no call gave
	// a state, one statement per entity: few transactions have any, and
	// naming the whole primary key leaves PostgreSQL no plan but a lookup.
	dropPlaceholderSQL = `DELETE FROM entities WHERE company_id = $1 AND type = $2 AND id = $3 AND revision = -1`
)

// runIngest applies reqs, the calls of one transaction, in order, in two
// round trips. First it begins, locks the row of every entity the calls'
// events name, in one order shared by every transaction, reads their
// states, and reads the events already stored under the calls' event IDs.
// Then it calls decide for each event in memory: an event sees the state
// the events before it left. Last it writes the events, entities and
// error-log entries of the calls that did not fail, locks the queues of
// the apps that receive deliveries, takes the deliveries' Seqs, stores
// them, and commits.
//
// The entity locks are held until the commit, so the events of one entity
// are applied in the order the transactions take them, across nodes too;
// sorting the locks keeps transactions from deadlocking. It returns an
// error when the transaction failed; the calls' own failures are in their
// err.
func (s *Store) runIngest(ctx context.Context, reqs []*ingestRequest) error {
	s.ingestTxs.Add(1)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release() // a connection left in a transaction is closed, not reused
	committed := false
	defer func() {
		if !committed {
			rollback(conn)
		}
	}()
	for _, r := range reqs {
		r.reset()
	}

	// Round trip 1: begin, lock the entities, read them and the events.
	var (
		keys   []entityKey
		events []eventKey
	)
	for _, r := range reqs {
		for _, ev := range r.events {
			keys = append(keys, entityKey{r.companyID, ev.EntityType, ev.EntityID})
			events = append(events, eventKey{r.companyID, ev.ID})
		}
	}
	slices.SortFunc(keys, compareEntityKeys)
	keys = slices.Compact(keys)
	companies, types, ids := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		companies[i], types[i], ids[i] = k.companyID, k.typ, k.id
	}
	eventCompanies, eventIDs := make([]string, len(events)), make([]string, len(events))
	for i, k := range events {
		eventCompanies[i], eventIDs[i] = k.companyID, k.id
	}
	tx := &ingestTx{entities: make(map[entityKey]*entityState, len(keys)), seen: make(map[eventKey]storedEvent, len(events))}
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(lockEntitiesSQL, companies, types, ids)
	b.Queue(readEntitiesSQL, companies, types, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var e pimhook.Entity
			if err := rows.Scan(&e.CompanyID, &e.Type, &e.ID, &e.Data, &e.Revision, &e.Deleted, &e.UpdatedAt); err != nil {
				return err
			}
			st := &entityState{stored: &e}
			if e.Revision == entityPlaceholderRevision {
				st.stored, st.created = nil, true
			}
			tx.entities[entityKey{e.CompanyID, e.Type, e.ID}] = st
		}
		return rows.Err()
	})
	b.Queue(seenEventsSQL, eventCompanies, eventIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				k eventKey
				e storedEvent
			)
			if err := rows.Scan(&k.companyID, &k.id, &e.name, &e.revision, &e.deliveries, &e.fingerprint); err != nil {
				return err
			}
			tx.seen[k] = e
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}

	// In memory: decide each call's events.
	for _, r := range reqs {
		tx.apply(r)
	}

	// Round trip 2: write, enqueue, commit.
	b = &pgx.Batch{}
	if !tx.queueWrites(b, reqs) {
		return nil // nothing to write: the deferred rollback drops the locks and placeholders
	}
	b.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	committed = true
	return nil
}

// rollback ends the transaction conn may be in. Should it fail, Release
// closes the connection instead of returning it to the pool.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, `ROLLBACK`)
}

// apply decides the events of r. Should one fail, r fails, and whatever
// its events made of the transaction's state is undone, so that the calls
// after it see the state as if it had never been made.
func (tx *ingestTx) apply(r *ingestRequest) {
	type saved struct {
		key entityKey
		st  entityState
	}
	var (
		undoEntities []saved
		undoSeen     []eventKey
	)
	for _, ev := range r.events {
		err := tx.applyEvent(r, ev, func(k entityKey, st *entityState) {
			if !slices.ContainsFunc(undoEntities, func(s saved) bool { return s.key == k }) {
				undoEntities = append(undoEntities, saved{k, *st})
			}
		}, func(k eventKey) { undoSeen = append(undoSeen, k) })
		if err != nil {
			for _, u := range undoEntities {
				*tx.entities[u.key] = u.st
			}
			for _, k := range undoSeen {
				delete(tx.seen, k)
			}
			r.reset()
			r.err = err
			return
		}
	}
}

// applyEvent decides one event of r and keeps what it writes, calling
// changing before it changes the state of an entity and adding after it
// records an event ID.
func (tx *ingestTx) applyEvent(r *ingestRequest, ev *pimhook.Event, changing func(entityKey, *entityState), adding func(eventKey)) error {
	ek := eventKey{r.companyID, ev.ID}
	if prev, ok := tx.seen[ek]; ok {
		if ev.Fingerprint != "" && prev.fingerprint != "" && ev.Fingerprint != prev.fingerprint {
			return pimhook.Errorf(pimhook.KindConflict, pimhook.CodeIdempotencyReuse,
				"event id %q was already used for a different event", ev.ID)
		}
		r.results = append(r.results, pimhook.IngestResult{EventID: ev.ID, Event: prev.name, Revision: prev.revision,
			Deliveries: prev.deliveries, Status: pimhook.IngestDuplicate})
		return nil
	}
	key := entityKey{r.companyID, ev.EntityType, ev.EntityID}
	st := tx.entities[key]
	if st == nil {
		return fmt.Errorf("entity %s/%s was not locked", ev.EntityType, ev.EntityID)
	}
	dec, err := callDecide(r.decide, ev, cloneEntity(st.stored))
	if err != nil {
		return err
	}
	res := pimhook.IngestResult{EventID: ev.ID, Event: ev.Name(), Revision: ev.Revision, Deliveries: len(dec.Deliveries),
		Status: pimhook.IngestAccepted}
	if dec.Unchanged {
		res.Status = pimhook.IngestUnchanged
	}
	changed, err := jsonBytes(ev.ChangedFields, "[]")
	if err != nil {
		return fmt.Errorf("event %s changed fields: %w", ev.ID, err)
	}
	for _, e := range dec.Errors {
		if e == nil {
			continue
		}
		if err := r.errorRows.add(r.companyID, e); err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
	}
	r.eventRows.add(r.companyID, ev, res, changed)
	tx.seen[ek] = storedEvent{name: res.Event, revision: res.Revision, deliveries: res.Deliveries, fingerprint: ev.Fingerprint}
	adding(ek)
	r.results = append(r.results, res)

	if e := dec.Entity; e != nil {
		// The state is the event's entity's, whatever e names, as the next
		// event of the entity will read it back.
		changing(key, st)
		st.stored = &pimhook.Entity{
			CompanyID: r.companyID, Type: ev.EntityType, ID: ev.EntityID, Data: bytes.Clone(e.Data),
			Revision: e.Revision, Deleted: e.Deleted, UpdatedAt: storedTime(e.UpdatedAt),
		}
		st.written = true
	}
	for _, d := range dec.Deliveries {
		status := d.Status
		if status == "" {
			status = pimhook.DeliveryPending
		}
		r.deliveries = append(r.deliveries, &placedDelivery{d: d, companyID: r.companyID, status: status})
	}
	return nil
}

// callDecide calls decide, turning a panic into an error.
func callDecide(decide pimhook.Decider, ev *pimhook.Event, stored *pimhook.Entity) (dec pimhook.Decision, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decide event %s: panic: %v", ev.ID, p)
		}
	}()
	return decide(ev, stored)
}

func cloneEntity(e *pimhook.Entity) *pimhook.Entity {
	if e == nil {
		return nil
	}
	c := *e
	c.Data = bytes.Clone(e.Data)
	return &c
}

// storedTime returns t as a timestamptz keeps it: in UTC, to the
// microsecond.
func storedTime(t time.Time) time.Time {
	return t.Truncate(time.Microsecond).UTC()
}

// queueWrites queues on b the writes of the calls that did not fail,
// ending with the enqueue of their deliveries, so that the app locks are
// held no longer than the commit takes. It reports whether there is
// anything to commit: calls of duplicates only write nothing.
func (tx *ingestTx) queueWrites(b *pgx.Batch, reqs []*ingestRequest) bool {
	var (
		evs        eventColumns
		errs       errorLogColumns
		deliveries []*placedDelivery
	)
	for _, r := range reqs {
		if r.err == nil {
			evs.merge(&r.eventRows)
			errs.merge(&r.errorRows)
			deliveries = append(deliveries, r.deliveries...)
		}
	}
	var (
		companies, types, ids []string
		data                  [][]byte
		revisions             []int64
		deleted               []bool
		updated               []time.Time
		drop                  []entityKey
	)
	for k, st := range tx.entities {
		switch {
		case st.written:
			companies, types, ids = append(companies, k.companyID), append(types, k.typ), append(ids, k.id)
			data, revisions = append(data, st.stored.Data), append(revisions, st.stored.Revision)
			deleted, updated = append(deleted, st.stored.Deleted), append(updated, st.stored.UpdatedAt)
		case st.created:
			drop = append(drop, k)
		}
	}
	if len(evs.id) == 0 && len(types) == 0 && len(errs.id) == 0 && len(deliveries) == 0 {
		return false
	}
	if len(evs.id) > 0 {
		b.Queue(insertEventsSQL, evs.args()...)
	}
	if len(types) > 0 {
		b.Queue(writeEntitiesSQL, companies, types, ids, data, revisions, deleted, updated)
	}
	for _, k := range drop {
		b.Queue(dropPlaceholderSQL, k.companyID, k.typ, k.id)
	}
	if len(errs.id) > 0 {
		b.Queue(insertErrorLogSQL, errs.args()...)
	}
	if len(deliveries) > 0 {
		queueDeliveries(b, deliveries)
	}
	return true
}

// eventColumns are the rows of events to insert, column by column.
type eventColumns struct {
	companyID, id, entityType, entityID, action, effectiveAction, name []string
	revision                                                           []int64
	changedFields                                                      [][]byte
	status                                                             []string
	deliveries                                                         []int32
	fingerprint, sourceAppID                                           []string
	receivedAt                                                         []time.Time
}

func (c *eventColumns) add(companyID string, ev *pimhook.Event, r pimhook.IngestResult, changed []byte) {
	c.companyID = append(c.companyID, companyID)
	c.id = append(c.id, ev.ID)
	c.entityType = append(c.entityType, ev.EntityType)
	c.entityID = append(c.entityID, ev.EntityID)
	c.action = append(c.action, string(ev.Action))
	c.effectiveAction = append(c.effectiveAction, string(ev.EffectiveAction))
	c.name = append(c.name, r.Event)
	c.revision = append(c.revision, r.Revision)
	c.changedFields = append(c.changedFields, changed)
	c.status = append(c.status, string(r.Status))
	c.deliveries = append(c.deliveries, int32(r.Deliveries))
	c.fingerprint = append(c.fingerprint, ev.Fingerprint)
	c.sourceAppID = append(c.sourceAppID, ev.SourceAppID)
	c.receivedAt = append(c.receivedAt, ev.ReceivedAt)
}

// merge adds o's rows.
func (c *eventColumns) merge(o *eventColumns) {
	c.companyID, c.id = append(c.companyID, o.companyID...), append(c.id, o.id...)
	c.entityType, c.entityID = append(c.entityType, o.entityType...), append(c.entityID, o.entityID...)
	c.action, c.effectiveAction = append(c.action, o.action...), append(c.effectiveAction, o.effectiveAction...)
	c.name, c.revision = append(c.name, o.name...), append(c.revision, o.revision...)
	c.changedFields, c.status = append(c.changedFields, o.changedFields...), append(c.status, o.status...)
	c.deliveries, c.fingerprint = append(c.deliveries, o.deliveries...), append(c.fingerprint, o.fingerprint...)
	c.sourceAppID, c.receivedAt = append(c.sourceAppID, o.sourceAppID...), append(c.receivedAt, o.receivedAt...)
}

// args returns the arguments of insertEventsSQL.
func (c *eventColumns) args() []any {
	return []any{c.companyID, c.id, c.entityType, c.entityID, c.action, c.effectiveAction, c.name, c.revision,
		c.changedFields, c.status, c.deliveries, c.fingerprint, c.sourceAppID, c.receivedAt}
}

// Entity returns an entity's stored state.
func (s *Store) Entity(ctx context.Context, companyID, entityType, id string) (*pimhook.Entity, error) {
	var e pimhook.Entity
	err := s.queryRow(ctx, `SELECT company_id, type, id, data, revision, deleted, updated_at FROM entities
		WHERE company_id = $1 AND type = $2 AND id = $3`, companyID, entityType, id).
		Scan(&e.CompanyID, &e.Type, &e.ID, &e.Data, &e.Revision, &e.Deleted, &e.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeNotFound, "%s %q not found", entityType, id)
	}
	if err != nil {
		return nil, fmt.Errorf("entity: %w", err)
	}
	return &e, nil
}
