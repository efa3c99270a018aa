package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// `pimhook listen` is a receiver for development: it verifies and prints
// what a pimhook server delivers to it, and may pass it on to the
// application being developed. Its verification is written here from the
// Standard Webhooks specification and shares nothing with the signer in
// package dispatch: a verifier built from the signer's code would agree
// with it whatever both got wrong.

const (
	// signatureTolerance is how far a webhook-timestamp may be from now,
	// either way, as the Standard Webhooks libraries allow.
	signatureTolerance = 5 * time.Minute
	// maxListenBody bounds a request the listener reads; pimhook closes a
	// job delivery at 8 MiB.
	maxListenBody = 16 << 20
	// forwardTimeout bounds one forwarded request.
	forwardTimeout = 30 * time.Second
)

const listenSynopsis = "listen --secret whsec_... [--listen 127.0.0.1:4000] [--forward URL]"

func listenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("listen", listenSynopsis, stderr)
	secret := fs.String("secret", "", "the webhook's signing secret, whsec_... (required)")
	addr := fs.String("listen", "127.0.0.1:4000", "address to receive deliveries on")
	forward := fs.String("forward", "", "pass every verified delivery on to this URL and answer with its status")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("--secret is required: the webhook's signing secret (pimhook webhooks create prints it)")
	}
	v, err := newSignatureVerifier(*secret)
	if err != nil {
		return fmt.Errorf("--secret: %w", err)
	}
	if *forward != "" {
		if !isHTTPURL(*forward) {
			return fmt.Errorf("--forward: want an http or https URL, got %q", *forward)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	rcv := &receiver{verifier: v, forward: *forward, out: stdout, client: &http.Client{
		Timeout: forwardTimeout,
		// The answer, redirect or not, goes back to pimhook as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening on http://%s for deliveries signed with the secret", ln.Addr())
	if *forward != "" {
		fmt.Fprintf(stdout, "; forwarding to %s", *forward)
	}
	fmt.Fprintln(stdout, " (ctrl-c to stop)")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("listen: shutdown: %w", err)
	}
	return nil
}

// signatureVerifier checks Standard Webhooks signatures made with one
// secret.
type signatureVerifier struct {
	key []byte
}

func newSignatureVerifier(secret string) (*signatureVerifier, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), "whsec_")
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Some systems store the secret without its padding.
		if key, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("the secret is not whsec_ followed by base64")
		}
	}
	if len(key) == 0 {
		return nil, errors.New("the secret is empty")
	}
	return &signatureVerifier{key: key}, nil
}

// verify returns nil when one of the request's v1 signatures is the
// HMAC-SHA256 of "webhook-id.webhook-timestamp.body" under the key and the
// timestamp is within the tolerance of now; otherwise an error that says
// why not.
func (v *signatureVerifier) verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	var missing []string
	for _, p := range []struct{ name, value string }{{"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", sigs}} {
		if p.value == "" {
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing header %s", strings.Join(missing, ", "))
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not a number of seconds", ts)
	}
	sent := time.Unix(secs, 0)
	switch age := time.Since(sent); {
	case age > signatureTolerance:
		return fmt.Errorf("timestamp %s is %s old, older than %s: a replay, or a clock that is wrong",
			sent.UTC().Format(time.RFC3339), age.Truncate(time.Second), signatureTolerance)
	case -age > signatureTolerance:
		return fmt.Errorf("timestamp %s is %s in the future, more than %s: a clock that is wrong",
			sent.UTC().Format(time.RFC3339), (-age).Truncate(time.Second), signatureTolerance)
	}

	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	versions := 0
	for sig := range strings.FieldsSeq(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // another scheme; not ours to judge
		}
		versions++
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	if versions == 0 {
		return fmt.Errorf("webhook-signature %q holds no v1 signature", sigs)
	}
	return fmt.Errorf("none of the %d v1 signatures matches: a wrong secret, or the body or headers changed on the way", versions)
}

// receiver is the HTTP handler of pimhook listen.
type receiver struct {
	verifier *signatureVerifier
	forward  string // "" prints and answers 200
	out      io.Writer

	mu     sync.Mutex   // serialises writes to out
	client *http.Client // forwards, when forward is set
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "pimhook listen takes POST deliveries only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxListenBody))
	if err != nil {
		rc.print(fmt.Sprintf("%s  POST %s  could not read the body: %v\n", stamp(), r.URL.RequestURI(), err))
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  POST %s  %s  %s  attempt %s\n", stamp(), r.URL.RequestURI(),
		orDash(r.Header.Get("webhook-id")), orDash(eventName(body)), orDash(attemptOf(body)))
	if err := rc.verifier.verify(r.Header, body); err != nil {
		fmt.Fprintf(&b, "signature INVALID: %v\n%s", err, pretty(body))
		rc.print(b.String())
		http.Error(w, "signature invalid: "+err.Error(), http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(&b, "signature verified\n%s", pretty(body))
	if rc.forward == "" {
		rc.print(b.String())
		w.WriteHeader(http.StatusOK)
		return
	}
	status, err := rc.pass(r, body, w)
	if err != nil {
		fmt.Fprintf(&b, "forward to %s failed: %v; answered 502\n", rc.forward, err)
		rc.print(b.String())
		http.Error(w, "forward failed", http.StatusBadGateway)
		return
	}
	fmt.Fprintf(&b, "forwarded to %s: %d %s\n", rc.forward, status, http.StatusText(status))
	rc.print(b.String())
}

// pass forwards a verified delivery with its headers and copies the answer
// to w. It returns the status it answered with.
func (rc *receiver) pass(r *http.Request, body []byte, w http.ResponseWriter) (int, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, rc.forward, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, vs := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		req.Header[k] = vs
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxListenBody))
	if err != nil {
		return 0, fmt.Errorf("read the answer: %w", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
	return resp.StatusCode, nil
}

// print writes one request's block at once, so concurrent deliveries do
// not interleave.
func (rc *receiver) print(s string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, _ = io.WriteString(rc.out, s+"\n")
}

func stamp() string { return time.Now().Format("2006-01-02 15:04:05.000") }

// eventName names what a body is about: a pimhook event's "event", a job
// delivery's job, or a bulk operation.
func eventName(body []byte) string {
	var p struct {
		Event     string `json:"event"`
		JobID     string `json:"jobID"`
		Operation string `json:"operationName"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	switch {
	case p.Event != "":
		return p.Event
	case p.JobID != "":
		return "job " + p.JobID
	case p.Operation != "":
		return "bulk operation " + p.Operation
	}
	return ""
}

// attemptOf is the body's workflow.attempt, which counts the attempts of a
// delivery; Standard Webhooks has no header for it.
func attemptOf(body []byte) string {
	var p struct {
		Workflow struct {
			Attempt int `json:"attempt"`
		} `json:"workflow"`
	}
	if json.Unmarshal(body, &p) != nil || p.Workflow.Attempt == 0 {
		return ""
	}
	return strconv.Itoa(p.Workflow.Attempt)
}

// pretty indents a JSON body; another body is shown as it came.
func pretty(body []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, body, "", "  ") != nil {
		return string(body) + "\n"
	}
	b.WriteByte('\n')
	return b.String()
}
