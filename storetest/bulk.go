package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var bulkCases = []testCase{
	{"Operations", testBulkOperations},
	{"Update", testBulkUpdate},
	{"Delete", testBulkDelete},
	{"Runs", testBulkRuns},
	{"RunsLimit", testBulkRunsLimit},
	{"RunWithEntry", testBulkRunWithEntry},
	{"Products", testBulkProducts},
	{"ManyProducts", testBulkManyProducts},
}

func newBulkOperation(t *testing.T, s pimhook.Store, companyID, name string, created time.Time) *pimhook.BulkOperation {
	t.Helper()
	op := &pimhook.BulkOperation{
		CompanyID: companyID, Name: name, URL: "https://erp.example.com/bulk/" + name,
		Headers: map[string]string{"X-Api-Key": "k-" + name}, Secret: pimhook.NewSecret(),
		CreatedAt: created, UpdatedAt: created.Add(time.Second),
	}
	if err := s.CreateBulkOperation(t.Context(), op); err != nil {
		t.Fatalf("create bulk operation %s: %v", name, err)
	}
	return op
}

// bulkRun returns a run of an operation started at second sec.
func bulkRun(companyID, name string, sec int, status pimhook.BulkRunStatus) *pimhook.BulkRun {
	r := &pimhook.BulkRun{
		ID: pimhook.NewID(pimhook.PrefixBulkRun, at(sec)), CompanyID: companyID, OperationName: name,
		URL: "https://erp.example.com/bulk/" + name, Products: []string{fmt.Sprint("sku-", sec), "sku-ü ✓"},
		ProductCount: 2, Status: status, TimeoutMS: 4000, DurationMS: 12.375, StartedAt: at(sec),
	}
	switch status {
	case pimhook.BulkRunSucceeded:
		r.StatusCode = 202
	case pimhook.BulkRunFailed:
		r.StatusCode, r.Error = 500, "the receiver answered 500"
	case pimhook.BulkRunTimeout:
		r.Error, r.DurationMS = "timeout: no answer within 4000 ms", 4000.5
	default:
		r.Error = "connection_refused: dial tcp 10.0.0.9:443: connect: connection refused"
	}
	return r
}

func recordRun(t *testing.T, s pimhook.Store, run *pimhook.BulkRun, entry *pimhook.ErrorLogEntry) {
	t.Helper()
	if err := s.RecordBulkRun(t.Context(), run, entry); err != nil {
		t.Fatalf("record bulk run: %v", err)
	}
}

func bulkRuns(t *testing.T, s pimhook.Store, companyID, name, beforeID string, limit int) []*pimhook.BulkRun {
	t.Helper()
	rs, err := s.BulkRuns(t.Context(), companyID, name, beforeID, limit)
	if err != nil {
		t.Fatalf("bulk runs: %v", err)
	}
	return rs
}

