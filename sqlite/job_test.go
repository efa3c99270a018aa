package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var benchProducts = flag.Int("jobrun.products", 100_000, "products per run in BenchmarkJobRunStaging")

// benchProduct is a product document of about 1 KB, split where its id and
// its revision go.
var benchProduct = strings.Split(`{"id":"%s","sku":"SHOE-RUN-42-BLU","ean":"4006381333931","status":"active",`+
	`"name":{"en":"Trail Runner 42, blue","de":"Trail Runner 42, blau","da":"Trail Runner 42, blå"},`+
	`"description":{"en":"A light trail running shoe with a grippy sole and breathable mesh upper.",`+
	`"de":"Ein leichter Trailschuh mit griffiger Sohle und atmungsaktivem Mesh."},`+
	`"brand":{"id":"B-17","name":"Northpeak"},"price":{"amount":129.95,"currency":"EUR","vat_rate":0.19},`+
	`"stock":{"available":37,"reserved":3,"warehouse":"DK-AAR-1"},`+
	`"dimensions":{"length_cm":32.5,"width_cm":21.0,"height_cm":12.0,"weight_kg":0.64},`+
	`"categories":["shoes","running","trail","men"],"tags":["new","outdoor","bestseller"],`+
	`"attributes":{"color":"blue","size":"42","material":"mesh","gender":"men","waterproof":false},`+
	`"images":[{"url":"https://cdn.example.com/p/100234/1.jpg","alt":"side view","position":1},`+
	`{"url":"https://cdn.example.com/p/100234/2.jpg","alt":"sole","position":2}],`+
	`"variants":[{"sku":"SHOE-RUN-41-BLU","size":"41"},{"sku":"SHOE-RUN-43-BLU","size":"43"}],`+
	`"seo":{"slug":"trail-runner-42-blue","title":"Trail Runner 42 blue | Northpeak"},"revision":%d}`, "%")

// benchRun yields the NDJSON lines of a run of n products, product i at
// revision version(i), keys in no particular order. A line is valid until
// the next one.
func benchRun(n int, version func(i int) int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		var line []byte
		for i := range n {
			line = append(line[:0], benchProduct[0]...)
			line = fmt.Appendf(line, "P-%07d", (i*7919)%n) // a permutation: 7919 is prime
			line = append(line, benchProduct[1][1:]...)
			line = strconv.AppendInt(line, int64(version(i)), 10)
			line = append(line, benchProduct[2][1:]...)
			if !yield(line) {
				return
			}
		}
	}
}

// stageRun runs a job the way the dispatcher does, minus the comparison of
// changed products: it reads the NDJSON products a thousand at a time, looks
// up their previous state, stages them and, for one job webhook, a delivery
// of every 500 added or changed products carrying their data.
func stageRun(tb testing.TB, s *Store, companyID, jobID string, lines iter.Seq[[]byte]) (st runStats) {
	ctx := context.Background()
	runID := pimhook.NewID("jr", time.Now())
	tx, err := s.BeginJobRun(ctx, companyID, jobID, runID)
	if err != nil {
		tb.Fatal(err)
	}
	var (
		batch   []*pimhook.JobProduct
		keys    []string
		payload []byte
		chunk   int
		pos     int64
	)
	stage := func() {
		d := &pimhook.Delivery{ID: pimhook.NewID(pimhook.PrefixDelivery, time.Now()), AppID: "app_1", WebhookID: "wh_1",
			EventID: runID, EventName: "job.products", Payload: append(payload, ']')}
		if err := tx.StageDelivery(ctx, d); err != nil {
			tb.Fatal(err)
		}
		payload, chunk = nil, 0
	}
	emit := func(data []byte) {
		payload = append(append(payload, ','), data...)
		if chunk++; chunk == 500 {
			stage()
		}
	}
	flush := func() {
		prev, err := tx.Previous(ctx, keys)
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range batch {
			if old := prev[p.Key]; old == nil || !bytes.Equal(old.Hash, p.Hash) {
				emit(p.Data)
			}
		}
		if err := tx.Put(ctx, batch); err != nil {
			tb.Fatal(err)
		}
		batch, keys = batch[:0], keys[:0]
		if fi, err := os.Stat(s.path + "-wal"); err == nil {
			st.walBytes = max(st.walBytes, fi.Size())
		}
	}
	for line := range lines {
		key := string(line[7:16]) // "P-nnnnnnn" after `{"id":"`
		sum := sha256.Sum256(line)
		pos++
		batch = append(batch, &pimhook.JobProduct{Key: key, Pos: pos, Data: line, Hash: sum[:]})
		keys = append(keys, key)
		if len(batch) == 1000 {
			flush()
		}
	}
	flush()
	start := time.Now()
	if err := tx.Removed(ctx, func(p *pimhook.JobProduct) error { emit(p.Data); return nil }); err != nil {
		tb.Fatal(err)
	}
	if chunk > 0 {
		stage()
	}
	st.removed = time.Since(start)
	start = time.Now()
	if _, err := tx.Commit(ctx, &pimhook.JobRun{ID: runID, KeyField: "id", Products: int(pos)}); err != nil {
		tb.Fatal(err)
	}
	st.commit = time.Since(start)
	return st
}

