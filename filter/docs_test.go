package filter_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// docExample is one `json example` block of docs/filters.md.
type docExample struct {
	Payload  json.RawMessage `json:"payload"`
	Filter   *pimhook.Filter `json:"filter"`
	Reducer  json.RawMessage `json:"reducer"`
	Match    *bool           `json:"match"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Field    string          `json:"field"`
	RunError string          `json:"runError"`
}

var exampleBlock = regexp.MustCompile("(?s)```json example\n(.*?)```")

// TestDocExamples runs every example of docs/filters.md.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/filters.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := exampleBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 20 {
		t.Fatalf("found %d examples in docs/filters.md, want at least 20", len(blocks))
	}
	e := filter.New(filter.Config{MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for i, b := range blocks {
		var ex docExample
		dec := json.NewDecoder(bytes.NewReader(b[1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ex); err != nil {
			t.Errorf("example %d: %v\n%s", i, err, b[1])
			continue
		}
		name := strings.SplitN(strings.TrimSpace(string(b[1])), "\n", 3)
		t.Run(strings.Join(name[:min(2, len(name))], " "), func(t *testing.T) {
			t.Parallel()
			checkExample(t, e, ex)
		})
	}
}

func checkExample(t *testing.T, e *filter.Engine, ex docExample) {
	var compileErr error
	var f *filter.Filter
	var r *filter.Reducer
	if ex.Filter != nil {
		if compileErr = e.CheckFilter(ex.Filter, "filter_configuration"); compileErr == nil {
			f, compileErr = e.Filter(ex.Filter)
		}
	}
	if ex.Reducer != nil && compileErr == nil {
		if compileErr = e.CheckReducer(ex.Reducer, "reducer_configuration"); compileErr == nil {
			r, compileErr = e.Reducer(ex.Reducer)
		}
	}
	if ex.Error != "" {
		var pe *pimhook.Error
		if !errors.As(compileErr, &pe) {
			t.Fatalf("compile error = %v, want a *pimhook.Error containing %q", compileErr, ex.Error)
		}
		if !strings.Contains(pe.Message, ex.Error) || pe.Field != ex.Field || pe.Kind != pimhook.KindInvalid {
			t.Errorf("compile error = %q (field %q, kind %s), want one containing %q, field %q", pe.Message, pe.Field, pe.Kind, ex.Error, ex.Field)
		}
		return
	}
	if compileErr != nil {
		t.Fatal(compileErr)
	}
	payload := parse(t, string(ex.Payload))
	if f != nil {
		ok, err := f.Match(payload)
		switch {
		case ex.RunError != "":
			if err == nil || !strings.Contains(err.Error(), ex.RunError) {
				t.Errorf("Match error = %v, want one containing %q", err, ex.RunError)
			}
		case err != nil:
			t.Errorf("Match: %v", err)
		case ex.Match == nil:
			t.Errorf("example has no match, runError or error")
		case ok != *ex.Match:
			t.Errorf("Match = %v, want %v", ok, *ex.Match)
		}
	}
	if r != nil {
		out, err := r.Apply(payload)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, ex.Output); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, want.Bytes()) {
			t.Errorf("Apply =\n%s\nwant\n%s", out, want.Bytes())
		}
	}
}