// runIDs returns the IDs of rs.
func runIDs(rs []*pimhook.BulkRun) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func testBulkOperations(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	zeta := newBulkOperation(t, s, c.ID, "zeta.export", at(1))
	alpha := &pimhook.BulkOperation{
		CompanyID: c.ID, Name: "Alpha_1", URL: "http://10.0.0.1:8080/in", Secret: pimhook.NewSecret(),
		CreatedAt: at(2), UpdatedAt: at(2),
	}
	if err := s.CreateBulkOperation(ctx, alpha); err != nil {
		t.Fatalf("create bulk operation without headers: %v", err)
	}
	mid := newBulkOperation(t, s, c.ID, "m-sync", at(3))
	// Another company may use the same name.
	theirs := newBulkOperation(t, s, other.ID, zeta.Name, at(4))

	for _, op := range []*pimhook.BulkOperation{zeta, alpha, mid} {
		got, err := s.BulkOperation(ctx, c.ID, op.Name)
		if err != nil {
			t.Fatalf("bulk operation %s: %v", op.Name, err)
		}
		wantSame(t, "bulk operation", op, got)
		if got.Headers == nil {
			t.Errorf("bulk operation %s: nil headers, want an empty map", op.Name)
		}
	}
	ops, err := s.BulkOperations(ctx, c.ID)
	if err != nil {
		t.Fatalf("bulk operations: %v", err)
	}
	wantSame(t, "bulk operations, by name", []*pimhook.BulkOperation{alpha, mid, zeta}, ops)
	ops, err = s.BulkOperations(ctx, other.ID)
	if err != nil {
		t.Fatalf("bulk operations: %v", err)
	}
	wantSame(t, "another company's operations", []*pimhook.BulkOperation{theirs}, ops)
	if ops, err := s.BulkOperations(ctx, newCompany(t, s, "Initech").ID); err != nil || len(ops) != 0 {
		t.Errorf("operations of a company without any: %v, %v", ops, err)
	}

	dup := *zeta
	dup.URL, dup.Secret = "https://evil.example.com/", pimhook.NewSecret()
	wantError(t, "create an operation whose name is taken", s.CreateBulkOperation(ctx, &dup), pimhook.KindConflict, pimhook.CodeAlreadyExists)
	got, err := s.BulkOperation(ctx, c.ID, zeta.Name)
	if err != nil {
		t.Fatalf("bulk operation: %v", err)
	}
	wantSame(t, "operation after a refused duplicate", zeta, got)

	_, err = s.BulkOperation(ctx, c.ID, "missing")
	wantError(t, "missing operation", err, pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
	_, err = s.BulkOperation(ctx, other.ID, mid.Name)
	wantError(t, "another company's operation", err, pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
}

func testBulkUpdate(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	op := newBulkOperation(t, s, c.ID, "sync", at(1))
	theirs := newBulkOperation(t, s, other.ID, "sync", at(1))

	// URL and headers are replaced; the secret and creation time stay.
	upd := *op
	upd.URL, upd.Headers, upd.UpdatedAt = "https://pim.example.org/hooks/bulk?v=2", map[string]string{"Authorization": "Bearer t"}, at(50)
	upd.Secret, upd.CreatedAt = pimhook.NewSecret(), at(40)
	if err := s.UpdateBulkOperation(ctx, &upd); err != nil {
		t.Fatalf("update bulk operation: %v", err)
	}
	want := *op
	want.URL, want.Headers, want.UpdatedAt = upd.URL, upd.Headers, upd.UpdatedAt
	got, err := s.BulkOperation(ctx, c.ID, op.Name)
	if err != nil {
		t.Fatalf("bulk operation: %v", err)
	}
	wantSame(t, "updated operation", &want, got)
	got, err = s.BulkOperation(ctx, other.ID, op.Name)
	if err != nil {
		t.Fatalf("bulk operation: %v", err)
	}
	wantSame(t, "another company's operation of the same name", theirs, got)

	cleared := want
	cleared.Headers, cleared.UpdatedAt = map[string]string{}, at(60)
	if err := s.UpdateBulkOperation(ctx, &cleared); err != nil {
		t.Fatalf("update bulk operation: %v", err)
	}
	if got, err := s.BulkOperation(ctx, c.ID, op.Name); err != nil || len(got.Headers) != 0 || got.Headers == nil {
		t.Errorf("operation with its headers cleared: %+v, %v", got, err)
	}

	missing := want
	missing.Name = "missing"
	wantError(t, "update a missing operation", s.UpdateBulkOperation(ctx, &missing), pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
	if _, err := s.BulkOperation(ctx, c.ID, "missing"); !pimhook.IsNotFound(err) {
		t.Errorf("update of a missing operation created it: %v", err)
	}
	stranger := *op
	stranger.CompanyID = newCompany(t, s, "Initech").ID
	wantError(t, "update from a company without it", s.UpdateBulkOperation(ctx, &stranger), pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
}

func testBulkDelete(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	op, keep := newBulkOperation(t, s, c.ID, "sync", at(1)), newBulkOperation(t, s, c.ID, "keep", at(2))
	theirs := newBulkOperation(t, s, other.ID, "sync", at(3))
	run := bulkRun(c.ID, op.Name, 10, pimhook.BulkRunSucceeded)
	recordRun(t, s, run, nil)

	wantError(t, "delete another company's operation", s.DeleteBulkOperation(ctx, newCompany(t, s, "Initech").ID, op.Name),
		pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
	if err := s.DeleteBulkOperation(ctx, c.ID, op.Name); err != nil {
		t.Fatalf("delete bulk operation: %v", err)
	}
	_, err := s.BulkOperation(ctx, c.ID, op.Name)
	wantError(t, "deleted operation", err, pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
	wantError(t, "delete twice", s.DeleteBulkOperation(ctx, c.ID, op.Name), pimhook.KindNotFound, pimhook.CodeBulkOpNotFound)
	ops, err := s.BulkOperations(ctx, c.ID)
	if err != nil {
		t.Fatalf("bulk operations: %v", err)
	}
	wantSame(t, "operations after delete", []*pimhook.BulkOperation{keep}, ops)
	got, err := s.BulkOperation(ctx, other.ID, theirs.Name)
	if err != nil {
		t.Fatalf("another company's operation of the deleted name: %v", err)
	}
	wantSame(t, "another company's operation of the deleted name", theirs, got)

	// The runs stay, and the name may be used again.
	wantSame(t, "runs of a deleted operation", []*pimhook.BulkRun{run}, bulkRuns(t, s, c.ID, op.Name, "", 0))
	again := newBulkOperation(t, s, c.ID, op.Name, at(20))
	if got, err := s.BulkOperation(ctx, c.ID, op.Name); err != nil || got.URL != again.URL {
		t.Errorf("operation created again: %+v, %v", got, err)
	}
}

func testBulkRuns(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	statuses := []pimhook.BulkRunStatus{pimhook.BulkRunSucceeded, pimhook.BulkRunFailed, pimhook.BulkRunTimeout, pimhook.BulkRunError}
	var runs []*pimhook.BulkRun
	// Runs of another operation and of another company's operation of the
	// same name come in between.
	for i := range 7 {
		r := bulkRun(c.ID, "sync", 10*i, statuses[i%4])
		recordRun(t, s, r, nil)
		runs = append(runs, r)
		recordRun(t, s, bulkRun(c.ID, "export", 10*i+1, pimhook.BulkRunSucceeded), nil)
		recordRun(t, s, bulkRun(other.ID, "sync", 10*i+2, pimhook.BulkRunSucceeded), nil)
	}
	big := bulkRun(c.ID, "sync", 100, pimhook.BulkRunSucceeded)
	big.Products = make([]string, 3000)
	for i := range big.Products {
		big.Products[i] = fmt.Sprintf("product-%05d", i)
	}
	big.ProductCount = len(big.Products)
	recordRun(t, s, big, nil)
	runs = append(runs, big)
	slices.Reverse(runs)

	wantSame(t, "runs, newest first", runs, bulkRuns(t, s, c.ID, "sync", "", 0))
	for _, r := range bulkRuns(t, s, c.ID, "sync", "", 0) {
		if r.Products == nil {
			t.Errorf("run %s: nil products, want a list", r.ID)
		}
	}
	for _, limit := range []int{1, 3, 5, 8, 20} {
		var walked []*pimhook.BulkRun
		before := ""
		for range 100 {
			page := bulkRuns(t, s, c.ID, "sync", before, limit)
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			before = page[len(page)-1].ID
		}
		wantSame(t, fmt.Sprintf("runs walked %d at a time", limit), runIDs(runs), runIDs(walked))
	}
	wantSame(t, "runs before the fourth newest", runIDs(runs[4:6]), runIDs(bulkRuns(t, s, c.ID, "sync", runs[3].ID, 2)))
	if rs := bulkRuns(t, s, c.ID, "sync", runs[len(runs)-1].ID, 10); len(rs) != 0 {
		t.Errorf("runs before the oldest: %v", runIDs(rs))
	}
	if rs := bulkRuns(t, s, c.ID, "never-run", "", 10); len(rs) != 0 {
		t.Errorf("runs of an operation never run: %v", runIDs(rs))
	}
	if rs := bulkRuns(t, s, other.ID, "sync", "", 0); len(rs) != 7 || slices.ContainsFunc(rs, func(r *pimhook.BulkRun) bool { return r.CompanyID != other.ID }) {
		t.Errorf("another company's runs: %v", runIDs(rs))
	}

	wantError(t, "record a run twice", s.RecordBulkRun(ctx, runs[0], nil), pimhook.KindConflict, "")
	wantSame(t, "runs after a refused duplicate", runIDs(runs), runIDs(bulkRuns(t, s, c.ID, "sync", "", 0)))
}

func testBulkRunsLimit(t *testing.T, s pimhook.Store) {
	c := newCompany(t, s, "Acme")
	const n = pimhook.MaxPage + 1
	var (
		wg   sync.WaitGroup
		errs = make(chan error, n)
	)
	for i := range n {
		wg.Go(func() { errs <- s.RecordBulkRun(t.Context(), bulkRun(c.ID, "sync", i, pimhook.BulkRunSucceeded), nil) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("record bulk run: %v", err)
		}
	}
	for _, tc := range []struct{ limit, want int }{{0, pimhook.DefaultPage}, {-1, pimhook.DefaultPage}, {10, 10}, {pimhook.MaxPage, pimhook.MaxPage}, {5000, pimhook.MaxPage}} {
		if rs := bulkRuns(t, s, c.ID, "sync", "", tc.limit); len(rs) != tc.want {
			t.Errorf("limit %d: %d runs, want %d", tc.limit, len(rs), tc.want)
		}
	}
}

func testBulkRunWithEntry(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	ok := bulkRun(c.ID, "sync", 1, pimhook.BulkRunSucceeded)
	recordRun(t, s, ok, nil)
	if es := errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: c.ID}); len(es) != 0 {
		t.Errorf("error log after a run without an entry: %v", entryIDs(es))
	}

	failed := bulkRun(c.ID, "sync", 2, pimhook.BulkRunFailed)
	entry := &pimhook.ErrorLogEntry{
		ID: pimhook.NewID(pimhook.PrefixErrorLog, at(2)), CompanyID: c.ID, Source: pimhook.ErrorSourceBulk,
		OccurredAt: at(2), OperationName: "sync", RunID: failed.ID, StatusCode: 500,
		Error: failed.Error, ResponseBody: `{"error":"database is down"}`,
	}
	recordRun(t, s, failed, entry)
	wantSame(t, "runs", []*pimhook.BulkRun{failed, ok}, bulkRuns(t, s, c.ID, "sync", "", 0))
	wantSame(t, "error log of a failed run", []*pimhook.ErrorLogEntry{entry}, errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: c.ID}))
	if es := errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: other.ID}); len(es) != 0 {
		t.Errorf("another company's error log: %v", entryIDs(es))
	}

	// Run and entry are stored together or not at all: an entry that
	// cannot be stored (its ID is taken) takes its run with it.
	lost := bulkRun(c.ID, "sync", 3, pimhook.BulkRunTimeout)
	clash := *entry
	clash.RunID, clash.OccurredAt = lost.ID, at(3)
	if err := s.RecordBulkRun(ctx, lost, &clash); err == nil {
		t.Fatal("record a run with an entry whose ID is taken: no error")
	}
	wantSame(t, "runs after a refused run", runIDs([]*pimhook.BulkRun{failed, ok}), runIDs(bulkRuns(t, s, c.ID, "sync", "", 0)))
	wantSame(t, "error log after a refused run", []*pimhook.ErrorLogEntry{entry}, errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: c.ID}))
}

