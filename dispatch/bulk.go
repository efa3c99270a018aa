package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// errTooManyProducts stops the product scan of a trigger that matches more
// than pimhook.MaxTriggerProducts products.
var errTooManyProducts = errors.New("too many products")

// TriggerBulk runs a bulk operation (reference document 4): it works out the
// products of t, POSTs {operationName, productUniqueNames} to the
// operation's URL, signed like every webhook, waits up to the company's
// webhook_invocation_timeout_ms, and records the run. A receiver that fails
// is not an error of TriggerBulk: the run says how it failed, and what the
// receiver answered is in the error log. Errors are about t, or internal.
func (d *Dispatcher) TriggerBulk(ctx context.Context, co *pimhook.Company, op *pimhook.BulkOperation, t pimhook.BulkTrigger) (*pimhook.BulkRun, error) {
	names, err := d.bulkProducts(ctx, co.ID, t)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(pimhook.BulkPayload{OperationName: op.Name, ProductUniqueNames: names})
	if err != nil {
		return nil, fmt.Errorf("render bulk payload: %w", err)
	}
	now := d.clock.Now()
	run := &pimhook.BulkRun{
		ID:            pimhook.NewID(pimhook.PrefixBulkRun, now),
		CompanyID:     co.ID,
		OperationName: op.Name,
		URL:           op.URL,
		Products:      names,
		ProductCount:  len(names),
		TimeoutMS:     co.Preferences.TimeoutMS(),
		StartedAt:     now,
	}
	// The call is the user's, but once made it is recorded even if the user
	// stops waiting; the timeout bounds it.
	ctx = context.WithoutCancel(ctx)
	resp := d.client.Send(ctx, Request{
		URL:       op.URL,
		MsgID:     run.ID,
		Body:      body,
		Secrets:   []string{op.Secret},
		Headers:   op.Headers,
		Timeout:   time.Duration(run.TimeoutMS) * time.Millisecond,
		Timestamp: now,
	})
	run.StatusCode = resp.StatusCode
	run.DurationMS = float64(resp.Duration.Microseconds()) / 1000
	var entry *pimhook.ErrorLogEntry
	switch {
	case resp.Err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300:
		run.Status = pimhook.BulkRunSucceeded
	default:
		switch {
		case resp.Err == nil:
			run.Status = pimhook.BulkRunFailed
			run.Error = fmt.Sprintf("the receiver answered %d", resp.StatusCode)
		case resp.ErrCode == ErrCodeTimeout:
			run.Status = pimhook.BulkRunTimeout
			run.Error = fmt.Sprintf("timeout: no answer within %d ms", run.TimeoutMS)
		default:
			run.Status = pimhook.BulkRunError
			run.Error = resp.ErrCode + ": " + resp.Err.Error()
		}
		entry = &pimhook.ErrorLogEntry{
			ID:            pimhook.NewID(pimhook.PrefixErrorLog, now),
			CompanyID:     co.ID,
			Source:        pimhook.ErrorSourceBulk,
			OccurredAt:    now,
			OperationName: op.Name,
			RunID:         run.ID,
			StatusCode:    resp.StatusCode,
			Error:         run.Error,
			ResponseBody:  string(resp.Body),
		}
	}
	if err := d.store.RecordBulkRun(ctx, run, entry); err != nil {
		return nil, fmt.Errorf("record bulk run: %w", err)
	}
	d.cfg.Metrics.bulkRun(run.Status)
	return run, nil
}

// bulkProducts returns the product names a trigger names or matches, each
// once, in the order given or in ID order.
func (d *Dispatcher) bulkProducts(ctx context.Context, companyID string, t pimhook.BulkTrigger) ([]string, error) {
	switch {
	case t.Filter != nil && t.ProductUniqueNames != nil:
		return nil, pimhook.FieldError(pimhook.CodeValidation, "filter", "give either filter or product_unique_names, not both")
	case t.ProductUniqueNames != nil:
		names := make([]string, 0, len(t.ProductUniqueNames))
		seen := make(map[string]bool, len(t.ProductUniqueNames))
		for i, n := range t.ProductUniqueNames {
			if n == "" || len(n) > 255 || !pimhook.Printable(n) {
				return nil, pimhook.FieldError(pimhook.CodeValidation, fmt.Sprintf("product_unique_names[%d]", i), "a product unique name is 1 to 255 printable characters")
			}
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, pimhook.FieldError(pimhook.CodeNoProducts, "product_unique_names", "product_unique_names is empty")
		}
		if len(names) > pimhook.MaxTriggerProducts {
			return nil, pimhook.FieldError(pimhook.CodeValidation, "product_unique_names", "at most %d products per trigger", pimhook.MaxTriggerProducts)
		}
		return names, nil
	case t.Filter != nil:
		return d.matchProducts(ctx, companyID, t.Filter)
	}
	return nil, pimhook.FieldError(pimhook.CodeValidation, "filter", "give a filter or product_unique_names")
}

// matchProducts evaluates a filter over the company's stored products: each
// product's data is the document the filter's queries read.
func (d *Dispatcher) matchProducts(ctx context.Context, companyID string, pf *pimhook.Filter) ([]string, error) {
	f, err := d.cfg.Filters.FilterAt(pf, "filter")
	if err != nil {
		return nil, err
	}
	var names []string
	err = d.store.Products(ctx, companyID, func(id string, data json.RawMessage) error {
		doc, err := filter.Parse(data)
		if err != nil {
			return fmt.Errorf("product %s: %w", id, err)
		}
		ok, err := f.Match(doc)
		if err != nil {
			return pimhook.FieldError(pimhook.CodeInvalidFilter, "filter", "the filter failed on product %q: %v", id, err)
		}
		if ok {
			if len(names) == pimhook.MaxTriggerProducts {
				return errTooManyProducts
			}
			names = append(names, id)
		}
		return nil
	})
	switch {
	case errors.Is(err, errTooManyProducts):
		return nil, pimhook.FieldError(pimhook.CodeValidation, "filter", "the filter matches more than %d products; narrow it", pimhook.MaxTriggerProducts)
	case err != nil:
		return nil, err
	case len(names) == 0:
		return nil, pimhook.FieldError(pimhook.CodeNoProducts, "filter", "the filter matches no product")
	}
	return slices.Clip(names), nil
}
