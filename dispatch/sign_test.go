package dispatch_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// TestSignKnownAnswer checks the example published with the Standard
// Webhooks specification.
func TestSignKnownAnswer(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	for _, s := range []string{secret, strings.TrimPrefix(secret, "whsec_")} {
		got, err := dispatch.Sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
		if err != nil {
			t.Fatalf("Sign(%q): %v", s, err)
		}
		if got != want {
			t.Errorf("Sign(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestSignRejectsBadSecret(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "whsec_", "whsec_not*base64!", "%%%"} {
		if _, err := dispatch.Sign(s, "msg_1", time.Now(), []byte("{}")); err == nil {
			t.Errorf("Sign(%q): no error", s)
		}
	}
	if _, err := dispatch.SignatureHeader(nil, "msg_1", time.Now(), []byte("{}")); err == nil {
		t.Error("SignatureHeader with no secrets: no error")
	}
	if _, err := dispatch.SignatureHeader([]string{pimhook.NewSecret(), "whsec_!!"}, "msg_1", time.Now(), []byte("{}")); err == nil {
		t.Error("SignatureHeader with one bad secret: no error")
	}
}

// capturedRequest is what a receiver saw.
type capturedRequest struct {
	header http.Header
	body   []byte
}

// captureServer records every request it receives and answers 204.
func captureServer(t *testing.T) (*httptest.Server, <-chan capturedRequest) {
	t.Helper()
	got := make(chan capturedRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- capturedRequest{header: r.Header.Clone(), body: b}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func verifier(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

// TestSignVerifiedByReferenceLibrary sends real requests and checks them the
// way a receiver using the Standard Webhooks library would.
func TestSignVerifiedByReferenceLibrary(t *testing.T) {
	t.Parallel()
	srv, got := captureServer(t)
	c := loopbackClient(t)
	oldSecret, newSecret, otherSecret := pimhook.NewSecret(), pimhook.NewSecret(), pimhook.NewSecret()
	body := []byte(`{"id":"evt_1","event":"products.updated"}`)

	t.Run("one secret", func(t *testing.T) {
		res := c.Send(t.Context(), dispatch.Request{URL: srv.URL, MsgID: "msg_one", Body: body, Secrets: []string{newSecret}, Timestamp: time.Now()})
		if res.ErrCode != "" || res.StatusCode != http.StatusNoContent {
			t.Fatalf("Send: %+v", res)
		}
		req := <-got
		if err := verifier(t, newSecret).Verify(req.body, req.header); err != nil {
			t.Errorf("reference verifier: %v", err)
		}
		if err := verifier(t, otherSecret).Verify(req.body, req.header); err == nil {
			t.Error("an unrelated secret verified the delivery")
		}
		tampered := append([]byte(nil), req.body...)
		tampered[len(tampered)-2] ^= 1
		if err := verifier(t, newSecret).Verify(tampered, req.header); err == nil {
			t.Error("a tampered body verified")
		}
		h := req.header.Clone()
		h.Set("webhook-id", "msg_other")
		if err := verifier(t, newSecret).Verify(req.body, h); err == nil {
			t.Error("a changed webhook-id verified")
		}
	})

	t.Run("rotation", func(t *testing.T) {
		res := c.Send(t.Context(), dispatch.Request{URL: srv.URL, MsgID: "msg_rot", Body: body, Secrets: []string{oldSecret, newSecret}, Timestamp: time.Now()})
		if res.ErrCode != "" {
			t.Fatalf("Send: %+v", res)
		}
		req := <-got
		sigs := strings.Fields(req.header.Get("webhook-signature"))
		if len(sigs) != 2 {
			t.Fatalf("webhook-signature = %q, want two signatures", req.header.Get("webhook-signature"))
		}
		for _, s := range []string{oldSecret, newSecret} {
			if err := verifier(t, s).Verify(req.body, req.header); err != nil {
				t.Errorf("verify with one of the rotated secrets: %v", err)
			}
		}
		if err := verifier(t, otherSecret).Verify(req.body, req.header); err == nil {
			t.Error("an unrelated secret verified the delivery")
		}
		// Each signature stands alone: receivers that know only one
		// secret see only "their" signature.
		for i, s := range []string{oldSecret, newSecret} {
			h := req.header.Clone()
			h.Set("webhook-signature", sigs[i])
			if err := verifier(t, s).Verify(req.body, h); err != nil {
				t.Errorf("signature %d alone: %v", i+1, err)
			}
		}
	})
}