// storeProducts ingests the products of a company, by ID and data; an empty
// data deletes the product.
func storeProducts(t *testing.T, s pimhook.Store, companyID string, products [][2]string) {
	t.Helper()
	tr := newTracker()
	var evs []*pimhook.Event
	for i, p := range products {
		action, data := pimhook.ActionCreated, p[1]
		if data == "" {
			action, data = pimhook.ActionDeleted, `{}`
		}
		evs = append(evs, event(companyID, p[0], action, data, at(i)))
	}
	ingest(t, s, companyID, tr.fanOut(), evs...)
}

// productData is one product Products handed over.
type productData struct {
	id   string
	data json.RawMessage
}

// products walks the live products of a company.
func products(t *testing.T, s pimhook.Store, companyID string) []productData {
	t.Helper()
	var out []productData
	err := s.Products(t.Context(), companyID, func(id string, data json.RawMessage) error {
		out = append(out, productData{id, slices.Clone(data)})
		return nil
	})
	if err != nil {
		t.Fatalf("products: %v", err)
	}
	return out
}

var errStop = errors.New("stop here")

func testBulkProducts(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	if ps := products(t, s, c.ID); len(ps) != 0 {
		t.Errorf("products of an empty company: %v", ps)
	}
	storeProducts(t, s, c.ID, [][2]string{
		{"sku-3", `{"name":"lamp","price":30}`},
		{"sku-1", `{"name":"chair","price":10}`},
		{"gone", `{"name":"sofa"}`},
		{"gone", ""}, // created, then deleted
		{"sku-2", `{"name":"table","price":20}`},
		{"Sku-0", `{"name":"desk"}`},
	})
	// A brand is no product; another company's products are not ours.
	brand := event(c.ID, "sku-4", pimhook.ActionCreated, `{"name":"Acme brand"}`, at(10))
	brand.EntityType = "brands"
	ingest(t, s, c.ID, newTracker().fanOut(), brand)
	storeProducts(t, s, other.ID, [][2]string{{"sku-0", `{"name":"theirs"}`}, {"sku-1", `{"name":"theirs too"}`}})

	want := []productData{
		{"Sku-0", json.RawMessage(`{"name":"desk"}`)},
		{"sku-1", json.RawMessage(`{"name":"chair","price":10}`)},
		{"sku-2", json.RawMessage(`{"name":"table","price":20}`)},
		{"sku-3", json.RawMessage(`{"name":"lamp","price":30}`)},
	}
	got := products(t, s, c.ID)
	if len(got) != len(want) {
		t.Fatalf("products: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].id != want[i].id || !jsonEqual(got[i].data, want[i].data) {
			t.Errorf("product %d: got %s %s, want %s %s", i, got[i].id, got[i].data, want[i].id, want[i].data)
		}
	}

	// A deleted product that comes back is live again.
	storeProducts(t, s, c.ID, [][2]string{{"gone", `{"name":"sofa, again"}`}})
	var seen []string
	if err := s.Products(ctx, c.ID, func(id string, _ json.RawMessage) error {
		seen = append(seen, id)
		return nil
	}); err != nil {
		t.Fatalf("products: %v", err)
	}
	wantSame(t, "products after one came back", []string{"Sku-0", "gone", "sku-1", "sku-2", "sku-3"}, seen)

	// An error of fn ends the walk and is returned.
	seen = nil
	err := s.Products(ctx, c.ID, func(id string, _ json.RawMessage) error {
		seen = append(seen, id)
		if len(seen) == 2 {
			return fmt.Errorf("product %s: %w", id, errStop)
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("products with a failing fn: got %v, want %v", err, errStop)
	}
	wantSame(t, "products seen until fn failed", []string{"Sku-0", "gone"}, seen)
}

func testBulkManyProducts(t *testing.T, s pimhook.Store) {
	c := newCompany(t, s, "Acme")
	const n = 2600
	var (
		ps   [][2]string
		want []string
	)
	for i := range n {
		id := fmt.Sprintf("p%05d", i)
		ps = append(ps, [2]string{id, fmt.Sprintf(`{"id":%q}`, id)})
		if i%7 == 3 {
			ps = append(ps, [2]string{id, ""})
			continue
		}
		want = append(want, id)
	}
	// Stored in an order that is not ID order.
	slices.SortStableFunc(ps, func(a, b [2]string) int { return strings.Compare(a[0][4:], b[0][4:]) })
	storeProducts(t, s, c.ID, ps)
	got := products(t, s, c.ID)
	gotIDs := make([]string, len(got))
	for i, p := range got {
		gotIDs[i] = p.id
		if wantData := fmt.Sprintf(`{"id":%q}`, p.id); !jsonEqual(p.data, []byte(wantData)) {
			t.Errorf("product %s: data %s, want %s", p.id, p.data, wantData)
		}
	}
	wantSame(t, "many products, in ID order", want, gotIDs)
}
