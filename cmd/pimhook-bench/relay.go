package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// targetHeader carries, on a request to the relay, the URL the relay must
// forward it to.
const targetHeader = "Bench-Target"

// relay is the ceiling of the throughput scenario: a store-nothing server
// that forwards each POST synchronously to the receiver its targetHeader
// names and answers with the receiver's status. It keeps nothing, signs
// nothing and retries nothing: whatever pimhook does beyond this is the
// price of durability, order and the rest.
type relay struct {
	client *http.Client
}

func newRelay() *relay {
	// The same connection pool limits as pimhook's delivery client.
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &relay{client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, r.Header.Get(targetHeader), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rl.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
}

// serveRelay is the relay role: it prints its address on stdout and relays
// until ctx ends.
func serveRelay(ctx context.Context, stdout io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	srv := &http.Server{Handler: newRelay(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	if _, err := fmt.Fprintln(stdout, l.Addr().String()); err != nil {
		return fmt.Errorf("relay: announce: %w", err)
	}
	<-ctx.Done()
	return nil
}
