package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cliDelivery is what the client commands read of a delivery.
type cliDelivery struct {
	ID             string    `json:"id"`
	WebhookID      string    `json:"webhook_id"`
	Event          string    `json:"event"`
	Status         string    `json:"status"`
	AttemptCount   int       `json:"attempt_count"`
	LastStatusCode *int      `json:"last_status_code"`
	LastError      *string   `json:"last_error"`
	UpdatedAt      time.Time `json:"updated_at"`

	raw json.RawMessage // the object as the API sent it, for --json
}

func (d *cliDelivery) UnmarshalJSON(b []byte) error {
	type plain cliDelivery // without this method
	if err := json.Unmarshal(b, (*plain)(d)); err != nil {
		return err
	}
	d.raw = slices.Clone(b)
	return nil
}

// tailPollPages bounds how many pages one poll of deliveries tail reads to
// catch up after a burst.
const tailPollPages = 10

// tailPollLimit is the page size of a poll.
const tailPollLimit = 100

func deliveriesTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("deliveries tail", "deliveries tail [--webhook ID] [--app ID] [--status S] [--interval 1s] [--count N]", stderr)
	cf.register(fs)
	webhook := fs.String("webhook", "", "only the deliveries of this webhook")
	app := fs.String("app", "", "only the deliveries of this app")
	status := fs.String("status", "", "only deliveries in this status: pending, succeeded, failed or skipped")
	interval := fs.Duration("interval", time.Second, "how often to poll")
	count := fs.Int("count", 0, "stop after printing this many lines (0: run until interrupted)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest); err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval: want a positive duration such as 1s, got %s", *interval)
	}
	if *count < 0 {
		return fmt.Errorf("--count: want 0 or more, got %d", *count)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	t := &tail{c: c, out: stdout, json: cf.json, left: *count, seen: map[string]string{}, query: url.Values{}}
	for k, v := range map[string]string{"webhook_id": *webhook, "app_id": *app, "status": *status} {
		if v != "" {
			t.query.Set(k, v)
		}
	}
	return t.run(ctx, stderr, *interval)
}

// tail follows the deliveries of a filter: it prints the latest page, then
// at every poll the deliveries it has not seen and those whose status
// changed, oldest first. A poll reads the newest deliveries, so a status
// change of one that has been pushed off those pages by many newer ones is
// not noticed.
type tail struct {
	c     *apiClient
	out   io.Writer
	json  bool
	query url.Values
	left  int               // lines to print before stopping; 0 without --count
	seen  map[string]string // delivery ID -> last printed status
}

// errTailDone ends a tail that printed its --count lines.
var errTailDone = errors.New("printed --count lines")

func (t *tail) run(ctx context.Context, stderr io.Writer, interval time.Duration) error {
	first, _, err := t.page(ctx, "", 0)
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	if err := t.print(first); err != nil {
		return done(err)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end of a tail
		case <-tick.C:
		}
		changed, err := t.poll(ctx)
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ae) && ae.Status < 500:
			return fmt.Errorf("list deliveries: %w", err) // retrying cannot help
		case err != nil:
			fmt.Fprintf(stderr, "pimhook: poll deliveries: %v (retrying)\n", err)
			continue
		}
		if err := t.print(changed); err != nil {
			return done(err)
		}
	}
}

// done turns errTailDone into a success.
func done(err error) error {
	if errors.Is(err, errTailDone) {
		return nil
	}
	return err
}

// poll returns the deliveries, newest first, that are new or changed since
// they were last printed. It reads further pages while a whole page is new.
func (t *tail) poll(ctx context.Context) ([]cliDelivery, error) {
	var changed []cliDelivery
	cursor := ""
	for range tailPollPages {
		list, next, err := t.page(ctx, cursor, tailPollLimit)
		if err != nil {
			return nil, err
		}
		caughtUp := false
		for _, d := range list {
			status, ok := t.seen[d.ID]
			caughtUp = caughtUp || ok
			if !ok || status != d.Status {
				changed = append(changed, d)
			}
		}
		if caughtUp || next == "" {
			break
		}
		cursor = next
	}
	return changed, nil
}

// page reads one page of deliveries, newest first; limit 0 is the API's
// default page size.
func (t *tail) page(ctx context.Context, cursor string, limit int) ([]cliDelivery, string, error) {
	q := maps.Clone(t.query)
	if q == nil {
		q = url.Values{}
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var page struct {
		Data       []cliDelivery `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}
	if _, err := t.c.call(ctx, "GET", "/v1/deliveries", q, nil, &page); err != nil {
		return nil, "", err
	}
	next := ""
	if page.NextCursor != nil {
		next = *page.NextCursor
	}
	return page.Data, next, nil
}

// print prints deliveries given newest first, oldest first, as a log reads.
func (t *tail) print(newestFirst []cliDelivery) error {
	for _, d := range slices.Backward(newestFirst) {
		t.seen[d.ID] = d.Status
		var err error
		if t.json {
			var b bytes.Buffer
			if err = json.Compact(&b, d.raw); err == nil {
				b.WriteByte('\n')
				_, err = t.out.Write(b.Bytes())
			}
		} else {
			_, err = io.WriteString(t.out, deliveryLine(d))
		}
		if err != nil {
			return err
		}
		if t.left > 0 {
			if t.left--; t.left == 0 {
				return errTailDone
			}
		}
	}
	return nil
}

// deliveryLine is one delivery as deliveries tail prints it.
func deliveryLine(d cliDelivery) string {
	extra := ""
	if d.LastStatusCode != nil {
		extra += "  last " + strconv.Itoa(*d.LastStatusCode)
	}
	if d.LastError != nil {
		extra += "  error: " + strings.Join(strings.Fields(*d.LastError), " ")
	}
	return fmt.Sprintf("%s  %-30s  %-9s  %-20s  %-29s  attempts %d%s\n",
		d.UpdatedAt.UTC().Format(time.RFC3339), d.ID, d.Status, orDash(d.Event), d.WebhookID, d.AttemptCount, extra)
}

func deliveriesRedeliver(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("deliveries redeliver", "deliveries redeliver ID", stderr)
	cf.register(fs)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest, "id"); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var d cliDelivery
	raw, err := c.call(ctx, "POST", "/v1/deliveries/"+url.PathEscape(rest[0])+"/redeliver", nil, nil, &d)
	if err != nil {
		return fmt.Errorf("redeliver %s: %w", rest[0], err)
	}
	if cf.json {
		return printRaw(stdout, raw)
	}
	_, err = fmt.Fprintf(stdout, "redelivery queued: %s  status %s  attempts so far %d\n", d.ID, d.Status, d.AttemptCount)
	return err
}
