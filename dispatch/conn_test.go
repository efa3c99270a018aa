package dispatch_test

import (
	"bufio"
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

// A receiver that closes an idle connection: the next delivery goes out on
// a new one, whether the close shows before the request is sent or only
// when its answer is read.
func TestClientIdleConnectionClosedByReceiver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		wait time.Duration // between the two deliveries
	}{
		{"seen before sending", 100 * time.Millisecond},
		{"seen when reading", 0},
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
					// Answered and then closed, as a receiver's idle
					// timeout does; with no wait, the close races the
					// next request and the receiver reads that
					// request first.
					_, _ = io.WriteString(c, okAnswer)
					close(gotFirst)
					if tc.wait == 0 {
						if readRequest(br) {
							requests.Add(1)
						}
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
			if res := send(t, c, rr.url); res.StatusCode != http.StatusOK {
				t.Fatalf("second Send = %+v, want 200 on a new connection", res)
			}
			if n := rr.conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
			want := int32(2)
			if tc.wait == 0 {
				want = 3 // the request the closing connection took, and its second sending
			}
			if n := requests.Load(); n != want {
				t.Errorf("receiver read %d requests, want %d", n, want)
			}
		})
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
