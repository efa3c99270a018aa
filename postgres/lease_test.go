package postgres

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// eventually polls cond until it holds, and fails t if it does not within
// the deadline.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func acquire(t *testing.T, s *Store, appID, node string, ttl time.Duration) (pimhook.Lease, bool) {
	t.Helper()
	l, ok, err := s.AcquireApp(t.Context(), appID, node, ttl)
	if err != nil {
		t.Fatalf("acquire %s for %s: %v", appID, node, err)
	}
	return l, ok
}

func orphaned(t *testing.T, s *Store) []string {
	t.Helper()
	ids, err := s.OrphanedApps(t.Context())
	if err != nil {
		t.Fatalf("orphaned apps: %v", err)
	}
	return ids
}

// TestLeaseAcrossNodes has two stores on one schema act as two nodes that
// contend for an app.
func TestLeaseAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	a, b := openIn(t, schema, Options{}), openIn(t, schema, Options{})
	if err := a.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	d := ingestOne(t, a, "co_1", "app_1", "evt_1")[0]
	ingestOne(t, a, "co_1", "app_2", "evt_2") // pending, never leased

	la, ok := acquire(t, a, "app_1", "A", time.Second)
	if !ok || la.AppID != "app_1" || la.Node != "A" || la.Token < 1 {
		t.Fatalf("A's claim of a free app: %+v, %v", la, ok)
	}
	if again, ok := acquire(t, a, "app_1", "A", time.Second); !ok || again.Token != la.Token || again.Expires.Before(la.Expires) {
		t.Errorf("A's claim of its own lease: %+v, %v; want it renewed with token %d", again, ok, la.Token)
	}
	if l, ok := acquire(t, b, "app_1", "B", time.Second); ok {
		t.Fatalf("B claimed app_1 while A's lease is live: %+v", l)
	}
	if got := orphaned(t, b); !slices.Equal(got, []string{"app_2"}) {
		t.Errorf("orphaned apps while A holds app_1: %v, want [app_2]", got)
	}

	// A's lease runs out: app_1 is orphaned, and B takes it.
	eventually(t, "app_1 orphaned", 5*time.Second, func() bool { return slices.Contains(orphaned(t, b), "app_1") })
	var lb pimhook.Lease
	eventually(t, "B claims app_1", 5*time.Second, func() bool {
		lb, ok = acquire(t, b, "app_1", "B", 10*time.Second)
		return ok
	})
	if lb.Token <= la.Token || lb.Node != "B" {
		t.Errorf("B's lease %+v after A's token %d", lb, la.Token)
	}
	if got := orphaned(t, a); slices.Contains(got, "app_1") {
		t.Errorf("orphaned apps while B holds app_1: %v", got)
	}
	if held, err := a.RenewApps(ctx, "A", []string{"app_1"}, time.Second); err != nil || len(held) != 0 {
		t.Errorf("A renews app_1 after B took it: %+v, %v; want none", held, err)
	}
	if held, err := b.RenewApps(ctx, "B", []string{"app_1", "app_2"}, 10*time.Second); err != nil ||
		len(held) != 1 || held[0].AppID != "app_1" || held[0].Token != lb.Token {
		t.Errorf("B renews app_1: %+v, %v; want its lease, token %d", held, err, lb.Token)
	}

	// A's write under its old lease is refused; B's is made.
	before, err := a.Delivery(ctx, "co_1", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	try := func(s *Store, l pimhook.Lease, id string) error {
		now := time.Now().UTC()
		nd := *before
		nd.Attempts, nd.LastStatusCode, nd.LastError, nd.UpdatedAt = 1, 503, "HTTP 503", now
		nd.NextAttemptAt = now.Add(time.Minute)
		return s.RecordAttempt(pimhook.WithLease(ctx, l), &nd, &pimhook.Attempt{ID: id, DeliveryID: d.ID, Number: 1,
			StartedAt: now, StatusCode: 503, Error: "HTTP 503"})
	}
	var pe *pimhook.Error
	if err := try(a, la, "att_a"); !errors.As(err, &pe) || pe.Kind != pimhook.KindConflict || pe.Code != pimhook.CodeLeaseLost {
		t.Errorf("A's attempt under its old lease: %v, want a %s conflict", err, pimhook.CodeLeaseLost)
	}
	if after, err := a.Delivery(ctx, "co_1", d.ID); err != nil || after.Attempts != 0 || after.UpdatedAt != before.UpdatedAt {
		t.Errorf("delivery after the refused attempt: %+v, %v; want it unchanged", after, err)
	}
	if as, err := a.Attempts(ctx, d.ID); err != nil || len(as) != 0 {
		t.Errorf("attempts after the refused attempt: %d, %v; want none", len(as), err)
	}
	if err := try(b, lb, "att_b"); err != nil {
		t.Fatalf("B's attempt under its lease: %v", err)
	}
	if as, err := b.Attempts(ctx, d.ID); err != nil || len(as) != 1 || as[0].ID != "att_b" {
		t.Errorf("attempts after B's attempt: %+v, %v; want att_b", as, err)
	}
	// A lease of another app does not do.
	l2, _ := acquire(t, b, "app_2", "B", 10*time.Second)
	if err := try(b, l2, "att_c"); !errors.As(err, &pe) || pe.Code != pimhook.CodeLeaseLost {
		t.Errorf("an attempt under a lease of another app: %v, want %s", err, pimhook.CodeLeaseLost)
	}

	// Released, the app is free at once; its next lease has a new token.
	if err := b.ReleaseApp(ctx, lb); err != nil {
		t.Fatalf("release: %v", err)
	}
	la2, ok := acquire(t, a, "app_1", "A", 10*time.Second)
	if !ok || la2.Token <= lb.Token {
		t.Errorf("A's claim after B released app_1: %+v, %v; want a token above %d", la2, ok, lb.Token)
	}
	// A release of a lease that is no longer current changes nothing.
	if err := b.ReleaseApp(ctx, lb); err != nil {
		t.Fatalf("release again: %v", err)
	}
	if l, ok := acquire(t, b, "app_1", "B", time.Second); ok {
		t.Errorf("B claimed app_1 after a stale release: %+v", l)
	}
}

