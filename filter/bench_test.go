package filter_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// productEvent is an event payload of about 1 KB.
const productEvent = `{
  "event": {"name": "products.updated", "id": "evt_01HZX3", "created_at": "2026-11-23T18:00:00Z"},
  "company_id": "co_42",
  "data": {
    "id": "P-100234",
    "sku": "SHOE-RUN-42-BLU",
    "status": "active",
    "name": {"en": "Trail Runner 42, blue", "de": "Trail Runner 42, blau"},
    "brand": {"id": "B-17", "name": "Northpeak"},
    "price": 129.95,
    "currency": "EUR",
    "list_price": 149.00,
    "stock": {"available": 37, "reserved": 3, "warehouse": "DK-AAR-1"},
    "dimensions": {"length_cm": 32.5, "width_cm": 21.0, "height_cm": 12.0, "weight_kg": 0.64},
    "categories": ["shoes", "running", "trail", "men"],
    "tags": ["new", "outdoor", "bestseller", "red"],
    "attributes": {"color": "blue", "size": "42", "material": "mesh", "waterproof": false},
    "images": [
      {"url": "https://cdn.example.com/p/100234/1.jpg", "alt": "side view", "position": 1},
      {"url": "https://cdn.example.com/p/100234/2.jpg", "alt": "sole", "position": 2}
    ],
    "variants": [{"sku": "SHOE-RUN-41-BLU", "size": "41", "stock": 4}, {"sku": "SHOE-RUN-43-BLU", "size": "43", "stock": 0}],
    "updated_at": "2026-11-23T18:00:00Z",
    "revision": 17
  },
  "changed_fields": [{"name": "price", "from": 139.95, "to": 129.95}]
}`

func TestBenchmarkPayload(t *testing.T) {
	t.Parallel()
	if n := len(productEvent); n < 1000 || n > 1600 {
		t.Errorf("benchmark payload is %d bytes, want about 1 KB", n)
	}
	// The test checks answers, not budgets: under the race detector on a
	// busy machine a first evaluation can outrun the default 25 ms.
	e := filter.New(filter.Config{Timeout: 10 * time.Second})
	t.Cleanup(e.Close)
	doc := parse(t, productEvent)
	for name, f := range benchFilters {
		c, err := e.Filter(f)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.Match(doc); !ok || err != nil {
			t.Errorf("%s: Match = %v, %v; want true", name, ok, err)
		}
	}
}

var benchFilters = map[string]*pimhook.Filter{
	"one": {Query: "$.data.price", Condition: "(v) => v > 100"},
	"and": {Logic: "AND", Conditions: []*pimhook.Filter{
		{Query: "$.data.price", Condition: "(v) => v > 100"},
		{Query: "$.data.tags", Condition: `(tags) => tags.includes("red")`},
	}},
}

// BenchmarkFilter evaluates a filter on a parsed document, as fan-out does
// for each webhook of an event.
func BenchmarkFilter(b *testing.B) {
	for _, name := range []string{"one", "and"} {
		b.Run(name, func(b *testing.B) {
			e := filter.New(filter.Config{})
			defer e.Close()
			doc, err := filter.Parse([]byte(productEvent))
			if err != nil {
				b.Fatal(err)
			}
			f, err := e.Filter(benchFilters[name])
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := f.Match(doc); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
		})
	}
}

// BenchmarkFilterParse parses the payload for every evaluation.
func BenchmarkFilterParse(b *testing.B) {
	e := filter.New(filter.Config{})
	defer e.Close()
	f, err := e.Filter(benchFilters["one"])
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(productEvent)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		doc, err := filter.Parse(payload)
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := f.Match(doc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkReducer applies a reducer on a parsed document.
func BenchmarkReducer(b *testing.B) {
	e := filter.New(filter.Config{})
	defer e.Close()
	doc, err := filter.Parse([]byte(productEvent))
	if err != nil {
		b.Fatal(err)
	}
	r, err := e.Reducer(json.RawMessage(`{"sku": "$.data.sku", "price": "$.data.price", "skus": "$.data.variants[*].sku", "source": "pim"}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Apply(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkBaselineJSONDecode decodes the same payload with encoding/json,
// a yardstick for the numbers above.
func BenchmarkBaselineJSONDecode(b *testing.B) {
	payload := []byte(productEvent)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var v any
		if err := json.Unmarshal(payload, &v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}