// runStats are measures of a run: the largest size of the WAL seen, and how
// long Removed and Commit took.
type runStats struct {
	walBytes        int64
	removed, commit time.Duration
}

// add keeps the worst of st and o.
func (st *runStats) add(o runStats) {
	st.walBytes, st.removed, st.commit = max(st.walBytes, o.walBytes), max(st.removed, o.removed), max(st.commit, o.commit)
}

func (st *runStats) report(b *testing.B) {
	b.ReportMetric(float64(st.walBytes)/(1<<20), "MB-wal")
	b.ReportMetric(st.removed.Seconds()*1000, "ms-removed")
	b.ReportMetric(st.commit.Seconds()*1000, "ms-commit")
}

// BenchmarkJobRunStaging measures the store's share of a job run: a first
// run of -jobrun.products products of about 1 KB, and a second one against
// it in which 1% changed. "decode" decodes the same NDJSON into Go values,
// numbers as json.Number, as the yardstick of the run's cost.
func BenchmarkJobRunStaging(b *testing.B) {
	n := *benchProducts
	first := benchRun(n, func(int) int { return 1 })
	perProduct := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/product")
		b.ReportMetric(0, "ns/op")
	}

	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			for line := range first {
				dec := json.NewDecoder(bytes.NewReader(line))
				dec.UseNumber()
				var v any
				if err := dec.Decode(&v); err != nil {
					b.Fatal(err)
				}
			}
		}
		perProduct(b)
	})

	b.Run("first", func(b *testing.B) {
		s := openTest(b, filepath.Join(b.TempDir(), "pimhook.db"))
		var st runStats
		job := 0
		for b.Loop() {
			job++
			st.add(stageRun(b, s, "co_1", fmt.Sprint("job-", job), first))
		}
		perProduct(b)
		st.report(b)
	})

	b.Run("second", func(b *testing.B) {
		s := openTest(b, filepath.Join(b.TempDir(), "pimhook.db"))
		stageRun(b, s, "co_1", "job-1", first)
		var st runStats
		versions := make([]int, n)
		for i := range versions {
			versions[i] = 1
		}
		for k := 0; b.Loop(); k++ {
			// A different 1% changes in each run.
			for i := k % 100; i < n; i += 100 {
				versions[i]++
			}
			st.add(stageRun(b, s, "co_1", "job-1", benchRun(n, func(i int) int { return versions[i] })))
		}
		perProduct(b)
		st.report(b)
	})
}

// TestJobPlans checks that the job queries use the key index: the lookups
// of Previous, and both sides of the anti-join that finds removed products,
// which then reads them in id order without a sort.
func TestJobPlans(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	for _, c := range []struct {
		query string
		want  []string
	}{
		{`SELECT p.key, p.pos, p.hash, p.data FROM job_keys k JOIN job_products p ON p.id = k.id
			WHERE k.set_id = ?1 AND k.key IN (?2, ?2)`,
			[]string{"k USING PRIMARY KEY (set_id=? AND key=?)", "p USING INTEGER PRIMARY KEY (rowid=?)"}},
		{removedQuery, []string{
			"USING INTEGER PRIMARY KEY (rowid=?)",
			"o USING PRIMARY KEY (set_id=?)",
			"n USING PRIMARY KEY (set_id=? AND key=?)",
		}},
	} {
		plan := queryPlan(t, s, c.query, 1, 2)
		for _, w := range c.want {
			if !slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, w) }) {
				t.Errorf("plan of %s: %q lacks %q", c.query, plan, w)
			}
		}
		if slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, "TEMP B-TREE") }) {
			t.Errorf("plan of %s sorts: %q", c.query, plan)
		}
	}
}

