package dispatch

import (
	"bufio"
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/idna"

	"github.com/pimhook/pimhook"
)

// connPool keeps the Client's HTTP/1.1 keep-alive connections, and runs
// each exchange on one of them in the caller's goroutine.
//
// net/http's Transport gives every connection a goroutine that writes and
// one that reads, so each request passes between three goroutines and back.
// An app's deliveries go out one after the other, each after the answer to
// the last, and those hand-offs were most of what its worker spent beyond
// the receiver's own time (BENCHMARKS.md). The request is still written by
// net/http's Request.Write and the answer parsed by its ReadResponse.
//
// It never goes through a proxy, which the Guard would then vet instead of
// the receiver, and never follows a redirect, which would let a receiver
// send pimhook's signed payload to a third party: a 3xx is the answer.
//
// Only HTTP/1.1 is spoken, over TLS too: an app has one delivery in flight
// at a time, which multiplexing would not speed up. The request is written
// whole before the answer is read, so a receiver that answers a body larger
// than its socket buffers without reading it is seen as a failed attempt,
// not as its early answer.
type connPool struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConfig   *tls.Config
	perHost     int
	maxIdle     int
	idleTimeout time.Duration
	// usable reports whether an idle connection can carry a request; a
	// field so that a test can stand in for a close that comes too late
	// to be seen.
	usable func(*persistConn) bool

	mu      sync.Mutex
	idle    map[string][]*persistConn // by connKey, oldest first
	lru     list.List                 // every idle connection, oldest first
	sweeper *time.Timer               // closes expired idle connections while there are any
}

// persistConn is one connection and its buffers.
type persistConn struct {
	key    string
	conn   net.Conn
	cr     *countingReader
	cw     *errWriter
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	elem   *list.Element // in connPool.lru while idle
}

func (pc *persistConn) close() { pc.conn.Close() }

// countingReader counts what is read from a connection and fails a read
// past limit, which bounds the response headers a receiver can make
// pimhook buffer.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

var errHeadersTooLarge = errors.New("response headers too large")

func (c *countingReader) Read(p []byte) (int, error) {
	room := c.limit - c.n
	if room <= 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errWriter keeps the first error of the connection's writes: Request.Write
// reports a failure to write the body as a failure to read it, which hides
// whether the connection timed out or closed.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// answer is what an exchange keeps of a response.
type answer struct {
	status int
	header http.Header
	body   []byte // the start of a body that is not 2xx
}

// aLongTimeAgo is a deadline that has passed: it ends a connection's
// blocked reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange sends req and reads its answer before deadline (none when zero),
// or until ctx ends. A request that could not be written on a reused
// connection because the receiver had closed it goes once more on a new
// connection: the receiver has not read it. Once written, a request is not
// sent again whatever happens, as net/http does for a POST.
func (p *connPool) exchange(ctx context.Context, req *http.Request, deadline time.Time) (answer, error) {
	key, addr, host, err := connKey(req.URL)
	if err != nil {
		return answer{}, err
	}
	useTLS := req.URL.Scheme == "https"
	pc := p.take(key)
	reused := pc != nil
	for {
		if err := ctx.Err(); err != nil {
			if pc != nil {
				pc.close()
			}
			return answer{}, err
		}
		if pc == nil {
			if pc, err = p.dialConn(ctx, key, addr, host, useTLS, deadline); err != nil {
				return answer{}, err
			}
		}
		a, unwritten, err := p.roundTrip(ctx, pc, req, deadline)
		if err == nil || !reused || !unwritten || req.GetBody == nil {
			return a, err
		}
		if req.Body, err = req.GetBody(); err != nil {
			return answer{}, err
		}
		pc, reused = nil, false
	}
}

// roundTrip runs one exchange on pc and then pools or closes it.
// unwritten reports a request that failed to go out because the receiver
// had closed or reset the connection.
func (p *connPool) roundTrip(ctx context.Context, pc *persistConn, req *http.Request, deadline time.Time) (a answer, unwritten bool, err error) {
	if err := pc.conn.SetDeadline(deadline); err != nil {
		pc.close()
		return a, false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	keep := false
	defer func() {
		// A cancellation that has begun leaves the deadline in the past.
		if !stop() || !keep || pc.conn.SetDeadline(time.Time{}) != nil {
			pc.close()
			return
		}
		p.put(pc)
	}()

	pc.cw.err = nil
	if err = req.Write(pc.bw); err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		if pc.cw.err != nil {
			err = pc.cw.err
		}
		return a, closedUnder(err), err
	}
	pc.cr.limit = pc.cr.n + maxResponseHeaderBytes
	resp, err := readResponse(pc.br, req)
	pc.cr.limit = math.MaxInt64
	if err != nil {
		return a, false, err
	}
	a.status, a.header = resp.StatusCode, resp.Header
	lr := &io.LimitedReader{R: resp.Body, N: pimhook.ResponseBodyCap}
	if a.status >= 200 && a.status < 300 {
		// Nobody reads a 2xx body: it is drained so that the connection
		// can carry the next request. One larger than the cap costs only
		// its connection: the 2xx already counts.
		_, err = io.Copy(io.Discard, lr)
	} else {
		// A read error keeps what arrived: the status is the answer, the
		// body only explains it.
		a.body, err = readAll(lr)
	}
	// The connection carries on only after a body read to its end, below
	// the cap, of an answer that does not ask to close.
	keep = err == nil && lr.N > 0 && !resp.Close && !req.Close
	return a, false, nil
}

// readResponse reads the final answer to req, skipping informational
// ones. A receiver that switches protocols is not answering a webhook.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("receiver answered 101 Switching Protocols")
		case resp.StatusCode >= 200:
			return resp, nil
		}
	}
}

