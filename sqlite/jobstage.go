package sqlite

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/pimhook/pimhook"
)

// stageBatch is what one write request of a job run stores: products and
// deliveries in staging order, their bytes copied into one arena that is
// reused from batch to batch.
type stageBatch struct {
	arena      []byte
	products   []stagedProduct
	deliveries []stagedDelivery
}

// span is a slice of a batch's arena.
type span struct{ from, to int }

type stagedProduct struct {
	id, pos    int64
	key        string
	hash, data span
}

type stagedDelivery struct {
	id      int64
	d       pimhook.Delivery // Payload unset: it is in the arena
	payload span
}

func (b *stageBatch) keep(p []byte) span {
	from := len(b.arena)
	b.arena = append(b.arena, p...)
	return span{from, len(b.arena)}
}

// bytes returns the bytes of s, empty rather than nil for a NOT NULL column.
func (b *stageBatch) bytes(s span) []byte {
	if s.from == s.to {
		return []byte{}
	}
	return b.arena[s.from:s.to:s.to]
}

func (b *stageBatch) addProduct(id int64, p *pimhook.JobProduct) {
	b.products = append(b.products, stagedProduct{id: id, pos: p.Pos, key: p.Key, hash: b.keep(p.Hash), data: b.keep(p.Data)})
}

func (b *stageBatch) addDelivery(id int64, d *pimhook.Delivery, companyID string) {
	sd := stagedDelivery{id: id, d: *d, payload: b.keep(d.Payload)}
	sd.d.Payload, sd.d.CompanyID = nil, companyID
	if sd.d.Status == "" {
		sd.d.Status = pimhook.DeliveryPending
	}
	b.deliveries = append(b.deliveries, sd)
}

func (b *stageBatch) full() bool {
	return len(b.products)+len(b.deliveries) >= flushRows || len(b.arena) >= flushBytes
}

func (b *stageBatch) empty() bool { return len(b.products) == 0 && len(b.deliveries) == 0 }

func (b *stageBatch) reset() {
	b.arena = b.arena[:0]
	clear(b.products) // let go of the keys
	b.products = b.products[:0]
	clear(b.deliveries)
	b.deliveries = b.deliveries[:0]
}

var (
	insertJobProducts = newMultiInsert(`INSERT INTO job_products (id, key, pos, hash, data)`, 5, 100, 10, 1)
	insertStaged      = newMultiInsert(`INSERT INTO staged_deliveries (id, delivery_id, company_id, app_id, webhook_id,
		event_id, event_name, status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at,
		finished_at)`, 15, 10, 1)
	insertPayloads = newMultiInsert(`INSERT INTO delivery_payloads (id, payload)`, 2, 10, 1)
	insertJobKeys  = newMultiInsert(`INSERT INTO job_keys (set_id, key, id)`, 3, 500, 50, 5, 1)
)

// write stores the batch.
func (b *stageBatch) write(tx *wtx) error {
	err := insertJobProducts.exec(tx, len(b.products), func(args []any, i int) []any {
		p := &b.products[i]
		return append(args, p.id, p.key, p.pos, b.bytes(p.hash), b.bytes(p.data))
	})
	if err != nil {
		return fmt.Errorf("stage products: %w", err)
	}
	err = insertStaged.exec(tx, len(b.deliveries), func(args []any, i int) []any {
		s := &b.deliveries[i]
		d := &s.d
		return append(args, s.id, d.ID, d.CompanyID, d.AppID, d.WebhookID, d.EventID, d.EventName, d.Status,
			d.Attempts, unixNano(d.NextAttemptAt), d.LastStatusCode, d.LastError, unixNano(d.CreatedAt),
			unixNano(d.UpdatedAt), nullUnixNano(d.FinishedAt))
	})
	if err == nil {
		err = insertPayloads.exec(tx, len(b.deliveries), func(args []any, i int) []any {
			return append(args, b.deliveries[i].id, b.bytes(b.deliveries[i].payload))
		})
	}
	if err != nil {
		return fmt.Errorf("stage deliveries: %w", err)
	}
	return nil
}

// stagedKey is a staged product's key, kept in memory until the run's
// buffered keys are written, sorted. id is the product's row, which gives its
// staging order.
type stagedKey struct {
	key string
	id  int64
}

func compareKeys(a, b stagedKey) int {
	return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.id, b.id))
}

// productNumber returns the 1-based staging order of the product in row id.
// The store knows no line numbers: blank lines of a body make them drift
// from staging order, so errors name products by this number instead.
func productNumber(id int64) int64 { return id&(1<<setShift-1) + 1 }

// duplicateKey returns the error of key staged twice, in rows first and
// again, whichever order they are given in.
func duplicateKey(key string, first, again int64) error {
	first, again = min(first, again), max(first, again)
	return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeDuplicateKey,
		"product key %q appears again at product %d (first at product %d)", key, productNumber(again), productNumber(first))
}

// writeKeys stores sorted keys of set. A key the set already has, from an
// earlier call, is a duplicate: the primary key of job_keys refuses it, and
// the row that holds it names the first product with that key.
func writeKeys(tx *wtx, set int64, keys []stagedKey) error {
	err := insertJobKeys.exec(tx, len(keys), func(args []any, i int) []any {
		return append(args, set, keys[i].key, keys[i].id)
	})
	if err == nil {
		return nil
	}
	for _, k := range keys {
		var first int64
		ferr := tx.queryRow(`SELECT id FROM job_keys WHERE set_id = ? AND key = ? AND id <> ?`, set, k.key, k.id).Scan(&first)
		if errors.Is(ferr, sql.ErrNoRows) {
			continue
		}
		if ferr != nil {
			break
		}
		return duplicateKey(k.key, first, k.id)
	}
	return fmt.Errorf("write product keys: %w", err)
}

// multiInsert inserts rows with multi-row INSERT statements of a few fixed
// sizes, so that the writer prepares each of them once and a thousand rows
// take a dozen statements.
type multiInsert struct {
	cols    int
	sizes   []int          // rows per statement, largest first, down to 1
	queries map[int]string // by rows per statement
}

func newMultiInsert(head string, cols int, sizes ...int) *multiInsert {
	m := &multiInsert{cols: cols, sizes: sizes, queries: map[int]string{}}
	row := "(?" + strings.Repeat(", ?", cols-1) + ")"
	for _, n := range sizes {
		m.queries[n] = head + " VALUES " + row + strings.Repeat(", "+row, n-1)
	}
	return m
}

// exec inserts n rows; row appends the arguments of row i to args.
func (m *multiInsert) exec(tx *wtx, n int, row func(args []any, i int) []any) error {
	args := make([]any, 0, min(n, m.sizes[0])*m.cols)
	for i := 0; i < n; {
		size := 1
		for _, s := range m.sizes {
			if s <= n-i {
				size = s
				break
			}
		}
		args = args[:0]
		for j := range size {
			args = row(args, i+j)
		}
		if _, err := tx.exec(m.queries[size], args...); err != nil {
			return err
		}
		i += size
	}
	return nil
}
