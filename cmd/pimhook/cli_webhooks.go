package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// cliWebhook is what the client commands read of a webhook.
type cliWebhook struct {
	ID             string   `json:"id"`
	AppID          string   `json:"app_id"`
	Name           string   `json:"name"`
	CallbackURL    string   `json:"callback_url"`
	EntityTypes    []string `json:"entity_types"`
	Events         []string `json:"events"`
	Fields         []string `json:"fields"`
	JobID          string   `json:"job_id"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabled_reason"`
	SigningSecret  string   `json:"signing_secret"`
}

// stringList is a flag that may be repeated; each value may also hold a
// comma-separated list.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func webhooksList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("webhooks list", "webhooks list [--json]", stderr)
	cf.register(fs)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var list struct {
		Data []cliWebhook `json:"data"`
	}
	raw, err := c.call(ctx, "GET", "/v1/webhooks", nil, nil, &list)
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	if cf.json {
		return printRaw(stdout, raw)
	}
	if len(list.Data) == 0 {
		_, err := fmt.Fprintln(stdout, "no webhooks")
		return err
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "ID\tNAME\tAPP\tENTITIES\tEVENTS\tFIELDS\tENABLED\tCALLBACK URL")
	for _, h := range list.Data {
		entities := strings.Join(h.EntityTypes, ",")
		if h.JobID != "" {
			entities = "job " + h.JobID
		}
		events := strings.Join(h.Events, ",")
		if events == "" {
			events = "all"
		}
		enabled := "yes"
		if !h.Enabled {
			enabled = "no"
			if h.DisabledReason != "" {
				enabled = "no (" + h.DisabledReason + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, orDash(h.Name), orDash(h.AppID),
			orDash(entities), events, orDash(strings.Join(h.Fields, ",")), enabled, h.CallbackURL)
	}
	return tw.Flush()
}

func webhooksCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cf                     clientFlags
		entities, events, flds stringList
	)
	fs := newFlagSet("webhooks create", "webhooks create --callback-url URL [--entity-type T]... [--event E]... [--field F]... [--app APP] [--name N]", stderr)
	cf.register(fs)
	callback := fs.String("callback-url", "", "where the deliveries go (required)")
	fs.Var(&entities, "entity-type", "entity type the webhook hears, e.g. products (repeatable; default: all)")
	fs.Var(&events, "event", "event it hears: created, updated, deleted or products.updated (repeatable; default: all)")
	fs.Var(&flds, "field", "monitored field: updates are delivered only when one of them changed (repeatable)")
	app := fs.String("app", "", "ID of the app whose queue carries the deliveries (default: the company's default app)")
	name := fs.String("name", "", "name of the webhook")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest); err != nil {
		return err
	}
	if *callback == "" {
		return fmt.Errorf("--callback-url is required (--url is the pimhook server's address)")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	body := map[string]any{"callback_url": *callback}
	if len(entities) > 0 {
		body["entity_types"] = entities
	}
	if len(events) > 0 {
		body["events"] = events
	}
	if len(flds) > 0 {
		body["fields"] = flds
	}
	if *app != "" {
		body["app_id"] = *app
	}
	if *name != "" {
		body["name"] = *name
	}
	var h cliWebhook
	raw, err := c.call(ctx, "POST", "/v1/webhooks", nil, body, &h)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	if cf.json {
		return printRaw(stdout, raw)
	}
	tw := newTable(stdout)
	fmt.Fprintf(tw, "id:\t%s\n", h.ID)
	fmt.Fprintf(tw, "app:\t%s\n", h.AppID)
	fmt.Fprintf(tw, "callback url:\t%s\n", h.CallbackURL)
	fmt.Fprintf(tw, "signing secret:\t%s\n", h.SigningSecret)
	return tw.Flush()
}

func webhooksDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("webhooks delete", "webhooks delete ID", stderr)
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
	if _, err := c.call(ctx, "DELETE", "/v1/webhooks/"+url.PathEscape(rest[0]), nil, nil, nil); err != nil {
		return fmt.Errorf("delete webhook %s: %w", rest[0], err)
	}
	if cf.json {
		return nil // the API answers 204 without a body
	}
	_, err = fmt.Fprintf(stdout, "deleted webhook %s\n", rest[0])
	return err
}