// TestListenWork has one node hear of the work another queues: ingest,
// requeue, release.
func TestListenWork(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	a, b := openIn(t, schema, Options{}), openIn(t, schema, Options{})
	if err := a.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	// The channel is shared by every schema of the database: the apps are
	// named after this test's schema, and the signals of others ignored.
	appNew, appOld := schema+"_new", schema+"_old"
	old := ingestOne(t, a, "co_1", appOld, "evt_old")[0]
	now := time.Now().UTC()
	old.Status, old.UpdatedAt, old.FinishedAt = pimhook.DeliveryFailed, now, &now
	if err := a.RecordAttempt(ctx, old, nil); err != nil {
		t.Fatal(err)
	}

	heard := make(chan string, 1000)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := b.ListenWork(lctx, func(id string) {
		if id == appNew || id == appOld {
			heard <- id
		}
	}); err != nil {
		t.Fatalf("listen work: %v", err)
	}
	wantHeard := func(what, want string) {
		t.Helper()
		select {
		case got := <-heard:
			if got != want {
				t.Errorf("%s: heard of %s, want %s", what, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: heard of no work for %s", what, want)
		}
	}
	ingestOne(t, a, "co_1", appNew, "evt_new")
	wantHeard("ingest", appNew)
	if _, err := a.RequeueDeliveries(ctx, "co_1", []string{old.ID}, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantHeard("requeue", appOld)
	l, ok := acquire(t, a, appOld, "A", time.Minute)
	if !ok {
		t.Fatal("claim of a free app failed")
	}
	if err := a.ReleaseApp(ctx, l); err != nil {
		t.Fatal(err)
	}
	wantHeard("release", appOld)
	select {
	case id := <-heard:
		t.Errorf("heard of %s once more", id)
	default:
	}

	// Its connection cut, the listener connects again, and hears of the
	// work queued meanwhile.
	pid := b.listenPID.Load()
	if _, err := a.exec(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listening again", 10*time.Second, func() bool { return b.listenPID.Load() != pid })
	ingestOne(t, a, "co_1", appNew, "evt_new_2")
	// Orphaned apps are signalled on reconnecting: appOld may come first.
	for got := ""; got != appNew; {
		select {
		case got = <-heard:
		case <-time.After(10 * time.Second):
			t.Fatalf("heard of no work for %s after the listener reconnected", appNew)
		}
	}
}

// TestListenWorkClosed: a closed store does not listen, and closing a
// store ends its listening.
func TestListenWorkClosed(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	if err := s.ListenWork(t.Context(), func(string) {}); err != nil {
		t.Fatalf("listen work: %v", err)
	}
	s.Close() // returns once the listener stopped
	if err := s.ListenWork(t.Context(), func(string) {}); !errors.Is(err, errClosed) {
		t.Errorf("listen work on a closed store: %v, want %v", err, errClosed)
	}
}
