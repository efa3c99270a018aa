package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the pimhook binary once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pimhook-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pimhook")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build pimhook: %v\n%s", buildErr, binPath)
	}
	return binPath
}

var listenLine = regexp.MustCompile(`pimhook listening" addr=(http://[0-9.:]+)`)

// proc is a pimhook process.
type proc struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// startProc starts `pimhook serve` on a random port and waits until it listens.
func startProc(t testing.TB, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--api-key", testKey, "--allow-targets", "127.0.0.0/8", "--drain-timeout", "5s"}, extra...)
	cmd := exec.Command(binary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.base = <-addr:
	case err := <-p.done:
		t.Fatalf("pimhook exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("pimhook did not start listening")
	}
	return p
}

// TestCrashSafety kills pimhook with SIGKILL while events are being posted,
// restarts it on the same data, and checks that every event acknowledged with
// 202 is delivered at least once, in per-app order. The receivers are slow
// and fail a fifth of the time, so a backlog is still queued at the kill and
// the restart must deliver it.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	const apps, perApp = 3, 400
	recv := newOrderReceiver(0.2, 7)
	recv.hold = 3 * time.Millisecond
	srv := httptest.NewServer(recv)
	defer srv.Close()
	dataDir := t.TempDir()

	p := startProc(t, dataDir)
	c := newClient(t, p.base)
	types := []string{"product", "brand", "category"}
	for i := range apps {
		app := c.createApp("app " + itoa(i))
		c.createWebhook(map[string]any{
			"callback_url": srv.URL + "/app/" + itoa(i), "app_id": app, "entity_type": types[i],
			"include_entity_data": true, "retry_policy": "linear", "minimum_retry_interval": 0.01, "retry_limit": 20,
		})
	}

	// Post from one goroutine per app, each serially, so that the posted
	// order of an app is well defined; stop at the first refused post.
	acked := make([]atomic.Int64, apps)
	var total atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for i := range apps {
		wg.Go(func() {
			for k := range perApp {
				body, _ := json.Marshal(map[string]any{"entity_type": types[i], "entity_id": "e" + itoa(k), "action": "created", "data": map[string]any{"seq": k}})
				if status, err := postEvent(p.base, body); err != nil || status != http.StatusAccepted {
					return
				}
				acked[i].Store(int64(k + 1))
				if total.Add(1) == apps*perApp/3 {
					close(killed)
				}
			}
		})
	}
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("posting did not get a third of the way")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	arrivedAtKill := make([]int, apps)
	for i := range apps {
		arrivedAtKill[i] = distinctInOrder(recv.received("/app/" + itoa(i)))
	}
	wg.Wait()
	backlog := 0
	for i := range apps {
		backlog += max(int(acked[i].Load())-arrivedAtKill[i], 0)
	}
	if backlog == 0 {
		t.Fatal("every acknowledged event had arrived before the kill: the restart proved nothing")
	}
	t.Logf("%d acknowledged events were still to be delivered at the kill", backlog)

	startProc(t, dataDir)
	for i := range apps {
		path := "/app/" + itoa(i)
		n := int(acked[i].Load())
		if n == 0 {
			t.Fatalf("app %d: nothing acknowledged before the kill", i)
		}
		waitFor(t, "acknowledged events of app "+itoa(i)+" to arrive", 60*time.Second, func() bool {
			return distinctInOrder(recv.received(path)) >= n
		})
		got := recv.received(path)
		// At least once: a delivery in flight at the kill may arrive twice,
		// but the first arrivals must be exactly the posted order.
		firsts := firstArrivals(got)
		for k := range n {
			if k >= len(firsts) || firsts[k] != k {
				t.Fatalf("app %d: first arrivals %v, want 0..%d in order", i, firsts, n-1)
			}
		}
		t.Logf("app %d: %d acknowledged, %d arrivals, %d distinct", i, n, len(got), len(firsts))
	}
}

// distinctInOrder counts how many of 0, 1, 2, ... arrived, in that order of
// first arrival.
func distinctInOrder(seqs []int) int {
	f := firstArrivals(seqs)
	n := 0
	for n < len(f) && f[n] == n {
		n++
	}
	return n
}

func firstArrivals(seqs []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, s := range seqs {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestGracefulShutdown sends SIGTERM while a delivery is in flight: the
// process lets it finish, records it, and exits 0; after a restart the
// delivery is not sent again.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 4)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		arrived <- struct{}{}
		time.Sleep(500 * time.Millisecond) // a slow receiver
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	dataDir := t.TempDir()

	p := startProc(t, dataDir)
	c := newClient(t, p.base)
	hook := c.createWebhook(map[string]any{"callback_url": srv.URL + "/slow"})
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{"entity_type": "product", "entity_id": "1", "action": "created", "data": map[string]any{"seq": 0}}, nil)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("delivery did not start")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("pimhook exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("pimhook did not exit after SIGTERM")
	}

	p2 := startProc(t, dataDir)
	c2 := newClient(t, p2.base)
	var list struct {
		Data []deliveryView `json:"data"`
	}
	c2.must(http.StatusOK, "GET", "/v1/deliveries?webhook_id="+hook.ID, nil, &list)
	if len(list.Data) != 1 || list.Data[0].Status != "succeeded" {
		t.Fatalf("deliveries after restart = %+v, want one succeeded", list.Data)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("receiver saw %d requests, want 1", n)
	}
}
