package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// TestJobSweep checks that the rows of a set that is no job's state go
// away: the previous state after a commit, an aborted run's, and that of a
// run whose node died, once the job runs again.
func TestJobSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	s := openIn(t, schema, Options{})
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
	// die leaves the run staged and lets go of the job, as the server does
	// when the connection of a node that died goes away.
	die := func(tx pimhook.JobRunTx, _ string) error {
		tx.(*jobRunTx).unlock()
		return nil
	}

	// onlyState waits until the job's current set is the only one left.
	onlyState := func(s *Store) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var sets, products, staged, payloads int
			err := s.pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM job_sets WHERE id NOT IN (SELECT current_set FROM jobs)),
				(SELECT count(*) FROM job_products WHERE set_id NOT IN (SELECT current_set FROM jobs)),
				(SELECT count(*) FROM staged_deliveries),
				(SELECT count(*) FROM delivery_payloads WHERE delivery_id NOT IN (SELECT id FROM deliveries))`,
			).Scan(&sets, &products, &staged, &payloads)
			if err != nil {
				t.Fatal(err)
			}
			if sets+products+staged+payloads == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("left over: %d sets, %d products, %d staged deliveries, %d payloads", sets, products, staged, payloads)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	run(s, commit, "a", "b", "c")
	run(s, commit, "b", "c", "d")
	onlyState(s)
	run(s, abort, "x", "y")
	onlyState(s)
	run(s, die, "p", "q")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openIn(t, schema, Options{})
	run(s, commit, "e")
	onlyState(s)
	var products int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM job_products`).Scan(&products); err != nil || products != 1 {
		t.Errorf("products of the state: %d, %v", products, err)
	}
	// The deliveries of the committed runs keep their payloads.
	ds, err := s.PendingDeliveries(ctx, "app_1", 0, 100)
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries of committed runs: %d, %v", len(ds), err)
	}
	for _, d := range ds {
		if string(d.Payload) != "[]" {
			t.Errorf("delivery %s: payload %q", d.ID, d.Payload)
		}
	}
}

// TestJobStagingOrder stages more deliveries than one batch holds, to three
// apps in turn: Commit gives them Seqs in staging order, across apps too.
func TestJobStagingOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	tx, err := s.BeginJobRun(ctx, "co_1", "job-1", "jr_1")
	if err != nil {
		t.Fatal(err)
	}
	var staged []string
	for i := range 3*flushDeliveryRows + 17 {
		d := &pimhook.Delivery{ID: fmt.Sprintf("msg_%04d_%d", (i*7919)%1000, i), AppID: fmt.Sprint("app_", i%3),
			WebhookID: "wh_1", EventID: "jr_1", EventName: "job.products", Payload: fmt.Appendf(nil, `[%d]`, i)}
		if err := tx.StageDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		staged = append(staged, d.ID)
	}
	apps, err := tx.Commit(ctx, &pimhook.JobRun{ID: "jr_1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"app_0", "app_1", "app_2"}; !slices.Equal(apps, want) {
		t.Errorf("apps: %v, want %v", apps, want)
	}
	var all []*pimhook.Delivery
	for f := (pimhook.DeliveryFilter{CompanyID: "co_1", Limit: 100}); ; {
		page, err := s.Deliveries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		f.BeforeSeq = page[len(page)-1].Seq
	}
	slices.Reverse(all)
	got := make([]string, len(all))
	for i, d := range all {
		got[i] = d.ID
		if want := fmt.Sprintf(`[%d]`, i); string(d.Payload) != want {
			t.Errorf("delivery %s: payload %s, want %s", d.ID, d.Payload, want)
		}
	}
	if !slices.Equal(got, staged) {
		t.Errorf("deliveries by Seq are not in staging order:\n%v\nwant\n%v", got, staged)
	}
}

// TestJobDuplicateKeyMessage checks the products a duplicate key error
// names, whether both are in one batch or in two.
func TestJobDuplicateKeyMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	key := func(i int) string { return fmt.Sprintf("k%05d", i) }
	for _, c := range []struct {
		name      string
		n, at, of int // products staged; product at has the key of product of (0-based)
	}{
		{"in one batch", 70, 60, 10},
		{"in two batches", flushRows + 500, flushRows + 200, 5},
	} {
		tx, err := s.BeginJobRun(ctx, "co_1", "job-1", "jr_"+c.name)
		if err != nil {
			t.Fatal(err)
		}
		var ps []*pimhook.JobProduct
		for i := range c.n {
			k := key(i)
			if i == c.at {
				k = key(c.of)
			}
			ps = append(ps, &pimhook.JobProduct{Key: k, Pos: int64(i), Data: []byte(`{}`), Hash: []byte{1}})
		}
		err = nil
		for chunk := range slices.Chunk(ps, 37) {
			if err = tx.Put(ctx, chunk); err != nil {
				break
			}
		}
		if err == nil {
			_, err = tx.Commit(ctx, &pimhook.JobRun{ID: "jr_" + c.name})
		}
		if pimhook.ErrorCode(err) != pimhook.CodeDuplicateKey {
			t.Errorf("duplicate key %s: %v", c.name, err)
			continue
		}
		msg := fmt.Sprintf("product key %q appears again at product %d (first at product %d)", key(c.of), c.at+1, c.of+1)
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("duplicate key %s: %v; want %s", c.name, err, msg)
		}
		if err := tx.Abort(ctx); err != nil {
			t.Errorf("abort: %v", err)
		}
	}
}

