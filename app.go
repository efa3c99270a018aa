package pimhook

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Worker assignments of an app (reference document 1).
const (
	WorkerShared    = "shared"    // the shared pool of its app type, or the general shared pool
	WorkerDedicated = "dedicated" // a worker of its own
)

// DefaultAppType is the app type of an app that names none.
const DefaultAppType = "generic"

// App is a receiving channel of a company: a webshop, an ERP, an integration.
// Its deliveries go out one at a time, in order, from one worker.
type App struct {
	ID        string    `json:"id"`
	CompanyID string    `json:"company_id"`
	Name      string    `json:"name"`
	AppType   string    `json:"app_type"`
	Worker    string    `json:"worker"`
	IsDefault bool      `json:"is_default"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var appTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Normalize fills defaults and validates a.
func (a *App) Normalize() error {
	a.Name = strings.TrimSpace(a.Name)
	if a.Name == "" {
		return FieldError(CodeValidation, "name", "name is required")
	}
	if len(a.Name) > 200 {
		return FieldError(CodeValidation, "name", "name is longer than 200 characters")
	}
	if a.AppType == "" {
		a.AppType = DefaultAppType
	}
	a.AppType = strings.ToLower(a.AppType)
	if !appTypeRE.MatchString(a.AppType) {
		return FieldError(CodeValidation, "app_type", "app_type must be 1-64 characters of a-z, 0-9, _ and -, got %q", a.AppType)
	}
	switch a.Worker {
	case "":
		a.Worker = WorkerShared
	case WorkerShared, WorkerDedicated:
	default:
		return FieldError(CodeValidation, "worker", "worker must be %q or %q, got %q", WorkerShared, WorkerDedicated, a.Worker)
	}
	return nil
}

// EnsureDefaultApp returns the company's default app, creating it on first
// use. Webhooks created without an app_id belong to it.
func EnsureDefaultApp(ctx context.Context, s Store, companyID string, now time.Time) (*App, error) {
	a, err := s.DefaultApp(ctx, companyID)
	if err == nil || !IsNotFound(err) {
		return a, err
	}
	a = &App{
		ID: NewID(PrefixApp, now), CompanyID: companyID, Name: "default",
		AppType: DefaultAppType, Worker: WorkerShared, IsDefault: true,
		CreatedAt: now, UpdatedAt: now,
	}
	if err := s.CreateApp(ctx, a); err != nil {
		if ErrorKind(err) == KindConflict { // created by a concurrent call
			return s.DefaultApp(ctx, companyID)
		}
		return nil, fmt.Errorf("create default app: %w", err)
	}
	return a, nil
}
