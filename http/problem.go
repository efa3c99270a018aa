package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/pimhook/pimhook"
)

// ProblemTypePrefix starts the type URI of every problem; the error code
// follows it.
const ProblemTypePrefix = "urn:pimhook:problem:"

// kindMethodNotAllowed is the one failure the domain has no kind for: only
// routing produces it.
const kindMethodNotAllowed pimhook.Kind = "method_not_allowed"

// Problem is an RFC 9457 problem details answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
}

// statusOf is the one place that maps an error kind to an HTTP status.
func statusOf(k pimhook.Kind) int {
	switch k {
	case pimhook.KindInvalid:
		return http.StatusBadRequest
	case pimhook.KindUnauthorized:
		return http.StatusUnauthorized
	case pimhook.KindForbidden:
		return http.StatusForbidden
	case pimhook.KindNotFound:
		return http.StatusNotFound
	case kindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case pimhook.KindConflict:
		return http.StatusConflict
	case pimhook.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case pimhook.KindUnsupported:
		return http.StatusUnsupportedMediaType
	case pimhook.KindUnavailable:
		return http.StatusServiceUnavailable
	case pimhook.KindBadGateway:
		return http.StatusBadGateway
	case pimhook.KindTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// problemFor describes err for the client. Anything that is not a
// *pimhook.Error, or is one of kind internal, is an "internal error": its
// text may name tables, files or hosts and never leaves the server.
func problemFor(err error) Problem {
	var e *pimhook.Error
	if !errors.As(err, &e) || statusOf(e.Kind) == http.StatusInternalServerError {
		return newProblem(http.StatusInternalServerError, pimhook.CodeInternal, "internal error", "")
	}
	return newProblem(statusOf(e.Kind), e.Code, e.Message, e.Field)
}

func newProblem(status int, code, detail, field string) Problem {
	return Problem{
		Type:   ProblemTypePrefix + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
		Field:  field,
	}
}

// writeError renders err as a problem answer. This is the edge where errors
// end: an internal one is logged here, once, and nowhere else.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	if p.Status == http.StatusInternalServerError {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody is left to answer.
			s.Logger.DebugContext(r.Context(), "request canceled",
				slog.String(logKeyMethod, r.Method), slog.String(logKeyPath, r.URL.Path))
			return
		}
		s.Logger.ErrorContext(r.Context(), "request failed",
			slog.String(logKeyMethod, r.Method), slog.String(logKeyPath, r.URL.Path), slog.Any(logKeyError, err))
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pimhook"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	if err := writeBody(w, p.Status, "application/problem+json", p); err != nil {
		s.Logger.ErrorContext(r.Context(), "write problem", slog.Any(logKeyError, err))
	}
}