// TestJobSerializedAcrossNodes checks that the runs of one job wait for
// each other whichever node they run on.
func TestJobSerializedAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	a, b := openIn(t, schema, Options{}), openIn(t, schema, Options{})
	first, err := a.BeginJobRun(ctx, "co_1", "job-1", "jr_1")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Put(ctx, []*pimhook.JobProduct{{Key: "p1", Pos: 1, Data: []byte(`{"n":1}`), Hash: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if tx, err := b.BeginJobRun(short, "co_1", "job-1", "jr_2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run on another node while the first is staged: %v, %v", tx, err)
		if tx != nil {
			tx.Abort(ctx)
		}
	}
	type began struct {
		tx  pimhook.JobRunTx
		err error
	}
	second := make(chan began, 1)
	go func() {
		tx, err := b.BeginJobRun(ctx, "co_1", "job-1", "jr_3")
		second <- began{tx, err}
	}()
	select {
	case r := <-second:
		t.Fatalf("second run began while the first was staged: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := first.Commit(ctx, &pimhook.JobRun{ID: "jr_1"}); err != nil {
		t.Fatal(err)
	}
	r := <-second
	if r.err != nil {
		t.Fatalf("second run: %v", r.err)
	}
	defer r.tx.Abort(ctx)
	prev, err := r.tx.Previous(ctx, []string{"p1"})
	if err != nil || prev["p1"] == nil || string(prev["p1"].Data) != `{"n":1}` {
		t.Errorf("previous of the second run: %v, %v", prev, err)
	}
}

// TestJobPlans checks that the job queries use the key index: the lookups
// of Previous, and the anti-join that finds removed products, which reads
// the state's products through the primary key, in staging order.
func TestJobPlans(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for _, c := range []struct {
		query string
		args  []any
		want  []string
	}{
		{`SELECT key, pos, hash, data FROM job_products WHERE set_id = $1 AND key = ANY($2::text[])`,
			[]any{1, []string{"a", "b"}}, []string{"job_products_set_id_key_key"}},
		{removedQuery, []any{1, 2, -1, removedPage}, []string{"job_products_pkey", "job_products_set_id_key_key"}},
	} {
		plan := queryPlan(t, s, c.query, c.args...)
		for _, w := range c.want {
			if !strings.Contains(plan, w) {
				t.Errorf("plan of %s lacks %s:\n%s", c.query, w, plan)
			}
		}
		if strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of %s scans or sorts:\n%s", c.query, plan)
		}
	}
}

// BenchmarkJobRunStaging stages runs of products of about 1 KB: a first
// run of every product, then runs in which 1% changed.
func BenchmarkJobRunStaging(b *testing.B) {
	const n = 20_000
	product := func(i, version int) []byte {
		return fmt.Appendf(nil, `{"id":"P-%07d","name":{"en":"Trail Runner"},"description":"%s","revision":%d}`,
			i, strings.Repeat("x", 900), version)
	}
	stage := func(b *testing.B, s *Store, jobID string, version func(i int) int) {
		ctx := context.Background()
		runID := pimhook.NewID("jr", time.Now())
		tx, err := s.BeginJobRun(ctx, "co_1", jobID, runID)
		if err != nil {
			b.Fatal(err)
		}
		var (
			batch []*pimhook.JobProduct
			keys  []string
		)
		for i := range n {
			data := product((i*7919)%n, version(i))
			key := string(data[7:16])
			sum := sha256.Sum256(data)
			batch = append(batch, &pimhook.JobProduct{Key: key, Pos: int64(i), Data: data, Hash: sum[:]})
			keys = append(keys, key)
			if len(batch) == 1000 || i == n-1 {
				if _, err := tx.Previous(ctx, keys); err != nil {
					b.Fatal(err)
				}
				if err := tx.Put(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch, keys = batch[:0], keys[:0]
			}
		}
		if err := tx.Removed(ctx, func(*pimhook.JobProduct) error { return nil }); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Commit(ctx, &pimhook.JobRun{ID: runID, KeyField: "id", Products: n}); err != nil {
			b.Fatal(err)
		}
	}
	perProduct := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/product")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("first", func(b *testing.B) {
		s := openTest(b)
		job := 0
		for b.Loop() {
			job++
			stage(b, s, fmt.Sprint("job-", job), func(int) int { return 1 })
		}
		perProduct(b)
	})
	b.Run("second", func(b *testing.B) {
		s := openTest(b)
		versions := make([]int, n)
		stage(b, s, "job-1", func(i int) int { return versions[i] })
		for k := 0; b.Loop(); k++ {
			// A different 1% changes in each run.
			for i := k % 100; i < n; i += 100 {
				versions[i]++
			}
			stage(b, s, "job-1", func(i int) int { return versions[i] })
		}
		perProduct(b)
	})
}
