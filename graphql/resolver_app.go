package graphql

import (
	"context"
	"fmt"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/model"
)

// Apps lists the company's apps.
func (q queryResolver) Apps(ctx context.Context) ([]*model.App, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	apps, err := q.cfg.Store.Apps(ctx, co.ID)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return mapList(apps, toApp), nil
}

// App returns one app of the company.
func (q queryResolver) App(ctx context.Context, id string) (*model.App, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	a, err := q.cfg.Store.App(ctx, co.ID, id)
	if err != nil {
		return nil, fmt.Errorf("get app: %w", err)
	}
	return toApp(a), nil
}

// CreateApp creates an app as POST /v1/apps does.
func (m mutationResolver) CreateApp(ctx context.Context, input model.CreateAppInput) (*model.App, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Clock.Now().UTC()
	a := &pimhook.App{ID: pimhook.NewID(pimhook.PrefixApp, now), CompanyID: co.ID, Name: input.Name, CreatedAt: now, UpdatedAt: now}
	setIf(&a.AppType, input.AppType)
	setIf(&a.Worker, input.Worker)
	if err := a.Normalize(); err != nil {
		return nil, err
	}
	if err := m.cfg.Store.CreateApp(ctx, a); err != nil {
		return nil, fmt.Errorf("create app: %w", err)
	}
	return toApp(a), nil
}

// UpdateApp changes the fields present in input, as PATCH /v1/apps/{id}
// does.
func (m mutationResolver) UpdateApp(ctx context.Context, id string, input model.UpdateAppInput) (*model.App, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	a, err := m.cfg.Store.App(ctx, co.ID, id)
	if err != nil {
		return nil, fmt.Errorf("update app: %w", err)
	}
	setIf(&a.Name, input.Name)
	setIf(&a.AppType, input.AppType)
	setIf(&a.Worker, input.Worker)
	if err := a.Normalize(); err != nil {
		return nil, err
	}
	a.UpdatedAt = m.cfg.Clock.Now().UTC()
	if err := m.cfg.Store.UpdateApp(ctx, a); err != nil {
		return nil, fmt.Errorf("update app: %w", err)
	}
	return toApp(a), nil
}

// DeleteApp deletes an app; false if there is none. An app in use is
// refused with app_in_use.
func (m mutationResolver) DeleteApp(ctx context.Context, id string) (bool, error) {
	co, err := company(ctx)
	if err != nil {
		return false, err
	}
	if err := m.cfg.Store.DeleteApp(ctx, co.ID, id); err != nil {
		if pimhook.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("delete app: %w", err)
	}
	return true, nil
}

// Webhooks lists the app's webhooks, oldest first.
func (r appResolver) Webhooks(ctx context.Context, obj *model.App) ([]*model.Webhook, error) {
	co, err := company(ctx)
	if err != nil {
		return nil, err
	}
	hooks, err := r.cfg.Store.Webhooks(ctx, co.ID)
	if err != nil {
		return nil, fmt.Errorf("list app webhooks: %w", err)
	}
	out := []*model.Webhook{}
	for _, w := range hooks {
		if w.AppID == obj.ID {
			out = append(out, toWebhook(w))
		}
	}
	return out, nil
}
