package pimhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// Invocation timeout limits, in milliseconds (reference document 4).
const (
	DefaultTimeoutMS = 2500
	MaxTimeoutMS     = 10000
)

// Company is a tenant. It owns API keys, apps, webhooks and entities.
type Company struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Preferences Preferences `json:"preferences"`
	CreatedAt   time.Time   `json:"created_at"`
}

// Preferences are a company's settings.
type Preferences struct {
	// WebhookInvocationTimeoutMS is the timeout of a delivery attempt whose
	// webhook sets none. 0 means DefaultTimeoutMS.
	WebhookInvocationTimeoutMS int `json:"webhook_invocation_timeout_ms"`
}

// TimeoutMS returns the effective company timeout.
func (p Preferences) TimeoutMS() int {
	if p.WebhookInvocationTimeoutMS <= 0 {
		return DefaultTimeoutMS
	}
	return min(p.WebhookInvocationTimeoutMS, MaxTimeoutMS)
}

// Validate checks the preferences a user set. A zero timeout means the
// default.
func (p Preferences) Validate() error {
	if ms := p.WebhookInvocationTimeoutMS; ms < 0 || ms > MaxTimeoutMS {
		return FieldError(CodeInvalidTimeout, "webhook_invocation_timeout_ms",
			"webhook_invocation_timeout_ms must be from 1 to %d milliseconds (0 for the default, %d), got %d", MaxTimeoutMS, DefaultTimeoutMS, ms)
	}
	return nil
}

// APIKey authenticates a company. Only the SHA-256 of the key is stored: keys
// are 32 random bytes, so a fast hash is as good as a slow one here.
type APIKey struct {
	ID        string    `json:"id"`
	CompanyID string    `json:"company_id"`
	Hash      string    `json:"-"`
	Prefix    string    `json:"prefix"` // first characters, to recognise a key in lists
	CreatedAt time.Time `json:"created_at"`
}

// NewAPIKey returns a fresh random key in its presentable form ("phk_...").
func NewAPIKey() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("pimhook: crypto/rand failed: " + err.Error())
	}
	return "phk_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashAPIKey returns the stored form of a key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyPrefix returns the displayable start of a key.
func KeyPrefix(key string) string {
	if len(key) > 10 {
		return key[:10]
	}
	return key
}
