package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRevisionsOverHTTP: revisions count each accepted change, a stale
// revision is refused with a conflict, and an app does not hear back the
// changes its own integration made.
func TestRevisionsOverHTTP(t *testing.T) {
	t.Parallel()
	got := make(chan string, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
	}))
	defer recv.Close()
	m := startMain(t)
	c := m.client(t)
	erp, shop := c.createApp("ERP"), c.createApp("Webshop")
	c.createWebhook(map[string]any{"callback_url": recv.URL + "/erp", "app_id": erp})
	c.createWebhook(map[string]any{"callback_url": recv.URL + "/shop", "app_id": shop})

	post := func(body map[string]any, want int) ingestAnswer {
		t.Helper()
		var a ingestAnswer
		c.must(want, "POST", "/v1/events", body, &a)
		return a
	}
	a := post(map[string]any{"entity_type": "brand", "entity_id": "b1", "action": "created", "data": map[string]any{"name": "Acme"}, "revision": 0}, http.StatusAccepted)
	if a.Events[0].Revision != 1 || a.Events[0].Deliveries != 2 {
		t.Fatalf("create = %+v", a.Events[0])
	}
	// The webshop's integration renamed the brand: only the ERP hears of it.
	a = post(map[string]any{"entity_type": "brands", "entity_id": "b1", "action": "updated", "data": map[string]any{"name": "ACME"}, "revision": 1, "source_app_id": shop}, http.StatusAccepted)
	if a.Events[0].Revision != 2 || a.Events[0].Deliveries != 1 {
		t.Fatalf("echo-suppressed update = %+v, want revision 2 and one delivery", a.Events[0])
	}
	// A change made against revision 1 is stale now.
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if code := c.do("POST", "/v1/events", map[string]any{"entity_type": "brand", "entity_id": "b1", "action": "updated", "data": map[string]any{"name": "Old"}, "revision": 1}, &p); code != http.StatusConflict || p.Code != "revision_conflict" {
		t.Fatalf("stale revision: status %d %+v, want 409 revision_conflict", code, p)
	}
	paths := map[string]int{}
	for n := range 3 {
		select {
		case p := <-got:
			paths[p]++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d deliveries arrived, want 3", n)
		}
	}
	if paths["/erp"] != 2 || paths["/shop"] != 1 {
		t.Errorf("arrivals by receiver = %v, want /erp 2 and /shop 1", paths)
	}
	var list struct {
		Data []deliveryView `json:"data"`
	}
	c.must(http.StatusOK, "GET", "/v1/deliveries?app_id="+shop, nil, &list)
	if len(list.Data) != 1 || list.Data[0].Event != "brands.created" {
		t.Errorf("webshop deliveries = %+v, want only the creation", list.Data)
	}
}
