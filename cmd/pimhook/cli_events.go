package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// cliIngestAnswer is the answer of POST /v1/events.
type cliIngestAnswer struct {
	Events []struct {
		ID           string `json:"id"`
		Event        string `json:"event"`
		Revision     int64  `json:"revision"`
		Deliveries   int    `json:"deliveries"`
		Status       string `json:"status"`
		FilterErrors []struct {
			WebhookID string `json:"webhook_id"`
			Message   string `json:"message"`
		} `json:"filter_errors"`
	} `json:"events"`
}

func eventsSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("events send", "events send --type T --id ID --action created|updated|deleted [--data JSON|@file]", stderr)
	cf.register(fs)
	entityType := fs.String("type", "", "entity type, e.g. products (required)")
	id := fs.String("id", "", "entity ID, e.g. a SKU (required)")
	action := fs.String("action", "", "created, updated or deleted (required)")
	data := fs.String("data", "", "the entity's data: a JSON object, or @file to read it from a file\n(default: {\"pimhook_test_event\":true,\"sent_at\":<now>}, which replaces the entity's data\nand changes with every send, so that an update is never unchanged)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(rest); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"type", *entityType}, {"id", *id}, {"action", *action}} {
		if f.v == "" {
			return fmt.Errorf("--%s is required", f.name)
		}
	}
	body := map[string]any{"entity_type": *entityType, "entity_id": *id, "action": *action}
	switch raw, err := eventData(*data); {
	case err != nil:
		return err
	case raw != nil:
		body["data"] = raw
	case *action != "deleted":
		// A test object whose time changes, so that an update is never
		// "unchanged" and always reaches the webhooks.
		body["data"] = map[string]any{"pimhook_test_event": true, "sent_at": time.Now().UTC().Format(time.RFC3339Nano)}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var ans cliIngestAnswer
	raw, err := c.call(ctx, "POST", "/v1/events", nil, body, &ans)
	if err != nil {
		return fmt.Errorf("send event: %w", err)
	}
	if cf.json {
		return printRaw(stdout, raw)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "EVENT\tREVISION\tDELIVERIES\tSTATUS\tID")
	for _, e := range ans.Events {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", orDash(e.Event), e.Revision, e.Deliveries, e.Status, orDash(e.ID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range ans.Events {
		for _, fe := range e.FilterErrors {
			fmt.Fprintf(stdout, "filter error: webhook %s: %s\n", fe.WebhookID, fe.Message)
		}
	}
	return nil
}

// eventData reads --data: inline JSON, or @file. It returns nil when the
// flag is empty.
func eventData(v string) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	b, source := []byte(v), "--data"
	if name, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		source = name
	}
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s is not valid JSON: %v (at byte %d)", source, err, se.Offset)
		}
		return nil, fmt.Errorf("%s is not valid JSON: %w", source, err)
	}
	return raw, nil
}
