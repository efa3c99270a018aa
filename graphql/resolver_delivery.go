package graphql

import (
	"context"
	"fmt"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/model"
)

// Deliveries pages through the company's deliveries, newest first, with
// the cursors of GET /v1/deliveries: a cursor names the last delivery of
// the previous page, and the next page starts below it in queue order.
func (q queryResolver) Deliveries(ctx context.Context, webhookID, appID *string, status *pimhook.DeliveryStatus,
	since, until *time.Time, first *int, after *string) (*model.DeliveryConnection, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	f := pimhook.DeliveryFilter{CompanyID: co.ID, Limit: pimhook.DefaultDeliveryPage}
	setIf(&f.WebhookID, webhookID)
	setIf(&f.AppID, appID)
	setIf(&f.Status, status)
	setIf(&f.Since, since)
	setIf(&f.Until, until)
	if first != nil {
		if *first < 1 || *first > pimhook.MaxDeliveryPage {
			return nil, pimhook.FieldError(pimhook.CodeInvalidQuery, "first", "first must be from 1 to %d, got %d", pimhook.MaxDeliveryPage, *first)
		}
		f.Limit = *first
	}
	if after != nil && *after != "" {
		if f.BeforeSeq, err = pimhook.DecodeCursor(*after, "after"); err != nil {
			return nil, err
		}
	}
	list, more, err := pimhook.DeliveryPage(ctx, q.cfg.Store, f)
	if err != nil {
		return nil, err
	}
	conn := &model.DeliveryConnection{
		Edges:    make([]*model.DeliveryEdge, 0, len(list)),
		Nodes:    make([]*model.Delivery, 0, len(list)),
		PageInfo: &model.PageInfo{HasNextPage: more},
	}
	for _, d := range list {
		node := toDelivery(d)
		conn.Edges = append(conn.Edges, &model.DeliveryEdge{Cursor: pimhook.EncodeCursor(d.Seq), Node: node})
		conn.Nodes = append(conn.Nodes, node)
	}
	if len(conn.Edges) > 0 {
		conn.PageInfo.EndCursor = &conn.Edges[len(conn.Edges)-1].Cursor
	}
	return conn, nil
}

// Delivery returns one delivery of the company.
func (q queryResolver) Delivery(ctx context.Context, id string) (*model.Delivery, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	d, err := q.cfg.Store.Delivery(ctx, co.ID, id)
	if err != nil {
		return nil, fmt.Errorf("get delivery: %w", err)
	}
	return toDelivery(d), nil
}

// Attempts lists the delivery's attempts, first first. The delivery was
// found among the company's, so its attempts are the company's too.
func (r deliveryResolver) Attempts(ctx context.Context, obj *model.Delivery) ([]*model.Attempt, error) {
	attempts, err := r.cfg.Store.Attempts(ctx, obj.ID)
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return mapList(attempts, toAttempt), nil
}

// Webhook returns the delivery's webhook, or null once it was deleted.
func (r deliveryResolver) Webhook(ctx context.Context, obj *model.Delivery) (*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	w, err := r.cfg.Store.Webhook(ctx, co.ID, obj.WebhookID)
	if err != nil {
		if pimhook.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get delivery webhook: %w", err)
	}
	return toWebhook(w), nil
}
