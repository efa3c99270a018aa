package dispatch

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// countingServer is an httptest server that counts its connections.
func countingServer(t *testing.T, tlsOn bool, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake is expected
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if tlsOn {
		srv.EnableHTTP2 = true // offered, and not taken
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

func testClient(t *testing.T) *Client {
	t.Helper()
	c := NewClient(ClientConfig{Guard: NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})})
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func sendTo(t *testing.T, c *Client, url string) Response {
	t.Helper()
	return c.Send(t.Context(), Request{URL: url, MsgID: "msg_pool", Body: []byte(`{}`), Secrets: []string{pimhook.NewSecret()}, Timeout: 5 * time.Second})
}

// Deliveries over TLS speak HTTP/1.1 and keep their connection.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	var protos sync.Map
	srv, conns := countingServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		w.WriteHeader(http.StatusAccepted)
	})
	c := testClient(t)
	c.pool.tlsConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	for range 3 {
		if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusAccepted {
			t.Fatalf("Send = %+v", res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("3 sends opened %d connections, want 1", n)
	}
	protos.Range(func(k, _ any) bool {
		if k != "HTTP/1.1" {
			t.Errorf("a delivery came as %v, want HTTP/1.1", k)
		}
		return true
	})

	// A receiver whose certificate is not trusted gets no delivery.
	untrusted := testClient(t)
	if res := sendTo(t, untrusted, srv.URL); res.ErrCode != ErrCodeConnection {
		t.Errorf("Send with an untrusted certificate = %+v, want connection_error", res)
	}
}

// An idle connection the receiver has closed is dropped before a request
// is written on it.
func TestPoolDropsClosedIdleConnection(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
	c := testClient(t)
	if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	srv.CloseClientConnections()
	key, addr := connKey(mustParse(t, srv.URL))
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The close reaches the client's socket a moment after it is made.
		pc, err := c.pool.get(t.Context(), key, addr, "127.0.0.1", false, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !pc.used {
			pc.close()
			break
		}
		c.pool.put(pc)
		if time.Now().After(deadline) {
			t.Fatal("the closed connection was still handed out after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Connections idle for longer than the idle timeout are not used again,
// and are closed by a later put even when their host gets no more
// deliveries.
func TestPoolIdleTimeout(t *testing.T) {
	t.Parallel()
	old, oldConns := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
	other, _ := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
	c := testClient(t)
	c.pool.idleTimeout = 50 * time.Millisecond
	if res := sendTo(t, c, old.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	time.Sleep(100 * time.Millisecond)
	if res := sendTo(t, c, other.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	c.pool.mu.Lock()
	_, kept := c.pool.idle[mustKey(t, old.URL)]
	n := c.pool.nidle
	c.pool.mu.Unlock()
	if kept || n != 1 {
		t.Errorf("after a put: the stale host still pooled = %v, %d idle; want only the fresh connection", kept, n)
	}
	time.Sleep(100 * time.Millisecond)
	if res := sendTo(t, c, old.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	if n := oldConns.Load(); n != 2 {
		t.Errorf("%d connections after the idle timeout, want 2", n)
	}
}

// The pool keeps at most perHost idle connections per host, and maxIdle
// in all.
func TestPoolLimits(t *testing.T) {
	t.Parallel()
	const concurrent = 4
	var arrived sync.WaitGroup
	arrived.Add(concurrent)
	srv, _ := countingServer(t, false, func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Done()
		arrived.Wait() // all requests in flight at once, on their own connections
	})
	other, _ := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
	third, _ := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
	c := testClient(t)
	c.pool.perHost, c.pool.maxIdle = 2, 3
	var wg sync.WaitGroup
	for range concurrent {
		wg.Go(func() {
			if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
				t.Errorf("Send = %+v", res)
			}
		})
	}
	wg.Wait()
	if n := idleFor(c, srv.URL, t); n != 2 {
		t.Errorf("%d idle connections to one host, want perHost = 2", n)
	}
	for _, u := range []string{other.URL, third.URL} {
		if res := sendTo(t, c, u); res.StatusCode != http.StatusOK {
			t.Fatalf("Send = %+v", res)
		}
	}
	if n := idleFor(c, other.URL, t); n != 1 {
		t.Errorf("%d idle connections to the second host, want 1", n)
	}
	if n := idleFor(c, third.URL, t); n != 0 {
		t.Errorf("%d idle connections to the third host, want none: maxIdle = 3 were pooled already", n)
	}
	c.CloseIdleConnections()
	if n := idleFor(c, srv.URL, t); n != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections", n)
	}
}

func idleFor(c *Client, url string, t *testing.T) int {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return len(c.pool.idle[mustKey(t, url)])
}

func mustKey(t *testing.T, raw string) string {
	key, _ := connKey(mustParse(t, raw))
	return key
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
