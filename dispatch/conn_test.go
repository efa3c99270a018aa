package dispatch_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// rawReceiver is a loopback listener whose connections serve is given
// one by one, with how many came before: a receiver that answers as the
// test writes it, byte for byte.
type rawReceiver struct {
	url   string
	conns atomic.Int32
}

func newRawReceiver(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *rawReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawReceiver{url: "http://" + ln.Addr().String() + "/hook"}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(r.conns.Add(1))
			wg.Go(func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			})
		}
	})
	return r
}

// readRequest reads one request and its body, reporting whether one came.
func readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err == nil
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func send(t *testing.T, c *dispatch.Client, url string) dispatch.Response {
	t.Helper()
	return c.Send(t.Context(), dispatch.Request{URL: url, MsgID: "msg_conn", Body: []byte(`{"sku":"A-1"}`),
		Secrets: []string{pimhook.NewSecret()}, Timeout: 5 * time.Second})
}

// A receiver that closes an idle connection: a close seen before the next
// delivery sends it on a new connection; one that comes as the receiver
// reads that delivery fails the attempt, which is not sent again: the
// receiver may have acted on it.
func TestClientIdleConnectionClosedByReceiver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		wait  time.Duration // between the two deliveries
		conns int32
	}{
		{"closed before", 100 * time.Millisecond, 2},
		{"closed as the request goes", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var requests atomic.Int32
			gotFirst := make(chan struct{})
			rr := newRawReceiver(t, func(n int, c net.Conn, br *bufio.Reader) {
				if !readRequest(br) {
					return
				}
				requests.Add(1)
				if n == 1 {
					// Answered and then closed without a word, as a
					// receiver's idle timeout does; with no wait, the
					// close comes after the next request was read.
					_, _ = io.WriteString(c, okAnswer)
					close(gotFirst)
					if tc.wait == 0 && readRequest(br) {
						requests.Add(1)
					}
					return
				}
				_, _ = io.WriteString(c, okAnswer)
			})
			c := loopbackClient(t)
			if res := send(t, c, rr.url); res.StatusCode != http.StatusOK {
				t.Fatalf("first Send = %+v", res)
			}
			<-gotFirst
			time.Sleep(tc.wait)
			res := send(t, c, rr.url)
			if tc.wait > 0 && res.StatusCode != http.StatusOK {
				t.Errorf("second Send = %+v, want 200 on a new connection", res)
			}
			if tc.wait == 0 && (res.ErrCode != dispatch.ErrCodeConnection || res.StatusCode != 0) {
				t.Errorf("second Send = %+v, want connection_error", res)
			}
			if n := rr.conns.Load(); n != tc.conns {
				t.Errorf("%d connections, want %d", n, tc.conns)
			}
			if n := requests.Load(); n != 2 {
				t.Errorf("receiver read %d requests, want 2", n)
			}
		})
	}
}

// A receiver that stops reading times the attempt out while its body is
// being written.
func TestClientWriteTimeout(t *testing.T) {
	t.Parallel()
	rr := newRawReceiver(t, func(_ int, c net.Conn, _ *bufio.Reader) {
		time.Sleep(2 * time.Second) // reads nothing
	})
	res := loopbackClient(t).Send(t.Context(), dispatch.Request{URL: rr.url, MsgID: "msg_stuck",
		Body: bytes.Repeat([]byte("x"), 64<<20), Secrets: []string{pimhook.NewSecret()}, Timeout: 200 * time.Millisecond})
	if res.ErrCode != dispatch.ErrCodeTimeout || res.Err == nil {
		t.Errorf("Send = %+v, want timeout", res)
	}
}

// A receiver that takes the connection but never answers the TLS
// handshake holds the attempt no longer than its timeout.
func TestClientTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	rr := newRawReceiver(t, func(_ int, c net.Conn, _ *bufio.Reader) {
		<-done // reads nothing, answers nothing
	})
	t.Cleanup(func() { close(done) }) // before the receiver's own cleanup
	start := time.Now()
	res := loopbackClient(t).Send(t.Context(), dispatch.Request{URL: "https" + strings.TrimPrefix(rr.url, "http"),
		MsgID: "msg_tls", Body: []byte(`{}`), Secrets: []string{pimhook.NewSecret()}, Timeout: 200 * time.Millisecond})
	if res.ErrCode != dispatch.ErrCodeTimeout || res.Err == nil {
		t.Errorf("Send = %+v, want timeout", res)
	}
	// Without the attempt's deadline the handshake would wait for the
	// client's 10 s cap on handshakes.
	if took := time.Since(start); took >= 5*time.Second {
		t.Errorf("Send took %v: the handshake outlived the attempt's 200ms", took)
	}
	if n := rr.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// An attempt whose context has ended sends nothing.
