-- Operating pimhook: webhook health and the response-time report. The
-- queue statistics need no index of their own: they read the pending
-- deliveries through deliveries_pending, in app order (see
-- TestOperatePlans).

-- When the webhook's current run of failed attempts began; NULL while its
-- last attempt succeeded or it has had none. RecordAttempt keeps it.
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;

-- Attempts carry the company, app and webhook of their delivery, which
-- never change once the delivery is queued, so that a report reads the
-- attempts of one company (or webhook) in a time range without touching
-- the deliveries, whose rows hold the payloads and would otherwise be read
-- once per attempt; and without reading the other companies' attempts of
-- the same range, as an index of started_at alone would.
ALTER TABLE attempts ADD COLUMN company_id TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN app_id TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN webhook_id TEXT NOT NULL DEFAULT '';

UPDATE attempts SET company_id = d.company_id, app_id = d.app_id, webhook_id = d.webhook_id
FROM deliveries d WHERE d.id = attempts.delivery_id;

-- The attempts of a report in (started_at, id) order, the order in which
-- they are paged. A filter on an app is checked on the company's rows: a
-- company has few apps. A webhook has its own index: a company may have
-- many webhooks, and the report of one should not read all of theirs.
CREATE INDEX attempts_company ON attempts (company_id, started_at, id);
CREATE INDEX attempts_webhook ON attempts (webhook_id, started_at, id);

-- The error log takes a new source, webhook_health. SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt; nothing refers to it.
CREATE TABLE error_log_new (
	id             TEXT PRIMARY KEY,
	company_id     TEXT NOT NULL,
	source         TEXT NOT NULL CHECK (source IN ('webhook', 'bulk_operation', 'filter', 'webhook_health')),
	occurred_at    INTEGER NOT NULL,
	webhook_id     TEXT NOT NULL DEFAULT '',
	delivery_id    TEXT NOT NULL DEFAULT '',
	event_id       TEXT NOT NULL DEFAULT '',
	operation_name TEXT NOT NULL DEFAULT '',
	run_id         TEXT NOT NULL DEFAULT '',
	attempt        INTEGER NOT NULL DEFAULT 0,
	status_code    INTEGER NOT NULL DEFAULT 0,
	error          TEXT NOT NULL DEFAULT '',
	response_body  TEXT NOT NULL DEFAULT ''
) STRICT;

INSERT INTO error_log_new (id, company_id, source, occurred_at, webhook_id, delivery_id, event_id,
	operation_name, run_id, attempt, status_code, error, response_body)
SELECT id, company_id, source, occurred_at, webhook_id, delivery_id, event_id,
	operation_name, run_id, attempt, status_code, error, response_body
FROM error_log;

DROP TABLE error_log;
ALTER TABLE error_log_new RENAME TO error_log;

CREATE INDEX error_log_company ON error_log (company_id, id);
CREATE INDEX error_log_source ON error_log (company_id, source, id);
CREATE INDEX error_log_webhook ON error_log (company_id, webhook_id, id) WHERE webhook_id <> '';
CREATE INDEX error_log_event ON error_log (company_id, event_id, id) WHERE event_id <> '';
CREATE INDEX error_log_operation ON error_log (company_id, operation_name, id) WHERE operation_name <> '';
