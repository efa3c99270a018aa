package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// receivers is the harness's handle on the receiver process: it creates
// listeners there, switches their modes, and reads the arrival records the
// process writes to a pipe, handing them to the current scenario's tracker.
type receivers struct {
	proc *child
	ctl  string
	hc   *http.Client

	mu      sync.Mutex
	current *tracker
	stray   int64 // arrivals while no scenario was tracking
	readErr error
	read    chan struct{} // closed when the record pipe ends
}

// startReceivers starts the receiver process.
func startReceivers(ctx context.Context) (*receivers, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("receivers: %w", err)
	}
	proc, addr, err := startRole(ctx, roleReceiver, pw)
	pw.Close() // the child holds its own copy
	if err != nil {
		pr.Close()
		return nil, err
	}
	r := &receivers{proc: proc, ctl: "http://" + addr, hc: newHTTPClient(4), read: make(chan struct{})}
	go r.readRecords(pr)
	return r, nil
}

// readRecords hands arrival records to the current tracker, in batches of
// what the pipe had ready.
func (r *receivers) readRecords(pipe *os.File) {
	defer close(r.read)
	defer pipe.Close()
	br := bufio.NewReaderSize(pipe, 256<<10)
	var rec [recordSize]byte
	batch := make([]arrival, 0, 1024)
	for {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				r.mu.Lock()
				r.readErr = fmt.Errorf("read arrival records: %w", err)
				r.mu.Unlock()
			}
			return
		}
		batch = append(batch, decodeArrival(rec[:]))
		if br.Buffered() >= recordSize && len(batch) < cap(batch) {
			continue
		}
		r.mu.Lock()
		t := r.current
		if t == nil {
			r.stray += int64(len(batch))
		}
		r.mu.Unlock()
		if t != nil {
			t.add(batch)
		}
		batch = batch[:0]
	}
}

// track sends the arrivals from now on to t; nil drops them.
func (r *receivers) track(t *tracker) {
	r.mu.Lock()
	r.current = t
	r.mu.Unlock()
}

// listen creates n listeners in mode and returns their ids and addresses.
func (r *receivers) listen(ctx context.Context, n int, mode string) ([]int, []string, error) {
	var resp listenResponse
	if err := r.control(ctx, "/listen", listenRequest{N: n, Mode: mode}, &resp); err != nil {
		return nil, nil, err
	}
	ids := make([]int, len(resp.Addrs))
	for i := range ids {
		ids[i] = resp.First + i
	}
	return ids, resp.Addrs, nil
}

// setMode switches listeners.
func (r *receivers) setMode(ctx context.Context, ids []int, mode string) error {
	return r.control(ctx, "/mode", modeRequest{IDs: ids, Mode: mode}, nil)
}

// reset closes every listener.
func (r *receivers) reset(ctx context.Context) error {
	return r.control(ctx, "/reset", struct{}{}, nil)
}

func (r *receivers) control(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("receivers %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.ctl+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("receivers %s: %w", path, err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("receivers %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("receivers %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receivers %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("receivers %s: %w", path, err)
		}
	}
	return nil
}

// Close stops the receiver process and reports whether its records were
// read to the end.
func (r *receivers) Close() error {
	err := r.proc.stop(nil, 10*time.Second)
	<-r.read
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(err, r.readErr)
}

// listenerURLs returns the callback URL of each of n apps spread over the
// listeners: app i goes to listener i mod len(addrs), path /a/{i}.
func listenerURLs(addrs []string, n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/a/%d", addrs[i%len(addrs)], i)
	}
	return urls
}
