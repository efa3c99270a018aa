package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// validateFilterInput is the body of POST /v1/validate/filter (reference
// document 5).
type validateFilterInput struct {
	SampleData json.RawMessage `json:"sample_data"`
	Filters    *pimhook.Filter `json:"filters"`
}

// validateReducerInput is the body of POST /v1/validate/reducer.
type validateReducerInput struct {
	SampleData json.RawMessage `json:"sample_data"`
	Reducer    json.RawMessage `json:"reducer"`
}

// validation is the answer of both validate endpoints. A filter or reducer
// that does not compile, or fails on the sample, is a 200 with success
// false: telling that is the endpoint's purpose. Code and Field then say
// what and where, as a problem would.
type validation struct {
	Success       bool            `json:"success"`
	Message       string          `json:"message"`
	FilterResult  *bool           `json:"filter_result,omitempty"`
	ReducerResult json.RawMessage `json:"reducer_result,omitempty"`
	Code          string          `json:"code,omitempty"`
	Field         string          `json:"field,omitempty"`
}

// failed describes a compile error as an unsuccessful validation, or
// returns err when it is not about the input.
func failed(err error) (validation, error) {
	if e, ok := errors.AsType[*pimhook.Error](err); ok && e.Kind == pimhook.KindInvalid {
		return validation{Message: e.Message, Code: e.Code, Field: e.Field}, nil
	}
	return validation{}, err
}

// failedOnSample describes a filter or reducer that failed on the sample:
// a condition that threw, ran past its budget or allocated too much.
func failedOnSample(code string, err error) (validation, error) {
	return validation{Message: "failed on sample_data: " + err.Error(), Code: code}, nil
}

// sample parses the sample data of a validation.
func sample(raw json.RawMessage) (*filter.Document, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, pimhook.FieldError(pimhook.CodeValidation, "sample_data", "sample_data is required")
	}
	doc, err := filter.Parse(raw)
	if err != nil {
		return nil, pimhook.FieldError(pimhook.CodeValidation, "sample_data", "sample_data is not JSON: %v", err)
	}
	return doc, nil
}

func (s *Server) validateFilter(w http.ResponseWriter, r *http.Request) error {
	var in validateFilterInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	if in.Filters == nil {
		return pimhook.FieldError(pimhook.CodeValidation, "filters", "filters is required")
	}
	doc, err := sample(in.SampleData)
	if err != nil {
		return err
	}
	engine, err := s.filters()
	if err != nil {
		return err
	}
	v, err := func() (validation, error) {
		f, err := engine.FilterAt(in.Filters, "filters")
		if err != nil {
			return failed(err)
		}
		ok, err := f.Match(doc)
		if err != nil {
			return failedOnSample(pimhook.CodeInvalidFilter, err)
		}
		msg := "the filter passes the sample: the webhook would get this event"
		if !ok {
			msg = "the filter refuses the sample: the webhook would not get this event"
		}
		return validation{Success: true, Message: msg, FilterResult: &ok}, nil
	}()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) validateReducer(w http.ResponseWriter, r *http.Request) error {
	var in validateReducerInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	if isNull(in.Reducer) {
		return pimhook.FieldError(pimhook.CodeValidation, "reducer", "reducer is required")
	}
	doc, err := sample(in.SampleData)
	if err != nil {
		return err
	}
	engine, err := s.filters()
	if err != nil {
		return err
	}
	v, err := func() (validation, error) {
		red, err := engine.ReducerAt(in.Reducer, "reducer")
		if err != nil {
			return failed(err)
		}
		out, err := red.Apply(doc)
		if err != nil {
			return failedOnSample(pimhook.CodeInvalidReducer, err)
		}
		return validation{Success: true, Message: "the reducer applies to the sample; reducer_result is the body that would be sent", ReducerResult: out}, nil
	}()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// filterReducerInput is the body of PUT /v1/webhooks/{id}/filter_reducer.
type filterReducerInput struct {
	EventSlug string          `json:"event_slug"`
	Filter    *pimhook.Filter `json:"filter_configuration"`
	Reducer   json.RawMessage `json:"reducer_configuration"`
}

// filterReducerSaved is the answer of PUT /v1/webhooks/{id}/filter_reducer
// (reference document 5's FilterReducerSaveResult); data is the webhook.
type filterReducerSaved struct {
	Success bool        `json:"success"`
	Message string      `json:"message"`
	Data    webhookJSON `json:"data"`
}

// putFilterReducer saves the filter and reducer of one webhook for one event
// slug. A body with neither removes the slug's configuration.
func (s *Server) putFilterReducer(w http.ResponseWriter, r *http.Request) error {
	var in filterReducerInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	co := companyFrom(r.Context())
	hook, err := s.Store.Webhook(r.Context(), co.ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("save filter_reducer: %w", err)
	}
	fr := pimhook.FilterReducer{EventSlug: in.EventSlug, Filter: in.Filter, Reducer: in.Reducer}
	msg := "saved"
	if fr.Filter == nil && isNull(fr.Reducer) {
		if err := pimhook.ValidateEventSlug(fr.EventSlug, "event_slug"); err != nil {
			return err
		}
		hook.FilterReducers = slices.DeleteFunc(hook.FilterReducers, func(x pimhook.FilterReducer) bool { return x.EventSlug == fr.EventSlug })
		msg = "removed: the webhook has no filter or reducer for " + fr.EventSlug
	} else {
		if err := fr.Normalize(""); err != nil {
			return err
		}
		if err := s.checkFilterReducer(&fr); err != nil {
			return err
		}
		hook.SetFilterReducer(fr)
	}
	now := s.Clock.Now().UTC()
	if err := s.vet(r.Context(), hook, nil, false, now); err != nil {
		return err
	}
	hook.UpdatedAt = now
	if err := s.Store.UpdateWebhook(r.Context(), hook); err != nil {
		return fmt.Errorf("save filter_reducer: %w", err)
	}
	return writeJSON(w, http.StatusOK, filterReducerSaved{Success: true, Message: msg, Data: toWebhookJSON(hook)})
}

// checkFilterReducer compiles one configuration, naming its fields as the
// filter_reducer endpoint's body does.
func (s *Server) checkFilterReducer(fr *pimhook.FilterReducer) error {
	engine, err := s.filters()
	if err != nil {
		return err
	}
	return pimhook.CheckFilterReducer(engine, fr, "filter_configuration", "reducer_configuration")
}

// filters returns the engine of filters and reducers.
func (s *Server) filters() (*filter.Engine, error) {
	if s.Filters == nil {
		return nil, pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "filters cannot be evaluated by this server")
	}
	return s.Filters, nil
}
