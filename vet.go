package pimhook

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TargetChecker refuses callback URLs whose target may not be reached; the
// dispatcher's guard implements it.
type TargetChecker interface {
	CheckURL(ctx context.Context, rawURL string) error
}

// CheckWebhook vets a webhook about to be saved, in the order every API
// follows: its own rules (filling defaults), then its filters and reducers
// compiled with filters, when it is not nil, then, when checkURL and targets
// is not nil, whether its callback URL may be reached.
func CheckWebhook(ctx context.Context, targets TargetChecker, filters FilterCompiler, hook *Webhook, checkURL bool) error {
	if err := hook.Normalize(); err != nil {
		return err
	}
	if filters != nil {
		if err := CheckFilterReducers(filters, hook); err != nil {
			return err
		}
	}
	if !checkURL || targets == nil {
		return nil
	}
	return CheckTarget(ctx, targets, hook.URL, "callback_url")
}

// CheckTarget asks targets whether rawURL, the input field, may be called.
func CheckTarget(ctx context.Context, targets TargetChecker, rawURL, field string) error {
	if err := targets.CheckURL(ctx, rawURL); err != nil {
		if _, ok := errors.AsType[*Error](err); ok || ctx.Err() != nil {
			return fmt.Errorf("check %s: %w", field, err)
		}
		return FieldError(CodeTargetForbidden, field, "%s may not be called: %v", field, err)
	}
	return nil
}

// AssignApp sets the app of a webhook about to be saved. appID is the
// input's app_id: absent (nil) keeps hook.AppID, or the company's default
// app for a webhook that has none; present but empty means the default app,
// which is created on first use. Call it last, once everything else passed.
func AssignApp(ctx context.Context, s Store, hook *Webhook, appID *string, now time.Time) error {
	switch {
	case appID != nil && *appID != "":
		if _, err := s.App(ctx, hook.CompanyID, *appID); err != nil {
			if IsNotFound(err) {
				return FieldError(CodeAppNotFound, "app_id", "app %q does not exist", *appID)
			}
			return fmt.Errorf("find app: %w", err)
		}
		hook.AppID = *appID
	case appID != nil || hook.AppID == "":
		a, err := EnsureDefaultApp(ctx, s, hook.CompanyID, now)
		if err != nil {
			return fmt.Errorf("default app: %w", err)
		}
		hook.AppID = a.ID
	}
	return nil
}
