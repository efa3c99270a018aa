package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// The client commands (webhooks, events, deliveries, report) talk to a
// running pimhook server over its REST API. They are plain functions of
// their arguments and an output writer, so the tests run them in-process.

const (
	// defaultServerURL is where the client commands look for pimhook when
	// neither --url nor PIMHOOK_URL says otherwise: where `pimhook serve`
	// listens by default.
	defaultServerURL = "http://127.0.0.1:8080"
	// clientTimeout bounds one API call.
	clientTimeout = 30 * time.Second
	// maxAnswerBytes bounds an answer the client reads; a page of 1000
	// deliveries is far smaller.
	maxAnswerBytes = 64 << 20
)

const clientUsage = `The client commands talk to a running pimhook server:

  pimhook webhooks list                      list the webhooks
  pimhook webhooks create --callback-url URL [flags]
                                             create a webhook; prints its id and signing secret
  pimhook webhooks delete ID                 delete a webhook
  pimhook events send --type T --id ID --action A [--data JSON|@file]
                                             post a test event
  pimhook deliveries tail [flags]            print the latest deliveries, then follow them
  pimhook deliveries redeliver ID            queue a delivery again
  pimhook report [--start T] [--end T] [flags]
                                             response times per interval and per webhook

Every client command takes --url (PIMHOOK_URL, default http://127.0.0.1:8080),
--key (PIMHOOK_API_KEY) and --json (print the API's answers as they are).
Run "pimhook <command> <subcommand> -h" for the flags of one.
`

// runClientCommand runs one client command group: webhooks, events,
// deliveries or report.
func runClientCommand(ctx context.Context, group string, args []string, stdout, stderr io.Writer) error {
	type command func(context.Context, []string, io.Writer, io.Writer) error
	commands := map[string]map[string]command{
		"webhooks":   {"list": webhooksList, "create": webhooksCreate, "delete": webhooksDelete},
		"events":     {"send": eventsSend},
		"deliveries": {"tail": deliveriesTail, "redeliver": deliveriesRedeliver},
	}
	if group == "report" {
		return report(ctx, args, stdout, stderr)
	}
	sub := ""
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-h" || args[0] == "--help") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, clientUsage)
		return nil
	}
	cmd, ok := commands[group][sub]
	if !ok {
		fmt.Fprint(stderr, clientUsage)
		if sub == "" {
			return fmt.Errorf("%s: missing subcommand", group)
		}
		return fmt.Errorf("%s: unknown subcommand %q", group, sub)
	}
	return cmd(ctx, args, stdout, stderr)
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	url  string
	key  string
	json bool
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", env("PIMHOOK_URL", defaultServerURL), "base URL of the pimhook server (PIMHOOK_URL)")
	// The key's default is read after parsing, so that -h never prints it.
	fs.StringVar(&f.key, "key", "", "API key (default $PIMHOOK_API_KEY)")
	fs.BoolVar(&f.json, "json", false, "print the API's JSON answers as they are")
}

func (f *clientFlags) client() (*apiClient, error) {
	key := f.key
	if key == "" {
		key = os.Getenv("PIMHOOK_API_KEY")
	}
	return newAPIClient(f.url, key)
}

// newFlagSet returns a flag set whose usage shows synopsis, then the flags.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pimhook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pimhook %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses args with fs, letting flags follow positional
// arguments ("webhooks delete ID --json"), and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil // everything after -- is positional
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, names ...string) error {
	switch {
	case len(args) < len(names):
		return fmt.Errorf("missing argument %s", strings.ToUpper(names[len(args)]))
	case len(args) > len(names):
		return fmt.Errorf("unexpected argument %q", args[len(names)])
	}
	return nil
}

// apiClient calls the pimhook REST API with one company's key.
type apiClient struct {
	base string // without a trailing slash
	key  string
	http *http.Client
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func newAPIClient(base, key string) (*apiClient, error) {
	if !isHTTPURL(base) {
		return nil, fmt.Errorf("--url: want the server's base URL such as %s, got %q", defaultServerURL, base)
	}
	if key == "" {
		return nil, errors.New("no API key: pass --key or set PIMHOOK_API_KEY")
	}
	return &apiClient{
		base: strings.TrimRight(base, "/"),
		key:  key,
		http: &http.Client{Timeout: clientTimeout},
	}, nil
}

// apiError is an answer other than 2xx. An answer in problem details
// carries its code and detail; another one (a proxy's error page, a server
// that is not pimhook) only its status and the start of its body.
type apiError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
	}
	return e.Code + ": " + e.Detail
}

// call sends in (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). It returns the answer's body as it came.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, in, out any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach pimhook at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{}
		if json.Unmarshal(raw, e) != nil || e.Code == "" {
			e = &apiError{Detail: snippet(raw)}
		}
		e.Status = resp.StatusCode
		return nil, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer %s: %w", method, path, snippet(raw), err)
		}
	}
	return raw, nil
}

// snippet is the start of a body, for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty body)"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// printRaw prints an answer as it came, ending in a newline.
func printRaw(w io.Writer, raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "%s\n", raw)
	return err
}

// newTable returns a writer that aligns tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// orDash returns s, or "-" for the empty string, so table cells never vanish.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
