package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterScaling measures delivery throughput with 1, 2 and 3
// pimhook nodes on one PostgreSQL database, each node with the same pool
// (8 shared workers), when every receiver takes 20 ms to answer: the
// bottleneck is receiver latency, so capacity should grow with nodes.
//
//	go test -run '^$' -bench ClusterScaling -benchtime 1x ./cmd/pimhook
func BenchmarkClusterScaling(b *testing.B) {
	const apps, perApp, workers = 60, 20, 8
	for _, nodes := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			db := clusterDatabase(b)
			var arrived atomic.Int64
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(20 * time.Millisecond)
				arrived.Add(1)
			}))
			defer recv.Close()
			procs := make([]*proc, nodes)
			for i := range procs {
				procs[i] = startProc(b, b.TempDir(), "--database", db, "--shared-workers", fmt.Sprint(workers))
			}
			c := newClient(b, procs[0].base)
			for i := range apps {
				app := c.createApp("app " + itoa(i))
				c.createWebhook(map[string]any{"app_id": app, "callback_url": recv.URL, "entity_types": []string{"type_" + itoa(i)}})
			}
			b.ResetTimer()
			for range b.N {
				arrived.Store(0)
				start := time.Now()
				for k := range perApp {
					var batch []map[string]any
					for i := range apps {
						batch = append(batch, map[string]any{
							"entity_type": "type_" + itoa(i), "entity_id": fmt.Sprintf("p%d-%d-%d", k, i, start.UnixNano()),
							"action": "created", "data": map[string]any{"k": k},
						})
					}
					// Spread the ingest over the nodes, as a load balancer would.
					newClient(b, procs[k%nodes].base).must(http.StatusAccepted, "POST", "/v1/events", map[string]any{"events": batch}, nil)
				}
				want := int64(apps * perApp)
				waitFor(b, "every delivery", 120*time.Second, func() bool { return arrived.Load() >= want })
				elapsed := time.Since(start)
				b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
				b.ReportMetric(float64(nodes*workers)/0.020, "ceiling/s")
			}
		})
	}
}