func queryPlan(t *testing.T, s *Store, query string, args ...any) []string {
	t.Helper()
	rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}

// TestJobSweep checks that the rows of a set that is no job's state go
// away: the previous state after a commit, an aborted run's, and, after the
// next Open, those of a run the process never ended.
func TestJobSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	s := openTest(t, path)
	run := func(s *Store, end func(pimhook.JobRunTx, string) error, keys ...string) {
		t.Helper()
		runID := pimhook.NewID("jr", time.Now())
		tx, err := s.BeginJobRun(ctx, "co_1", "job-1", runID)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			if err := tx.Put(ctx, []*pimhook.JobProduct{{Key: k, Pos: int64(i), Data: []byte(`{}`)}}); err != nil {
				t.Fatal(err)
			}
		}
		d := &pimhook.Delivery{ID: "msg_" + runID, AppID: "app_1", WebhookID: "wh_1", EventID: runID, Payload: []byte(`[]`),
			EventName: "job.products"}
		if err := tx.StageDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := end(tx, runID); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(tx pimhook.JobRunTx, runID string) error {
		_, err := tx.Commit(ctx, &pimhook.JobRun{ID: runID})
		return err
	}
	abort := func(tx pimhook.JobRunTx, _ string) error { return tx.Abort(ctx) }
	leave := func(pimhook.JobRunTx, string) error { return nil }

	// onlyState waits until the job's current set is the only one left.
	onlyState := func(s *Store) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var sets, products, keys, staged, payloads int
			err := s.rdb.QueryRowContext(ctx, `SELECT
				(SELECT COUNT(*) FROM job_sets WHERE id NOT IN (SELECT current_set FROM jobs)),
				(SELECT COUNT(*) FROM job_products WHERE id >> 36 NOT IN (SELECT current_set FROM jobs)),
				(SELECT COUNT(*) FROM job_keys WHERE set_id NOT IN (SELECT current_set FROM jobs)),
				(SELECT COUNT(*) FROM staged_deliveries),
				(SELECT COUNT(*) FROM delivery_payloads WHERE id NOT IN (SELECT payload_id FROM deliveries WHERE payload_id IS NOT NULL))`,
			).Scan(&sets, &products, &keys, &staged, &payloads)
			if err != nil {
				t.Fatal(err)
			}
			if sets+products+keys+staged+payloads == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("left over: %d sets, %d products, %d keys, %d staged deliveries, %d payloads",
					sets, products, keys, staged, payloads)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	run(s, commit, "a", "b", "c")
	run(s, commit, "b", "c", "d")
	onlyState(s)
	run(s, abort, "x", "y")
	onlyState(s)
	run(s, leave, "p", "q")
	// The process ends with the run still staged.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	onlyState(s)
	var products int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM job_products`).Scan(&products); err != nil || products != 3 {
		t.Errorf("products of the state: %d, %v", products, err)
	}
	// The deliveries of both committed runs keep their payloads.
	if ds := pendingOf(t, s, "app_1"); len(ds) != 2 || string(ds[0].Payload) != "[]" || string(ds[1].Payload) != "[]" {
		t.Errorf("deliveries of committed runs: %+v", ds)
	}
}

func pendingOf(t *testing.T, s *Store, appID string) []*pimhook.Delivery {
	t.Helper()
	ds, err := s.PendingDeliveries(t.Context(), appID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestJobKeyBuffers checks a run whose keys are written in many buffers:
// the buffer never outgrows its limit, the state a commit leaves is whole,
// and a key staged twice is refused whether the two are in one buffer or in
// two. It changes keyFlushKeys, so it must not run in parallel.
func TestJobKeyBuffers(t *testing.T) {
	ctx := t.Context()
	defer func(n int) { keyFlushKeys = n }(keyFlushKeys)
	keyFlushKeys = 100
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	key := func(i int) string { return fmt.Sprintf("k%04d", i) }

	// stage stages the keys of products, 37 per Put so that buffers fill in
	// the middle of a call, and ends the run with Removed and Commit. It
	// returns the keys Removed reported and the first error.
	stage := func(keys []string, check func(prev map[string]*pimhook.JobProduct, batch []*pimhook.JobProduct)) (removed []string, err error) {
		t.Helper()
		runID := pimhook.NewID("jr", time.Now())
		tx, err := s.BeginJobRun(ctx, "co_1", "job-1", runID)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if peak := tx.(*jobRunTx).peakKeys; peak > keyFlushKeys {
				t.Errorf("%d keys buffered at once, more than %d", peak, keyFlushKeys)
			}
			if err != nil {
				if aerr := tx.Abort(ctx); aerr != nil {
					t.Errorf("abort: %v", aerr)
				}
			}
		}()
		for i, chunk := 0, []string(nil); len(keys) > 0; keys = keys[len(chunk):] {
			chunk = keys[:min(37, len(keys))]
			var batch []*pimhook.JobProduct
			for _, k := range chunk {
				batch = append(batch, &pimhook.JobProduct{Key: k, Pos: int64(i), Data: []byte(`{"id":"` + k + `"}`), Hash: []byte(k)})
				i++
			}
			if check != nil {
				prev, err := tx.Previous(ctx, chunk)
				if err != nil {
					t.Fatal(err)
				}
				check(prev, batch)
			}
			if err := tx.Put(ctx, batch); err != nil {
				return nil, err
			}
		}
		err = tx.Removed(ctx, func(p *pimhook.JobProduct) error {
			removed = append(removed, p.Key)
			return nil
		})
		if err == nil {
			_, err = tx.Commit(ctx, &pimhook.JobRun{ID: runID, KeyField: "id"})
		}
		return removed, err
	}

	// The first run: 1051 keys in no particular order, 11 buffers.
	const n = 1051
	var first []string
	for i := range n {
		first = append(first, key(i*7%n)) // a permutation: 1051 is prime
	}
	if _, err := stage(first, nil); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM job_keys WHERE set_id = (SELECT current_set FROM jobs)`).Scan(&stored); err != nil || stored != n {
		t.Fatalf("keys of the state: %d, %v; want %d", stored, err, n)
	}

	// The second run drops key(0) to key(99) and adds 100 keys: Previous
	// finds every key of the first run, and Removed the dropped ones, in the
	// first run's order.
	var second []string
	for i := 100; i < n+100; i++ {
		second = append(second, key(i))
	}
	found := 0
	removed, err := stage(second, func(prev map[string]*pimhook.JobProduct, batch []*pimhook.JobProduct) {
		for _, p := range batch {
			old := prev[p.Key]
			if (old != nil) != (p.Key < key(n)) {
				t.Errorf("previous product %s: %+v", p.Key, old)
				continue
			}
			if old != nil {
				found++
				if want := slices.Index(first, p.Key); old.Pos != int64(want) || string(old.Data) != `{"id":"`+p.Key+`"}` {
					t.Errorf("previous product %s: pos %d, data %s; want pos %d", p.Key, old.Pos, old.Data, want)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != n-100 {
		t.Errorf("Previous found %d products; want %d", found, n-100)
	}
	var want []string
	for _, k := range first {
		if k < key(100) {
			want = append(want, k)
		}
	}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q;\nwant %q", removed, want)
	}

	// Refused runs: a key again in the same buffer, and in a later one.
	for _, c := range []struct {
		name      string
		n, at, of int // products staged; product at has the key of product of (0-based)
	}{
		{"in one buffer", 70, 60, 10},
		{"in two buffers", 250, 150, 5},
	} {
		var keys []string
		for i := range c.n {
			keys = append(keys, key(i))
		}
		keys[c.at] = keys[c.of]
		_, err := stage(keys, nil)
		if pimhook.ErrorKind(err) != pimhook.KindInvalid || pimhook.ErrorCode(err) != pimhook.CodeDuplicateKey {
			t.Errorf("duplicate key %s: %v", c.name, err)
			continue
		}
		msg := fmt.Sprintf("product key %q appears again at product %d (first at product %d)", keys[c.of], c.at+1, c.of+1)
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("duplicate key %s: %v; want %s", c.name, err, msg)
		}
	}
	// The state is still the second run's.
	removed, err = stage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, second) {
		t.Errorf("the state after refused runs: %d products, %q...; want the second run's %d", len(removed), removed[:min(5, len(removed))], len(second))
	}
}
