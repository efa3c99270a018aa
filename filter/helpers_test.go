package filter_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// parse parses a JSON payload or fails the test.
func parse(t testing.TB, payload string) *filter.Document {
	t.Helper()
	doc, err := filter.Parse([]byte(payload))
	if err != nil {
		t.Fatalf("Parse(%s): %v", payload, err)
	}
	return doc
}

// checkFieldError checks that err is a KindInvalid *pimhook.Error with the
// given code and field whose message contains msg.
func checkFieldError(t *testing.T, err error, code, field, msg string) {
	t.Helper()
	var pe *pimhook.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want a *pimhook.Error", err)
	}
	if pe.Kind != pimhook.KindInvalid || pe.Code != code || pe.Field != field || !strings.Contains(pe.Message, msg) {
		t.Errorf("error = %s %s %q (field %q), want %s %s containing %q (field %q)", pe.Kind, pe.Code, pe.Message, pe.Field, pimhook.KindInvalid, code, msg, field)
	}
}

// noMemoryBudget is the MaxMemory of tests about anything else: the memory
// budget counts the whole process's allocation, other tests' included.
const noMemoryBudget = 1 << 40

// testTimeout is the time budget of tests that do not test the budget: the
// default 25ms is short for a shared machine running the race detector.
const testTimeout = 10 * time.Second
