package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// api is a client of pimhook's public REST API, with a keep-alive pool
// large enough for every load client.
type api struct {
	hc   *http.Client
	base string
	key  string
}

func newAPI(base, key string, clients int) *api {
	return &api{hc: newHTTPClient(clients), base: base, key: key}
}

// newHTTPClient returns a client that keeps a connection per concurrent
// caller alive.
func newHTTPClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        max(conns, 100),
		MaxIdleConnsPerHost: max(conns, 2),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// do sends one request and decodes a 2xx answer into out.
func (a *api) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// createApp creates a shared app and returns its id.
func (a *api) createApp(ctx context.Context, name string) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": name, "app_type": "bench"})
	var out struct {
		ID string `json:"id"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/apps", body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// webhookSpec is the part of a webhook the scenarios choose.
type webhookSpec struct {
	AppID      string `json:"app_id"`
	URL        string `json:"callback_url"`
	EntityType string `json:"entity_type"`
	// IncludeEntityData puts the event's data, and with it the harness's
	// marks, into every delivery.
	IncludeEntityData    bool    `json:"include_entity_data"`
	RetryPolicy          string  `json:"retry_policy,omitempty"`
	MinimumRetryInterval float64 `json:"minimum_retry_interval,omitempty"`
	RetryLimit           int     `json:"retry_limit,omitempty"`
	TimeoutMS            int     `json:"timeout_ms,omitempty"`
}

// createWebhook creates a webhook and returns its id.
func (a *api) createWebhook(ctx context.Context, w webhookSpec) (string, error) {
	body, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("create webhook: %w", err)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/webhooks", body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// ingestAnswer is the part of POST /v1/events's answer the harness reads.
type ingestAnswer struct {
	Events []struct {
		Deliveries int    `json:"deliveries"`
		Status     string `json:"status"`
	} `json:"events"`
}

// postEvents posts one event or a batch and returns how many deliveries
// each event caused.
func (a *api) postEvents(ctx context.Context, body []byte, perEvent []int) ([]int, error) {
	var out ingestAnswer
	if err := a.do(ctx, http.MethodPost, "/v1/events", body, &out); err != nil {
		return nil, err
	}
	perEvent = perEvent[:0]
	for _, e := range out.Events {
		if e.Status != "accepted" {
			return nil, fmt.Errorf("POST /v1/events: an event was %q, not accepted", e.Status)
		}
		perEvent = append(perEvent, e.Deliveries)
	}
	return perEvent, nil
}

// appSet is the apps and webhooks of a scenario, index by index.
type appSet struct {
	appIDs     []string
	webhookIDs []string
}

// createApps creates n apps with one webhook each, spec(i) giving the
// webhook of app i, a few requests at a time.
func (a *api) createApps(ctx context.Context, n int, spec func(i int) webhookSpec) (appSet, error) {
	set := appSet{appIDs: make([]string, n), webhookIDs: make([]string, n)}
	err := parallel(ctx, n, 16, func(ctx context.Context, i int) error {
		id, err := a.createApp(ctx, fmt.Sprintf("bench app %d", i))
		if err != nil {
			return fmt.Errorf("app %d: %w", i, err)
		}
		w := spec(i)
		w.AppID = id
		wid, err := a.createWebhook(ctx, w)
		if err != nil {
			return fmt.Errorf("webhook of app %d: %w", i, err)
		}
		set.appIDs[i], set.webhookIDs[i] = id, wid
		return nil
	})
	return set, err
}

// parallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error, after which it starts no more calls.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
