package dispatch

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

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
// Only HTTP/1.1 is spoken, over TLS too: an app has one delivery in flight
// at a time, which multiplexing would not speed up.
type connPool struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConfig   *tls.Config
	perHost     int
	maxIdle     int
	idleTimeout time.Duration

	mu        sync.Mutex
	idle      map[string][]*persistConn // by connKey, oldest first
	nidle     int
	lastSweep time.Time
}

// persistConn is one connection and its buffers.
type persistConn struct {
	key    string
	conn   net.Conn
	cr     *countingReader
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	used   bool // has carried an exchange before
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
// or until ctx ends. A request that finds a reused connection closed under
// it, before any of an answer came, is sent once more on a new one: the
// receiver closed an idle connection as the request went out, and has not
// seen it.
func (p *connPool) exchange(ctx context.Context, req *http.Request, deadline time.Time) (answer, error) {
	key, addr := connKey(req.URL)
	for try := 0; ; try++ {
		pc, err := p.get(ctx, key, addr, req.URL.Hostname(), req.URL.Scheme == "https", deadline)
		if err != nil {
			return answer{}, err
		}
		a, err, again := p.roundTrip(ctx, pc, req, deadline)
		if err == nil || !again || try > 0 || req.GetBody == nil {
			return a, err
		}
		if req.Body, err = req.GetBody(); err != nil {
			return answer{}, err
		}
	}
}

// roundTrip runs one exchange on pc and then pools or closes it. again
// reports a failure that sending once more on a new connection may cure.
func (p *connPool) roundTrip(ctx context.Context, pc *persistConn, req *http.Request, deadline time.Time) (a answer, err error, again bool) {
	reused := pc.used
	pc.used = true
	if err := pc.conn.SetDeadline(deadline); err != nil {
		pc.close()
		return a, err, false
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

	before := pc.cr.n
	if err = req.Write(pc.bw); err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		return a, err, reused && pc.cr.n == before
	}
	pc.cr.limit = pc.cr.n + maxResponseHeaderBytes
	resp, err := readResponse(pc.br, req)
	pc.cr.limit = math.MaxInt64
	if err != nil {
		return a, err, reused && pc.cr.n == before && closedUnder(err)
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
	return a, nil, false
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
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
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
// the address to dial.
func connKey(u *url.URL) (key, addr string) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr = net.JoinHostPort(u.Hostname(), port)
	return u.Scheme + "://" + addr, addr
}

// get returns an idle connection for key that is still open, or a new one.
func (p *connPool) get(ctx context.Context, key, addr, host string, useTLS bool, deadline time.Time) (*persistConn, error) {
	for {
		pc := p.take(key)
		if pc == nil {
			break
		}
		if time.Since(pc.idleAt) < p.idleTimeout && pc.br.Buffered() == 0 && stillOpen(pc.conn) {
			return pc, nil
		}
		pc.close()
	}
	return p.dialConn(ctx, key, addr, host, useTLS, deadline)
}

// take removes the newest idle connection for key from the pool.
func (p *connPool) take(key string) *persistConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	if len(list) == 0 {
		return nil
	}
	pc := list[len(list)-1]
	list[len(list)-1] = nil
	p.idle[key] = list[:len(list)-1]
	p.nidle--
	return pc
}

// put pools pc, unless its host or the pool has enough idle connections
// already. Now and then it closes the connections idle for too long, of
// hosts no delivery went to since.
func (p *connPool) put(pc *persistConn) {
	now := time.Now()
	pc.idleAt = now
	p.mu.Lock()
	if len(p.idle[pc.key]) >= p.perHost || p.nidle >= p.maxIdle {
		p.mu.Unlock()
		pc.close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*persistConn{}
	}
	p.idle[pc.key] = append(p.idle[pc.key], pc)
	p.nidle++
	var stale []*persistConn
	if now.Sub(p.lastSweep) >= p.idleTimeout {
		p.lastSweep = now
		for key, list := range p.idle {
			n := 0
			for n < len(list) && now.Sub(list[n].idleAt) >= p.idleTimeout {
				n++
			}
			stale = append(stale, list[:n]...)
			p.nidle -= n
			if n == len(list) {
				delete(p.idle, key)
			} else {
				p.idle[key] = append(list[:0], list[n:]...)
			}
		}
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
	p.idle, p.nidle = nil, 0
	p.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
}

// dialConn opens a connection to addr, with TLS for host when useTLS.
func (p *connPool) dialConn(ctx context.Context, key, addr, host string, useTLS bool, deadline time.Time) (*persistConn, error) {
	var cancel context.CancelFunc
	if deadline.IsZero() {
		ctx, cancel = context.WithTimeout(ctx, dialTimeout+tlsHandshakeTimeout)
	} else {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	conn, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if useTLS {
		cfg := p.tlsConfig.Clone()
		cfg.ServerName = host
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	cr := &countingReader{r: conn, limit: math.MaxInt64}
	return &persistConn{key: key, conn: conn, cr: cr, br: bufio.NewReader(cr), bw: bufio.NewWriter(conn)}, nil
}
