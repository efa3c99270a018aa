package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pimhook/pimhook"
)

// Redeliver queues a new attempt of one delivery at the tail of its app's
// queue. The delivery keeps its ID, so the receiver sees the same
// webhook-id; its attempt numbers go on from where they were.
func (d *Dispatcher) Redeliver(ctx context.Context, companyID, deliveryID string) (*pimhook.Delivery, error) {
	ds, err := d.store.RequeueDeliveries(ctx, companyID, []string{deliveryID}, d.clock.Now())
	if err != nil {
		return nil, err
	}
	d.Notify(ds[0].AppID)
	return ds[0], nil
}

// Recover re-queues every failed or skipped delivery of a webhook created in
// [since, until) (until zero: up to now), in their original order, at the
// tail of the app's queue. It returns them; at most pimhook.MaxRecover.
func (d *Dispatcher) Recover(ctx context.Context, companyID, webhookID string, since, until time.Time) ([]*pimhook.Delivery, error) {
	if _, err := d.cat.Webhook(ctx, companyID, webhookID); err != nil {
		return nil, err
	}
	var found []*pimhook.Delivery
	for _, status := range []pimhook.DeliveryStatus{pimhook.DeliveryFailed, pimhook.DeliverySkipped} {
		f := pimhook.DeliveryFilter{CompanyID: companyID, WebhookID: webhookID, Status: status, Since: since, Until: until, Limit: pimhook.MaxPage}
		for {
			page, err := d.store.Deliveries(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("recover: %w", err)
			}
			found = append(found, page...)
			if len(found) > pimhook.MaxRecover {
				return nil, pimhook.FieldError(pimhook.CodeValidation, "since",
					"more than %d deliveries to recover in this window; recover a shorter one", pimhook.MaxRecover)
			}
			if len(page) < f.Limit {
				break
			}
			f.BeforeSeq = page[len(page)-1].Seq
		}
	}
	if len(found) == 0 {
		return []*pimhook.Delivery{}, nil
	}
	// Original order: when they were made. Seq is no guide, since a
	// redelivered delivery got a new one.
	slices.SortFunc(found, func(a, b *pimhook.Delivery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	ids := make([]string, len(found))
	for i, dl := range found {
		ids[i] = dl.ID
	}
	ds, err := d.store.RequeueDeliveries(ctx, companyID, ids, d.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	apps := make([]string, 0, 1)
	for _, dl := range ds {
		apps = append(apps, dl.AppID)
	}
	slices.Sort(apps)
	for _, id := range slices.Compact(apps) {
		d.Notify(id)
	}
	return ds, nil
}

// healthCheckEvery is how often, at most, a failing webhook is checked
// against the disable period: failures come in bursts, and one check a
// minute is precise enough for a period of days.
const healthCheckEvery = time.Minute

// checkHealth disables w when it has failed, without a success, for the
// configured period. Deliveries that reach it after that are skipped and
// can be recovered once the user enables it again.
func (d *Dispatcher) checkHealth(ctx context.Context, w *pimhook.Webhook) {
	if d.cfg.DisableAfter <= 0 {
		return
	}
	now := d.clock.Now()
	d.healthMu.Lock()
	last, seen := d.healthChecked[w.ID]
	if seen && now.Sub(last) < healthCheckEvery {
		d.healthMu.Unlock()
		return
	}
	d.healthChecked[w.ID] = now
	d.healthMu.Unlock()
	reason := fmt.Sprintf("every attempt failed for %s; re-enable the webhook and recover its skipped deliveries once its receiver works", d.cfg.DisableAfter)
	off, err := d.cat.DisableFailingWebhook(ctx, w.CompanyID, w.ID, d.cfg.DisableAfter, now, reason)
	if err != nil {
		d.log.Error("check webhook health", attrWebhook, w.ID, attrError, err)
		return
	}
	if off {
		d.log.Warn("webhook disabled", attrWebhook, w.ID, attrApp, w.AppID, attrError, reason)
	}
}

// forgetHealth drops the check time of a webhook that succeeded.
func (d *Dispatcher) forgetHealth(id string) {
	d.healthMu.Lock()
	delete(d.healthChecked, id)
	d.healthMu.Unlock()
}