func TestClientCancelledSendsNothing(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	rr := newRawReceiver(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			requests.Add(1)
			if _, err := io.WriteString(c, okAnswer); err != nil {
				return
			}
		}
	})
	c := loopbackClient(t)
	if res := send(t, c, rr.url); res.StatusCode != http.StatusOK { // a pooled connection to try
		t.Fatalf("Send = %+v", res)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 20 {
		if res := c.Send(ctx, dispatch.Request{URL: rr.url, MsgID: "msg_cancelled", Body: []byte("{}"), Secrets: []string{pimhook.NewSecret()}}); res.Err == nil {
			t.Fatalf("Send = %+v, want an error", res)
		}
	}
	if res := send(t, c, rr.url); res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v", res)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("receiver read %d requests, want the 2 not cancelled", n)
	}
}

// A failure on a new connection is the attempt's: it is not sent again.
func TestClientNoSecondSendOnNewConnection(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	rr := newRawReceiver(t, func(_ int, _ net.Conn, br *bufio.Reader) {
		if readRequest(br) {
			requests.Add(1)
		}
	})
	res := send(t, loopbackClient(t), rr.url)
	if res.ErrCode != dispatch.ErrCodeConnection || res.Err == nil {
		t.Errorf("Send = %+v, want connection_error", res)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("receiver read %d requests, want 1", n)
	}
}

// Connections that cannot carry another request are closed: an answer
// that asks for it, one whose body passes the cap, one not read to its end.
func TestClientClosesSpentConnections(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", pimhook.ResponseBodyCap+1)
	for name, answer := range map[string]string{
		"Connection: close":   "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"2xx body too long":   "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big,
		"error body too long": "HTTP/1.1 500 Internal Server Error\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big,
		"HTTP/1.0":            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rr := newRawReceiver(t, func(_ int, c net.Conn, br *bufio.Reader) {
				for readRequest(br) {
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			})
			c := loopbackClient(t)
			for i := range 2 {
				if res := send(t, c, rr.url); res.StatusCode == 0 {
					t.Fatalf("Send %d = %+v", i, res)
				}
			}
			if n := rr.conns.Load(); n != 2 {
				t.Errorf("two sends opened %d connections, want 2", n)
			}
		})
	}
}

// Informational answers are skipped; a chunked body is read to its end and
// the connection kept.
func TestClientInformationalAndChunked(t *testing.T) {
	t.Parallel()
	rr := newRawReceiver(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			_, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
				"HTTP/1.1 422 Unprocessable Entity\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsku \r\n7\r\nmissing\r\n0\r\n\r\n")
			if err != nil {
				return
			}
		}
	})
	c := loopbackClient(t)
	for range 2 {
		res := send(t, c, rr.url)
		if res.StatusCode != http.StatusUnprocessableEntity || string(res.Body) != "sku missing" {
			t.Fatalf("Send = %+v (body %q), want 422 and its body", res, res.Body)
		}
	}
	if n := rr.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestClientRefusesBadAnswers(t *testing.T) {
	t.Parallel()
	huge := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 300) + "\r\n"
	for name, answer := range map[string]string{
		"headers too large":   huge,
		"switching protocols": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"not HTTP":            "SSH-2.0-OpenSSH_9.6\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rr := newRawReceiver(t, func(_ int, c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					_, _ = io.WriteString(c, answer)
				}
			})
			res := send(t, loopbackClient(t), rr.url)
			if res.ErrCode != dispatch.ErrCodeConnection || res.Err == nil || res.StatusCode != 0 {
				t.Errorf("Send = %+v, want connection_error", res)
			}
		})
	}
}

// Cancelling the attempt's context (Stop) ends an exchange that waits for
// an answer at once.
func TestClientCancelEndsTheExchange(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rr := newRawReceiver(t, func(_ int, _ net.Conn, br *bufio.Reader) {
		if readRequest(br) {
			<-release
		}
	})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	res := loopbackClient(t).Send(ctx, dispatch.Request{URL: rr.url, MsgID: "msg_cancel", Body: []byte("{}"),
		Secrets: []string{pimhook.NewSecret()}, Timeout: time.Minute})
	if res.Err == nil || res.StatusCode != 0 {
		t.Errorf("Send = %+v, want an error", res)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Send took %v after its context was cancelled", took)
	}
}
