package dispatch

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
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
	if !canPeek {
		t.Skip("no peeking at sockets on this system")
	}
	t.Parallel()
	srv, _ := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
	c := testClient(t)
	if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	srv.CloseClientConnections()
	key := mustKey(t, srv.URL)
	deadline := time.Now().Add(10 * time.Second)
	// The close reaches the client's socket a moment after it is made.
	for pc := c.pool.take(key); pc != nil; pc = c.pool.take(key) {
		c.pool.put(pc)
		if time.Now().After(deadline) {
			t.Fatal("the closed connection was still handed out after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Bytes a receiver sends past its answer over TLS, which TLS holds
// decrypted where neither the socket nor the reader's buffer shows them,
// keep the connection from being used again: the next answer read on it
// would be theirs.
func TestPoolDropsTLSConnectionWithLeftovers(t *testing.T) {
	t.Parallel()
	certs := httptest.NewUnstartedServer(http.NotFoundHandler())
	certs.StartTLS()
	t.Cleanup(certs.Close)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates:                certs.TLS.Certificates,
		DynamicRecordSizingDisabled: true, // the answer and the stray bytes in one record
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	body := strings.Repeat("x", 8<<10) // its end read straight past the reader's 4 KiB buffer
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body+
						"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	c := testClient(t)
	c.pool.tlsConfig.RootCAs = certs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	url := "https://" + ln.Addr().String() + "/hook"
	for i := range 2 {
		if res := sendTo(t, c, url); res.StatusCode != http.StatusOK {
			t.Fatalf("Send %d = %+v, want the 200 the receiver sent for it", i, res)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A request that cannot be written on a reused connection, because the
// receiver reset it after the last look, goes once more on a new one.
func TestPoolResendsUnwrittenRequest(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv, conns := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if requests.Load() == 1 {
			// Answered, then reset.
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			c, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
	c := testClient(t)
	c.pool.usable = func(*persistConn) bool { return true } // the reset comes too late to be seen
	if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	time.Sleep(100 * time.Millisecond) // the reset arrives
	if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
		t.Fatalf("Send on the reset connection = %+v, want 200 from a new one", res)
	}
	if n, r := conns.Load(), requests.Load(); n != 2 || r != 2 {
		t.Errorf("%d connections and %d requests, want 2 and 2", n, r)
	}
}

// Connections idle for the idle timeout are closed, whether or not their
// host gets deliveries again, and are not used again.
func TestPoolIdleTimeout(t *testing.T) {
	t.Parallel()
	t.Run("swept", func(t *testing.T) {
		t.Parallel()
		srv, conns := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
		c := testClient(t)
		c.pool.idleTimeout = 50 * time.Millisecond
		if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
			t.Fatalf("Send = %+v", res)
		}
		waitFor(t, "the idle connection swept", func() bool { return idleFor(c, srv.URL, t) == 0 })
		c.pool.mu.Lock()
		sweeping := c.pool.sweeper != nil
		c.pool.mu.Unlock()
		if sweeping {
			t.Error("the sweeper still runs with no idle connection")
		}
		if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
			t.Fatalf("Send = %+v", res)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
	t.Run("not taken", func(t *testing.T) {
		t.Parallel()
		srv, conns := countingServer(t, false, func(http.ResponseWriter, *http.Request) {})
		c := testClient(t)
		c.pool.idleTimeout = 50 * time.Millisecond
		c.pool.sweeper = time.NewTimer(time.Hour) // no sweeping: take must see the age itself
		if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
			t.Fatalf("Send = %+v", res)
		}
		time.Sleep(100 * time.Millisecond)
		if res := sendTo(t, c, srv.URL); res.StatusCode != http.StatusOK {
			t.Fatalf("Send = %+v", res)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
}

// The pool keeps at most perHost idle connections per host, and maxIdle
// in all, closing the oldest to make room.
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
	for _, h := range []struct {
		url  string
		want int
	}{{srv.URL, 1}, {other.URL, 1}, {third.URL, 1}} {
		if n := idleFor(c, h.url, t); n != h.want {
			t.Errorf("%d idle connections to %s, want %d: the oldest makes room once maxIdle = 3 are pooled", n, h.url, h.want)
		}
	}
	c.CloseIdleConnections()
	if n := idleFor(c, srv.URL, t) + idleFor(c, other.URL, t) + idleFor(c, third.URL, t); n != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections", n)
	}
}

// Hosts are dialled and checked in their ASCII form.
func TestConnKey(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string][3]string{
		"http://Example.COM/hook":       {"http://example.com:80", "example.com:80", "example.com"},
		"https://bücher.example:8443/x": {"https://xn--bcher-kva.example:8443", "xn--bcher-kva.example:8443", "xn--bcher-kva.example"},
		"https://[::1]/x":               {"https://[::1]:443", "[::1]:443", "::1"},
	} {
		key, addr, host, err := connKey(mustParse(t, raw))
		if err != nil || [3]string{key, addr, host} != want {
			t.Errorf("connKey(%s) = %q, %q, %q, %v; want %q", raw, key, addr, host, err, want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func idleFor(c *Client, url string, t *testing.T) int {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return len(c.pool.idle[mustKey(t, url)])
}

func mustKey(t *testing.T, raw string) string {
	key, _, _, err := connKey(mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
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
