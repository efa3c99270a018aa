package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	pimhttp "github.com/pimhook/pimhook/http"
	"github.com/pimhook/pimhook/sqlite"
)

// TestStalledBodyAnswered: a request whose body stops arriving gets a 400
// problem once the read deadline passes, instead of holding the connection,
// and nothing is stored.
func TestStalledBodyAnswered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pimhook.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	co := &pimhook.Company{ID: "co_stall", Name: "Stall", CreatedAt: now}
	key := pimhook.NewAPIKey()
	if err := store.CreateCompany(ctx, co); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateAPIKey(ctx, &pimhook.APIKey{ID: "key_stall", CompanyID: co.ID, Hash: pimhook.HashAPIKey(key), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&pimhttp.Server{Store: dispatch.NewCatalog(store), BodyReadTimeout: 200 * time.Millisecond}).Handler())
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Content-Length promises 100 bytes; 4 arrive, then nothing.
	if _, err := conn.Write([]byte("POST /v1/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	var p pimhttp.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || p.Code != pimhook.CodeBodyIncomplete {
		t.Fatalf("status %d code %q, want 400 %s", resp.StatusCode, p.Code, pimhook.CodeBodyIncomplete)
	}
	apps, err := store.Apps(ctx, co.ID)
	if err != nil || len(apps) != 0 {
		t.Fatalf("apps after a stalled body: %v %v", apps, err)
	}
}