// closedUnder reports an error of a connection the receiver closed or
// reset.
func closedUnder(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// readAll reads r to its end, keeping what arrived before an error.
func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if len(b) == 0 {
		b = nil
	}
	return b, err
}

// connKey names the connections that can carry a request to u, and gives
// the address to dial and the host name a certificate must match, in
// their ASCII form.
func connKey(u *url.URL) (key, addr, host string, err error) {
	host = strings.ToLower(u.Hostname())
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			if host, err = idna.Lookup.ToASCII(host); err != nil {
				return "", "", "", err
			}
			break
		}
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr = net.JoinHostPort(host, port)
	return u.Scheme + "://" + addr, addr, host, nil
}

// take returns the newest idle connection for key that can still carry a
// request, closing those that cannot, or nil.
func (p *connPool) take(key string) *persistConn {
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[key] = list[:len(list)-1]
		p.lru.Remove(pc.elem)
		pc.elem = nil
		p.mu.Unlock()
		if time.Since(pc.idleAt) < p.idleTimeout && p.usable(pc) {
			return pc
		}
		pc.close()
	}
}

// idleUsable reports whether an idle connection can carry a request:
// nothing arrived on it unasked, neither into its buffers nor into TLS's,
// and the receiver has not closed or reset it.
func idleUsable(pc *persistConn) bool {
	if pc.br.Buffered() > 0 || !stillOpen(pc.conn) {
		return false
	}
	if _, ok := pc.conn.(*tls.Conn); ok {
		// With its deadline passed, a read returns what TLS holds
		// decrypted already, and otherwise fails at once without
		// reading the socket (the exchange sets the deadline anew).
		if pc.conn.SetReadDeadline(aLongTimeAgo) != nil {
			return false
		}
		_, err := pc.br.Peek(1)
		if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
			return false
		}
	}
	return true
}

// put pools pc. A host keeps at most perHost idle connections, and the
// pool maxIdle in all: beyond that the oldest idle connection is closed.
func (p *connPool) put(pc *persistConn) {
	var spare *persistConn
	p.mu.Lock()
	pc.idleAt = time.Now()
	if len(p.idle[pc.key]) >= p.perHost {
		spare = p.removeOldest(pc.key)
	} else if p.lru.Len() >= p.maxIdle {
		spare = p.removeOldest(p.lru.Front().Value.(*persistConn).key)
	}
	if p.idle == nil {
		p.idle = map[string][]*persistConn{}
	}
	p.idle[pc.key] = append(p.idle[pc.key], pc)
	pc.elem = p.lru.PushBack(pc)
	if p.sweeper == nil {
		p.sweeper = time.AfterFunc(p.idleTimeout, p.sweep)
	}
	p.mu.Unlock()
	if spare != nil {
		spare.close()
	}
}

// removeOldest takes the oldest idle connection for key out of the pool.
// The caller holds mu.
func (p *connPool) removeOldest(key string) *persistConn {
	list := p.idle[key]
	pc := list[0]
	copy(list, list[1:])
	list[len(list)-1] = nil
	if list = list[:len(list)-1]; len(list) == 0 {
		delete(p.idle, key)
	} else {
		p.idle[key] = list
	}
	p.lru.Remove(pc.elem)
	pc.elem = nil
	return pc
}

// sweep closes the connections idle for idleTimeout, and runs again while
// any are left.
func (p *connPool) sweep() {
	var stale []*persistConn
	p.mu.Lock()
	now := time.Now()
	for e := p.lru.Front(); e != nil; e = p.lru.Front() {
		pc := e.Value.(*persistConn)
		if now.Sub(pc.idleAt) < p.idleTimeout {
			break
		}
		stale = append(stale, p.removeOldest(pc.key))
	}
	if e := p.lru.Front(); e != nil {
		p.sweeper.Reset(p.idleTimeout - now.Sub(e.Value.(*persistConn).idleAt))
	} else {
		p.sweeper = nil
	}
	p.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.lru.Init()
	if p.sweeper != nil {
		p.sweeper.Stop()
		p.sweeper = nil
	}
	p.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
}

// dialConn opens a connection to addr, with TLS for host when useTLS.
func (p *connPool) dialConn(ctx context.Context, key, addr, host string, useTLS bool, deadline time.Time) (*persistConn, error) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	conn, err := p.dial(dctx, "tcp", addr)
	dcancel()
	if err != nil {
		return nil, err
	}
	if useTLS {
		cfg := p.tlsConfig.Clone()
		cfg.ServerName = host
		tc := tls.Client(conn, cfg)
		hctx, hcancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		hcancel()
		if err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	cr := &countingReader{r: conn, limit: math.MaxInt64}
	cw := &errWriter{w: conn}
	return &persistConn{key: key, conn: conn, cr: cr, cw: cw, br: bufio.NewReader(cr), bw: bufio.NewWriter(cw)}, nil
}
