package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The hidden roles this binary runs as a child process of the harness.
const (
	roleReceiver = "receiver"
	roleRelay    = "relay"
)

// Listener modes.
const (
	modeOK   = "ok"   // answer 200 at once
	modeHang = "hang" // hold the request until the sender gives up
	modeDown = "down" // connections are reset as soon as they are accepted
)

// Marks that the harness writes into every event's data and the receiver
// reads back from every body, wherever the sender put them in it.
var (
	markKey  = []byte(`"bench_k":`)
	markSent = []byte(`"bench_t":`)
)

// recordSize is the size of one arrival record on the pipe: app uint32,
// unused uint32, key uint64, sent int64, arrived int64, little-endian.
const recordSize = 32

// arrival is one delivery that reached a receiver.
type arrival struct {
	app     uint32 // from the request path, /a/{app}
	key     uint64 // the event's bench_k
	sent    int64  // the event's bench_t: when the harness posted it, Unix ns
	arrived int64  // when the receiver had read the body, Unix ns
}

func (a arrival) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, a.app)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, a.key)
	b = binary.LittleEndian.AppendUint64(b, uint64(a.sent))
	return binary.LittleEndian.AppendUint64(b, uint64(a.arrived))
}

func decodeArrival(b []byte) arrival {
	return arrival{
		app:     binary.LittleEndian.Uint32(b[0:]),
		key:     binary.LittleEndian.Uint64(b[8:]),
		sent:    int64(binary.LittleEndian.Uint64(b[16:])),
		arrived: int64(binary.LittleEndian.Uint64(b[24:])),
	}
}

// parseMarks finds the event key and send time in a delivery body.
func parseMarks(body []byte) (key uint64, sent int64, ok bool) {
	k, ok1 := numberAfter(body, markKey)
	t, ok2 := numberAfter(body, markSent)
	return uint64(k), t, ok1 && ok2
}

func numberAfter(body, mark []byte) (int64, bool) {
	i := bytes.Index(body, mark)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(mark):], " \t\r\n")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	return v, err == nil
}

// appFromPath reads the app index from a path /a/{app}.
func appFromPath(p string) uint32 {
	rest, ok := strings.CutPrefix(p, "/a/")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseUint(rest, 10, 32)
	return uint32(n)
}

// recordWriter writes arrival records to the harness's pipe, buffered and
// flushed every couple of milliseconds: an arrival's time is taken when it
// happens, so the delay of the pipe does not enter any figure.
type recordWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
	err error
}

func (rw *recordWriter) write(a arrival) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.err != nil {
		return
	}
	rw.buf = a.append(rw.buf[:0])
	_, rw.err = rw.w.Write(rw.buf)
}

func (rw *recordWriter) flush() error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.err == nil && rw.w.Buffered() > 0 {
		rw.err = rw.w.Flush()
	}
	return rw.err
}

// sink is one receiver listener. Its mode decides what a delivery gets.
// The listener stays open in every mode: a port closed for a while could be
// taken by someone's outgoing connection (pimhook's among them) and not
// come back. Down is rather a reset of every connection as it is accepted,
// which fails an attempt as fast as a refused connection does.
type sink struct {
	addr    string
	records *recordWriter
	srv     *http.Server

	mu      sync.Mutex
	mode    string
	release chan struct{}         // closed when the sink stops hanging
	conns   map[net.Conn]struct{} // open connections, to drop when going down
}

func newSink(records *recordWriter) (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &sink{addr: l.Addr().String(), records: records, mode: modeOK, conns: map[net.Conn]struct{}{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ConnState: s.track}
	go func() { _ = s.srv.Serve(gateListener{Listener: l, s: s}) }()
	return s, nil
}

// track keeps the set of open connections.
func (s *sink) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

func (s *sink) down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode == modeDown
}

// gateListener resets the connections of a sink that is down.
type gateListener struct {
	net.Listener
	s *sink
}

func (g gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil || !g.s.down() {
			return c, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not an orderly close
		}
		c.Close()
	}
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	mode, release := s.mode, s.release
	s.mu.Unlock()
	switch mode {
	case modeHang:
		select {
		case <-r.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case modeDown:
		// A request on a connection accepted just before going down.
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	arrived := time.Now().UnixNano()
	if key, sent, ok := parseMarks(body); ok {
		s.records.write(arrival{app: appFromPath(r.URL.Path), key: key, sent: sent, arrived: arrived})
	}
	w.WriteHeader(http.StatusOK)
}

// setMode switches the sink; going down drops its open connections.
func (s *sink) setMode(mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == modeHang && mode != modeHang {
		close(s.release)
	}
	if mode == modeHang && s.mode != modeHang {
		s.release = make(chan struct{})
	}
	s.mode = mode
	if mode == modeDown {
		for c := range s.conns {
			c.Close()
		}
	}
}

func (s *sink) close() {
	s.setMode(modeOK) // ends hanging requests
	_ = s.srv.Close()
}

// receiverControl is the receiver process's control API: the harness
// creates listeners, switches their modes and clears them between
// scenarios.
type receiverControl struct {
	records *recordWriter
	mu      sync.Mutex
	sinks   []*sink
}

// listenRequest asks for N new listeners in a mode.
type listenRequest struct {
	N    int    `json:"n"`
	Mode string `json:"mode"`
}

// listenResponse names the new listeners: their ids are First, First+1, ...
type listenResponse struct {
	First int      `json:"first"`
	Addrs []string `json:"addrs"`
}

// modeRequest switches listeners to a mode.
type modeRequest struct {
	IDs  []int  `json:"ids"`
	Mode string `json:"mode"`
}

func (c *receiverControl) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /listen", func(w http.ResponseWriter, r *http.Request) {
		var req listenRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := c.listen(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("POST /mode", func(w http.ResponseWriter, r *http.Request) {
		var req modeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.setMode(req); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		c.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (c *receiverControl) listen(req listenRequest) (listenResponse, error) {
	switch req.Mode {
	case modeOK, modeHang, modeDown:
	default:
		return listenResponse{}, fmt.Errorf("unknown mode %q", req.Mode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := listenResponse{First: len(c.sinks)}
	for range req.N {
		s, err := newSink(c.records)
		if err != nil {
			return listenResponse{}, err
		}
		c.sinks = append(c.sinks, s)
		s.setMode(req.Mode)
		resp.Addrs = append(resp.Addrs, s.addr)
	}
	return resp, nil
}

func (c *receiverControl) setMode(req modeRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch req.Mode {
	case modeOK, modeHang, modeDown:
	default:
		return fmt.Errorf("unknown mode %q", req.Mode)
	}
	for _, id := range req.IDs {
		if id < 0 || id >= len(c.sinks) {
			return fmt.Errorf("no listener %d", id)
		}
		c.sinks[id].setMode(req.Mode)
	}
	return nil
}

func (c *receiverControl) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sinks {
		s.close()
	}
	c.sinks = nil
}

// serveReceivers is the receiver role: it prints the address of its control
// API on stdout and writes an arrival record to records for every delivery
// its listeners accept, until ctx ends.
func serveReceivers(ctx context.Context, stdout io.Writer, records io.Writer) error {
	rw := &recordWriter{w: bufio.NewWriterSize(records, 64<<10)}
	c := &receiverControl{records: rw}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("receiver control: %w", err)
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	defer c.reset()
	if _, err := fmt.Fprintln(stdout, l.Addr().String()); err != nil {
		return fmt.Errorf("receiver: announce: %w", err)
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return rw.flush()
		case <-tick.C:
			if err := rw.flush(); err != nil {
				return fmt.Errorf("receiver: write records: %w", err)
			}
		}
	}
}
