package dispatch

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// tripCooldown is how long a filter or reducer that ran out of its time or
// memory budget is not run again: its later events fail at once with the
// same error. Fan-out runs inside the store's write path, so a condition
// that loops forever must not cost its budget on every event of its
// company.
const tripCooldown = time.Minute

// shaper applies webhooks' filters and reducers at fan-out.
type shaper struct {
	engine *filter.Engine
	clock  pimhook.Clock

	mu      sync.Mutex
	tripped map[any]tripped // *filter.Filter or *filter.Reducer
}

type tripped struct {
	until time.Time
	err   error
}

func newShaper(e *filter.Engine, c pimhook.Clock) *shaper {
	return &shaper{engine: e, clock: c, tripped: map[any]tripped{}}
}

// shape runs fr on a rendered payload: it tells whether the webhook gets
// the event, and returns the body to send (reduced when fr has a reducer).
// An error means the filter or reducer failed; the webhook gets nothing.
func (s *shaper) shape(fr *pimhook.FilterReducer, body []byte) ([]byte, bool, error) {
	doc, err := filter.Parse(body)
	if err != nil {
		return nil, false, fmt.Errorf("read payload: %w", err)
	}
	if fr.Filter != nil {
		f, err := s.engine.Filter(fr.Filter)
		if err != nil {
			return nil, false, fmt.Errorf("filter: %w", err)
		}
		var ok bool
		err = s.run(f, func() (err error) { ok, err = f.Match(doc); return err })
		if err != nil {
			return nil, false, fmt.Errorf("filter: %w", err)
		}
		if !ok {
			return nil, false, nil
		}
	}
	if fr.Reducer != nil {
		r, err := s.engine.Reducer(fr.Reducer)
		if err != nil {
			return nil, false, fmt.Errorf("reducer: %w", err)
		}
		err = s.run(r, func() (err error) { body, err = r.Apply(doc); return err })
		if err != nil {
			return nil, false, fmt.Errorf("reducer: %w", err)
		}
	}
	return body, true, nil
}

// run calls eval unless key tripped recently, and trips it when eval runs
// out of its budget.
func (s *shaper) run(key any, eval func() error) error {
	now := s.clock.Now()
	s.mu.Lock()
	t, ok := s.tripped[key]
	if ok && now.After(t.until) {
		delete(s.tripped, key)
		ok = false
	}
	s.mu.Unlock()
	if ok {
		return fmt.Errorf("%w (not run again until %s)", t.err, t.until.UTC().Format(time.RFC3339))
	}
	err := eval()
	if errors.Is(err, filter.ErrTimeout) || errors.Is(err, filter.ErrMemory) {
		s.mu.Lock()
		// Compiled filters the engine evicted never run again: sweep
		// their ended entries now and then.
		if len(s.tripped) >= 1024 {
			for k, t := range s.tripped {
				if now.After(t.until) {
					delete(s.tripped, k)
				}
			}
		}
		s.tripped[key] = tripped{until: now.Add(tripCooldown), err: err}
		s.mu.Unlock()
	}
	return err
}
