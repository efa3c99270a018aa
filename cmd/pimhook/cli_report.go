package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/pimhook/pimhook"
)

// defaultReportWindow is the window of a report without --start.
const defaultReportWindow = 24 * time.Hour

func report(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("report", "report [--start RFC3339] [--end RFC3339] [--app ID] [--webhook ID] [--interval 1h]", stderr)
	cf.register(fs)
	start := fs.String("start", "", "start of the window, RFC 3339 such as 2026-01-31T00:00:00Z (default: 24 hours before --end)")
	end := fs.String("end", "", "end of the window, RFC 3339 (default: now)")
	app := fs.String("app", "", "only the attempts of this app")
	webhook := fs.String("webhook", "", "only the attempts of this webhook")
	interval := fs.String("interval", "", "bucket size: a duration such as 15m or 1h, or days such as 1d (default: the server's, 1h)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest); err != nil {
		return err
	}
	// The window's defaults are filled here; the times themselves are the
	// server's to check, so that its messages are the only ones.
	if *end == "" {
		*end = time.Now().UTC().Truncate(time.Second).Add(time.Second).Format(time.RFC3339)
	}
	if *start == "" {
		e, err := time.Parse(time.RFC3339Nano, *end)
		if err != nil {
			return fmt.Errorf("--end: want an RFC 3339 time such as 2026-01-31T00:00:00Z, got %q", *end)
		}
		*start = e.Add(-defaultReportWindow).Format(time.RFC3339Nano)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{"start_date": {*start}, "end_date": {*end}}
	for k, v := range map[string]string{"app_id": *app, "webhook_id": *webhook, "interval": *interval} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var r pimhook.ResponseTimeReport
	raw, err := c.call(ctx, "GET", "/v1/reports/response-time", q, nil, &r)
	if err != nil {
		return fmt.Errorf("response-time report: %w", err)
	}
	if cf.json {
		return printRaw(stdout, raw)
	}
	return printReport(stdout, &r)
}

func printReport(w io.Writer, r *pimhook.ResponseTimeReport) error {
	if len(r.AvgResponseTimeTS) == 0 && len(r.Webhooks) == 0 {
		_, err := fmt.Fprintln(w, "no attempts in this window")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "BUCKET START\tLAST ATTEMPT\tATTEMPTS\tMEAN MS\tCODE\tMAX ATTEMPT")
	for _, b := range r.AvgResponseTimeTS {
		code := strconv.Itoa(b.ResponseCode)
		if b.ResponseCode == 0 {
			code = "none" // a timeout or a connection error
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\n", b.BucketStart.UTC().Format(time.RFC3339),
			b.LastAttemptedOn.UTC().Format(time.RFC3339), b.Total, b.ResponseTime, code, b.Attempt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "WEBHOOK\tATTEMPTS\tSUCCEEDED\tP50 MS\tP95 MS\tP99 MS")
	for _, h := range r.Webhooks {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", h.WebhookID, h.Total, h.Succeeded, ms(h.P50MS), ms(h.P95MS), ms(h.P99MS))
	}
	return tw.Flush()
}

// ms formats milliseconds with up to two decimals.
func ms(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
