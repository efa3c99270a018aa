package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
)

// ErrNoSecret is returned by SignatureHeader when a delivery has no signing
// secret: an unsigned delivery would be indistinguishable from a forged one,
// so it does not go out at all.
var ErrNoSecret = errors.New("no signing secret")

// sigLen is the length of one base64 HMAC-SHA256 signature.
var sigLen = base64.StdEncoding.EncodedLen(sha256.Size)

// Sign returns the Standard Webhooks signature "v1,<base64>" of one message:
// the HMAC-SHA256 of msgID + "." + unix seconds of ts + "." + body, keyed by
// the decoded secret. The secret is written "whsec_<base64>", as pimhook shows
// it; a bare base64 secret is accepted too, for secrets imported from
// systems that drop the prefix.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	out := make([]byte, 0, 3+sigLen)
	return string(appendSignature(out, key, msgID, ts, body)), nil
}

// SignatureHeader returns the webhook-signature header value for secrets:
// one "v1,<base64>" per secret, space separated. During a secret rotation the
// webhook carries both the old and the new secret, so receivers verifying with
// either keep accepting deliveries until the old one expires.
func SignatureHeader(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", ErrNoSecret
	}
	out := make([]byte, 0, len(secrets)*(4+sigLen))
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return "", fmt.Errorf("secret %d: %w", i+1, err)
		}
		if i > 0 {
			out = append(out, ' ')
		}
		out = appendSignature(out, key, msgID, ts, body)
	}
	return string(out), nil
}

// appendSignature appends "v1,<base64>" to dst. It feeds the parts to the
// MAC one after the other rather than joining them, so a large body is never
// copied.
func appendSignature(dst, key []byte, msgID string, ts time.Time, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	prefix := make([]byte, 0, len(msgID)+22)
	prefix = append(prefix, msgID...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, ts.Unix(), 10)
	prefix = append(prefix, '.')
	mac.Write(prefix)
	mac.Write(body)
	var sum [sha256.Size]byte
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, mac.Sum(sum[:0]))
}

// decodeSecret returns the key bytes of a secret. Padding is optional because
// some systems strip it when they store secrets.
func decodeSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), pimhook.SecretPrefix)
	if s == "" {
		return nil, errors.New("empty signing secret")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if key, err2 = base64.RawStdEncoding.DecodeString(s); err2 != nil {
			return nil, fmt.Errorf("signing secret is not base64: %w", err)
		}
	}
	if len(key) == 0 {
		return nil, errors.New("empty signing secret")
	}
	return key, nil
}
