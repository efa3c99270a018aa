package http

import (
	"fmt"
	"net/http"
	"time"

	"github.com/pimhook/pimhook"
)

// appInput is the body of POST and PATCH /v1/apps. Pointers tell an absent
// field from a zero one, so that PATCH changes only what is present.
type appInput struct {
	Name    *string `json:"name"`
	AppType *string `json:"app_type"`
	Worker  *string `json:"worker"`
}

// apply copies the present fields onto a.
func (in *appInput) apply(a *pimhook.App) {
	setIf(&a.Name, in.Name)
	setIf(&a.AppType, in.AppType)
	setIf(&a.Worker, in.Worker)
}

// appJSON is an app as the API shows it.
type appJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	AppType   string    `json:"app_type"`
	Worker    string    `json:"worker"`
	IsDefault bool      `json:"is_default"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toAppJSON(a *pimhook.App) appJSON {
	return appJSON{
		ID: a.ID, Name: a.Name, AppType: a.AppType, Worker: a.Worker, IsDefault: a.IsDefault,
		CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
	}
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) error {
	var in appInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	co := companyFrom(r.Context())
	now := s.Clock.Now().UTC()
	a := &pimhook.App{ID: pimhook.NewID(pimhook.PrefixApp, now), CompanyID: co.ID, CreatedAt: now, UpdatedAt: now}
	in.apply(a)
	if err := a.Normalize(); err != nil {
		return err
	}
	if err := s.Store.CreateApp(r.Context(), a); err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	w.Header().Set("Location", "/v1/apps/"+a.ID)
	return writeJSON(w, http.StatusCreated, toAppJSON(a))
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) error {
	apps, err := s.Store.Apps(r.Context(), companyFrom(r.Context()).ID)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	return writeJSON(w, http.StatusOK, mapList(apps, toAppJSON))
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) error {
	a, err := s.Store.App(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get app: %w", err)
	}
	return writeJSON(w, http.StatusOK, toAppJSON(a))
}

func (s *Server) patchApp(w http.ResponseWriter, r *http.Request) error {
	var in appInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	a, err := s.Store.App(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("patch app: %w", err)
	}
	in.apply(a)
	if err := a.Normalize(); err != nil {
		return err
	}
	a.UpdatedAt = s.Clock.Now().UTC()
	if err := s.Store.UpdateApp(r.Context(), a); err != nil {
		return fmt.Errorf("patch app: %w", err)
	}
	return writeJSON(w, http.StatusOK, toAppJSON(a))
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) error {
	if err := s.Store.DeleteApp(r.Context(), companyFrom(r.Context()).ID, r.PathValue("id")); err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	return noContent(w)
}

// setIf sets *dst to *src when src is present.
func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
