package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

var listeningOn = regexp.MustCompile(`^listening on (http://\S+) `)

// startListen runs `pimhook listen` with args on a random loopback port
// and returns its output and base URL. It stops when the test ends, and
// must stop cleanly.
func startListen(t *testing.T, args ...string) (*cliOutput, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := newCLIOutput()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"listen", "--listen", "127.0.0.1:0"}, args...), out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	return out, out.match(t, listeningOn)[1]
}

// signedPost posts body to url with Standard Webhooks headers: sigs as the
// webhook-signature, or, when sigs is empty, a signature by secret.
func signedPost(t *testing.T, url, secret, msgID string, ts time.Time, body []byte, sigs string) (int, string) {
	t.Helper()
	if sigs == "" {
		var err error
		if sigs, err = dispatch.Sign(secret, msgID, ts, body); err != nil {
			t.Fatal(err)
		}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sigs)
	return post(t, url, h, body)
}

func post(t *testing.T, url string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestListenVerifiesRealDelivery points a webhook of a real server at
// `pimhook listen`: the delivery is verified and printed, and forged,
// replayed and unsigned requests are refused with a 401 and a line that
// says why.
func TestListenVerifiesRealDelivery(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	c := m.client(t)
	hook := c.createWebhook(map[string]any{"callback_url": "http://127.0.0.1:9/not-yet", "entity_type": "products"})
	out, base := startListen(t, "--secret", hook.SigningSecret)
	c.must(http.StatusOK, "PATCH", "/v1/webhooks/"+hook.ID, map[string]any{"callback_url": base + "/hooks/products"}, nil)

	mustCLI(t, m, "events", "send", "--type", "products", "--id", "sku-9", "--action", "created", "--data", `{"name":"Lamp","price":25}`)
	got := out.match(t, regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  POST /hooks/products  (msg_\S+)  products\.created  attempt 1\nsignature verified\n\{\n  "id": "evt_`))
	if !strings.Contains(out.String(), "\n  \"entity_id\": \"sku-9\",\n") {
		t.Errorf("listen printed:\n%s\nwant the pretty-printed body", out)
	}
	var d deliveryView
	waitFor(t, "the delivery to succeed", 10*time.Second, func() bool {
		c.must(http.StatusOK, "GET", "/v1/deliveries/"+got[1], nil, &d)
		return d.Status == "succeeded"
	})

	body := []byte(`{"event":"products.updated","workflow":{"attempt":3}}`)
	now := time.Now()
	wrong := pimhook.NewSecret()
	for _, tc := range []struct {
		name   string
		secret string
		ts     time.Time
		sigs   string
		want   string
	}{
		{"wrong secret", wrong, now, "", `signature INVALID: none of the 1 v1 signatures matches`},
		{"old timestamp", hook.SigningSecret, now.Add(-10 * time.Minute), "", `signature INVALID: timestamp \S+ is 10m\ds old, older than 5m0s`},
		{"future timestamp", hook.SigningSecret, now.Add(10 * time.Minute), "", `signature INVALID: timestamp \S+ is (9m5\ds|10m0s) in the future, more than 5m0s`},
		{"no v1 signature", hook.SigningSecret, now, "v1a,abc", `signature INVALID: webhook-signature "v1a,abc" holds no v1 signature`},
	} {
		msgID := "msg_" + strings.ReplaceAll(tc.name, " ", "_")
		status, answer := signedPost(t, base+"/x", tc.secret, msgID, tc.ts, body, tc.sigs)
		if status != http.StatusUnauthorized || !strings.HasPrefix(answer, "signature invalid: ") {
			t.Errorf("%s: answered %d %q, want 401", tc.name, status, answer)
		}
		out.match(t, regexp.MustCompile(`POST /x  `+msgID+`  products\.updated  attempt 3\n`+tc.want))
	}

	status, _ := post(t, base+"/unsigned", http.Header{"Content-Type": {"application/json"}}, body)
	if status != http.StatusUnauthorized {
		t.Errorf("unsigned: answered %d, want 401", status)
	}
	out.match(t, regexp.MustCompile(`POST /unsigned  -  products\.updated  attempt 3\nsignature INVALID: missing header webhook-id, webhook-timestamp, webhook-signature\n`))

	// During a secret rotation a delivery carries two signatures; one that
	// matches is enough.
	good, err := dispatch.Sign(hook.SigningSecret, "msg_rotated", now, body)
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := dispatch.Sign(wrong, "msg_rotated", now, body)
	if status, _ := signedPost(t, base+"/rotated", "", "msg_rotated", now, body, bad+" "+good); status != http.StatusOK {
		t.Errorf("two signatures, one good: answered %d, want 200", status)
	}
	out.match(t, regexp.MustCompile(`POST /rotated  msg_rotated  products\.updated  attempt 3\nsignature verified\n`))
}

// TestListenVerifierAgreesWithReference checks the listener's verifier
// against the Standard Webhooks reference library, case by case.
func TestListenVerifierAgreesWithReference(t *testing.T) {
	t.Parallel()
	secret, other := pimhook.NewSecret(), pimhook.NewSecret()
	ref, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := newSignatureVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"event":"products.created"}`)
	now := time.Now()
	sign := func(s, id string, ts time.Time, b []byte) string {
		sig, err := dispatch.Sign(s, id, ts, b)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		if id != "" {
			h.Set("webhook-id", id)
		}
		if !ts.IsZero() {
			h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		}
		if sig != "" {
			h.Set("webhook-signature", sig)
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{"valid", headers("msg_1", now, sign(secret, "msg_1", now, body)), body, true},
		{"four minutes old", headers("msg_1", now.Add(-4*time.Minute), sign(secret, "msg_1", now.Add(-4*time.Minute), body)), body, true},
		{"six minutes old", headers("msg_1", now.Add(-6*time.Minute), sign(secret, "msg_1", now.Add(-6*time.Minute), body)), body, false},
		{"six minutes ahead", headers("msg_1", now.Add(6*time.Minute), sign(secret, "msg_1", now.Add(6*time.Minute), body)), body, false},
		{"other secret", headers("msg_1", now, sign(other, "msg_1", now, body)), body, false},
		{"body changed", headers("msg_1", now, sign(secret, "msg_1", now, body)), []byte(`{"event":"products.deleted"}`), false},
		{"id changed", headers("msg_2", now, sign(secret, "msg_1", now, body)), body, false},
		{"second of two", headers("msg_1", now, sign(other, "msg_1", now, body)+" "+sign(secret, "msg_1", now, body)), body, true},
		{"missing id", headers("", now, sign(secret, "msg_1", now, body)), body, false},
		{"missing signature", headers("msg_1", now, ""), body, false},
		{"not base64", headers("msg_1", now, "v1,!!!"), body, false},
		{"other version", headers("msg_1", now, strings.Replace(sign(secret, "msg_1", now, body), "v1,", "v2,", 1)), body, false},
	} {
		refErr, gotErr := ref.Verify(tc.body, tc.h), v.verify(tc.h, tc.body)
		if (refErr == nil) != tc.ok || (gotErr == nil) != tc.ok {
			t.Errorf("%s: reference library says %v, listener says %v; want ok=%v", tc.name, refErr, gotErr, tc.ok)
		}
	}
	// A timestamp that is not a number is refused, with the reason.
	h := headers("msg_1", time.Time{}, sign(secret, "msg_1", now, body))
	h.Set("webhook-timestamp", "yesterday")
	if err := v.verify(h, body); err == nil || !strings.Contains(err.Error(), `"yesterday" is not a number of seconds`) {
		t.Errorf("timestamp yesterday: %v", err)
	}
}

// TestListenForward passes verified deliveries on, headers and all, and
// answers with the target's status; forged ones never reach it.
func TestListenForward(t *testing.T) {
	t.Parallel()
	got := make(chan captured, 10)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Header.Clone(), b}
		if strings.HasSuffix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "thanks")
	}))
	t.Cleanup(target.Close)
	secret := pimhook.NewSecret()
	out, base := startListen(t, "--secret", secret, "--forward", target.URL+"/app/hook")
	if !strings.Contains(out.String(), "forwarding to "+target.URL+"/app/hook") {
		t.Errorf("listen printed %q, want it to say where it forwards", out)
	}

	body := []byte(`{"event":"products.created","data":{"sku":"a"}}`)
	code, answer := signedPost(t, base+"/in", secret, "msg_fwd", time.Now(), body, "")
	if code != http.StatusAccepted || answer != "thanks" {
		t.Errorf("answered %d %q, want the target's 202 thanks", code, answer)
	}
	fwd := receive(t, got)
	if !bytes.Equal(fwd.body, body) || fwd.header.Get("webhook-id") != "msg_fwd" || fwd.header.Get("webhook-signature") == "" {
		t.Errorf("forwarded %q with headers %v", fwd.body, fwd.header)
	}
	// The forwarded request still verifies: the application under
	// development can check signatures itself.
	verify(t, secret, fwd)
	out.match(t, regexp.MustCompile(`signature verified\n(?s:.*)forwarded to `+regexp.QuoteMeta(target.URL)+`/app/hook: 202 Accepted\n`))

	// A forged request is not forwarded: the next request the target sees
	// is the one after it.
	if code, _ := signedPost(t, base+"/in", pimhook.NewSecret(), "msg_forged", time.Now(), body, ""); code != http.StatusUnauthorized {
		t.Errorf("forged: answered %d, want 401", code)
	}
	if code, _ := signedPost(t, base+"/in", secret, "msg_after", time.Now(), body, ""); code != http.StatusAccepted {
		t.Errorf("after the forged one: answered %d, want 202", code)
	}
	if next := receive(t, got); next.header.Get("webhook-id") != "msg_after" {
		t.Errorf("the target got %s, want msg_after: the forged request was forwarded", next.header.Get("webhook-id"))
	}

	// The target's refusal is pimhook's answer, so that pimhook retries.
	_, failing := startListen(t, "--secret", secret, "--forward", target.URL+"/fail")
	if code, _ := signedPost(t, failing, secret, "msg_fail", time.Now(), body, ""); code != http.StatusServiceUnavailable {
		t.Errorf("target answering 503: answered %d, want 503", code)
	}
	receive(t, got)
}
