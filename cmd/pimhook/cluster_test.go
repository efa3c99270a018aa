package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// clusterDatabase creates a schema of its own in the test database and
// returns a URL whose connections use it. Without a database the test
// fails: CI provides one.
func clusterDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("the cluster test needs PostgreSQL (TEST_DATABASE_URL): %v", err)
	}
	defer conn.Close(context.Background())
	schema := fmt.Sprintf("pimhook_cluster_%d", rand.Uint32())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// appReceiver is the receiver of one app: it fails a fifth of the requests,
// records the order of first successful arrivals, and counts requests that
// overlapped another of the same app.
type appReceiver struct {
	mu       sync.Mutex
	inFlight int
	overlaps int
	seen     map[int]bool
	order    []int
}

// TestCluster runs three pimhook nodes on one PostgreSQL database, posts
// 50 apps × 200 events through all of them while receivers fail a fifth of
// the time, SIGKILLs one node mid-stream and SIGSTOPs another past its
// lease TTL before resuming it. Every acknowledged event must be delivered,
// each app's events in order, and no app's receiver may ever see two
// requests at once.
func TestCluster(t *testing.T) {
	t.Parallel()
	const apps, events = 50, 200
	db := clusterDatabase(t)

	recv := make([]*appReceiver, apps)
	for i := range recv {
		recv[i] = &appReceiver{seen: map[int]bool{}}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/app/"))
		ar := recv[i]
		ar.mu.Lock()
		ar.inFlight++
		if ar.inFlight > 1 {
			ar.overlaps++
		}
		ar.mu.Unlock()
		var p struct {
			Data struct{ Seq int } `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		time.Sleep(time.Millisecond) // long enough for an overlap to show
		ok := rand.IntN(5) != 0
		ar.mu.Lock()
		ar.inFlight--
		if ok && !ar.seen[p.Data.Seq] {
			ar.seen[p.Data.Seq] = true
			ar.order = append(ar.order, p.Data.Seq)
		}
		ar.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	nodes := make([]*proc, 3)
	for i := range nodes {
		nodes[i] = startProc(t, t.TempDir(), "--database", db, "--lease-ttl", "2s", "--shared-workers", "16")
	}
	c := newClient(t, nodes[2].base)
	for i := range apps {
		app := c.createApp("app " + itoa(i))
		c.createWebhook(map[string]any{
			"app_id": app, "callback_url": srv.URL + "/app/" + itoa(i), "include_entity_data": true,
			"retry_policy": "linear", "minimum_retry_interval": 0.05, "retry_limit": 50,
			"entity_types": []string{"type_" + itoa(i)},
		})
	}

	// Each app's events are posted in order, one at a time, to the nodes in
	// turn; a node that does not answer gets the same event again on the
	// next one (the event id makes that safe).
	var killed, stopped, over atomic.Bool
	var posted atomic.Int64
	var wg sync.WaitGroup
	// The posting goroutines end with the test, failed or not.
	t.Cleanup(func() { over.Store(true); wg.Wait() })
	for i := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range events {
				body, _ := json.Marshal(map[string]any{
					"id": fmt.Sprintf("a%d-e%d", i, seq), "entity_type": "type_" + itoa(i), "entity_id": "p" + itoa(seq),
					"action": "created", "data": map[string]any{"seq": seq},
				})
				for try := 0; ; try++ {
					if over.Load() {
						return
					}
					n := nodes[(i+seq+try)%3]
					if (n == nodes[0] && killed.Load()) || (n == nodes[1] && stopped.Load()) {
						continue
					}
					status, err := postEventTimeout(n.base, body, 5*time.Second)
					if err == nil && status == http.StatusAccepted {
						break
					}
					if try > 50 && !over.Load() {
						t.Errorf("app %d event %d: no node accepted it: %d %v", i, seq, status, err)
						return
					}
				}
				posted.Add(1)
			}
		}()
	}
	waitFor(t, "a third of the events posted", 240*time.Second, func() bool { return posted.Load() > apps*events/3 })
	killed.Store(true)
	if err := nodes[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nodes[0].done
	waitFor(t, "half of the events posted", 240*time.Second, func() bool { return posted.Load() > apps*events/2 })
	stopped.Store(true)
	if err := nodes[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // past the 2 s lease TTL: its apps move
	if err := nodes[1].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped.Store(false)
	wg.Wait()
	if t.Failed() {
		return
	}

	waitFor(t, "every event delivered", 300*time.Second, func() bool {
		for _, ar := range recv {
			ar.mu.Lock()
			n := len(ar.order)
			ar.mu.Unlock()
			if n < events {
				return false
			}
		}
		return true
	})
	for i, ar := range recv {
		ar.mu.Lock()
		for k, seq := range ar.order {
			if seq != k {
				t.Errorf("app %d: arrival %d is event %d, want %d (order %v)", i, k, seq, k, ar.order[:min(len(ar.order), k+5)])
				break
			}
		}
		if ar.overlaps > 0 {
			t.Errorf("app %d: %d requests overlapped another of the same app", i, ar.overlaps)
		}
		ar.mu.Unlock()
	}
}

// postEventTimeout posts one event with a deadline.
func postEventTimeout(base string, body []byte, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestMigratePostgres runs `pimhook migrate --database` twice on a fresh
// schema: the first applies the migrations, the second finds nothing to do.
func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	db := clusterDatabase(t)
	for range 2 {
		var out, errs bytes.Buffer
		if err := run(context.Background(), []string{"migrate", "--database", db}, &out, &errs); err != nil {
			t.Fatalf("migrate: %v\n%s", err, errs.String())
		}
		if !strings.Contains(out.String(), "migrated the PostgreSQL database") {
			t.Errorf("migrate said %q", out.String())
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n < 2 {
		t.Errorf("schema_migrations holds %d rows (%v), want every migration", n, err)
	}
	var leases bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('app_leases') IS NOT NULL").Scan(&leases); err != nil || !leases {
		t.Errorf("app_leases missing after migrate (%v)", err)
	}
	if err := run(context.Background(), []string{"migrate", "--database", "mysql://x"}, io.Discard, io.Discard); err == nil {
		t.Error("migrate took a database URL that is not postgres://")
	}
}
