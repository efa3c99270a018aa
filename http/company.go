package http

import (
	"fmt"
	"net/http"

	"github.com/pimhook/pimhook"
)

// preferencesInput is the body of PATCH /v1/company/preferences.
type preferencesInput struct {
	WebhookInvocationTimeoutMS *int `json:"webhook_invocation_timeout_ms"`
}

// preferencesJSON is a company's preferences as the API shows them, with
// defaults filled in.
type preferencesJSON struct {
	WebhookInvocationTimeoutMS int `json:"webhook_invocation_timeout_ms"`
}

func toPreferencesJSON(p pimhook.Preferences) preferencesJSON {
	return preferencesJSON{WebhookInvocationTimeoutMS: p.TimeoutMS()}
}

func (s *Server) getPreferences(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, toPreferencesJSON(companyFrom(r.Context()).Preferences))
}

// patchPreferences changes the preferences present in the body.
func (s *Server) patchPreferences(w http.ResponseWriter, r *http.Request) error {
	var in preferencesInput
	if err := decode(w, r, s.MaxBodyBytes, &in); err != nil {
		return err
	}
	co := *companyFrom(r.Context())
	if in.WebhookInvocationTimeoutMS != nil {
		co.Preferences.WebhookInvocationTimeoutMS = *in.WebhookInvocationTimeoutMS
	}
	if err := co.Preferences.Validate(); err != nil {
		return err
	}
	if err := s.Store.UpdateCompany(r.Context(), &co); err != nil {
		return fmt.Errorf("update preferences: %w", err)
	}
	return writeJSON(w, http.StatusOK, toPreferencesJSON(co.Preferences))
}
