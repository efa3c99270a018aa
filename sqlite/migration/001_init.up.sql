-- Times are integer Unix nanoseconds (0 for none); JSON documents are text;
-- payloads and entity data are BLOBs kept byte for byte.

CREATE TABLE companies (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	preferences TEXT NOT NULL DEFAULT '{}',
	created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	company_id TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
	hash       TEXT NOT NULL UNIQUE,
	prefix     TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_company ON api_keys (company_id);

CREATE TABLE apps (
	id         TEXT PRIMARY KEY,
	company_id TEXT NOT NULL REFERENCES companies (id),
	name       TEXT NOT NULL,
	app_type   TEXT NOT NULL,
	worker     TEXT NOT NULL,
	is_default INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX apps_company ON apps (company_id, created_at);

-- At most one default app per company.
CREATE UNIQUE INDEX apps_default ON apps (company_id) WHERE is_default;

CREATE TABLE webhooks (
	id                     TEXT PRIMARY KEY,
	company_id             TEXT NOT NULL REFERENCES companies (id),
	app_id                 TEXT NOT NULL REFERENCES apps (id),
	name                   TEXT NOT NULL,
	url                    TEXT NOT NULL,
	entity_types           TEXT NOT NULL DEFAULT '[]',
	events                 TEXT NOT NULL DEFAULT '[]',
	fields                 TEXT NOT NULL DEFAULT '[]',
	format                 TEXT NOT NULL,
	job_id                 TEXT NOT NULL DEFAULT '',
	batch_size             INTEGER NOT NULL DEFAULT 0,
	include_entity_data    INTEGER NOT NULL,
	headers                TEXT NOT NULL DEFAULT '{}',
	retry_policy           TEXT NOT NULL,
	minimum_retry_interval REAL NOT NULL,
	retry_limit            INTEGER NOT NULL,
	timeout_ms             INTEGER NOT NULL,
	enabled                INTEGER NOT NULL,
	disabled_reason        TEXT NOT NULL DEFAULT '',
	secret                 TEXT NOT NULL,
	created_at             INTEGER NOT NULL,
	updated_at             INTEGER NOT NULL
) STRICT;

CREATE INDEX webhooks_company ON webhooks (company_id, created_at);
CREATE INDEX webhooks_app ON webhooks (app_id);

CREATE TABLE entities (
	company_id TEXT NOT NULL,
	type       TEXT NOT NULL,
	id         TEXT NOT NULL,
	data       BLOB,
	revision   INTEGER NOT NULL,
	deleted    INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (company_id, type, id)
) STRICT;

-- One row per ingested event: the idempotency record of its ID.
CREATE TABLE events (
	company_id       TEXT NOT NULL,
	id               TEXT NOT NULL,
	entity_type      TEXT NOT NULL,
	entity_id        TEXT NOT NULL,
	action           TEXT NOT NULL,
	effective_action TEXT NOT NULL,
	name             TEXT NOT NULL,
	revision         INTEGER NOT NULL,
	changed_fields   TEXT NOT NULL DEFAULT '[]',
	status           TEXT NOT NULL CHECK (status IN ('accepted', 'unchanged')),
	deliveries       INTEGER NOT NULL,
	fingerprint      TEXT NOT NULL DEFAULT '',
	source_app_id    TEXT NOT NULL DEFAULT '',
	received_at      INTEGER NOT NULL,
	PRIMARY KEY (company_id, id)
) STRICT;

-- seq is the rowid: strictly increasing in commit order, since one writer
-- commits, and never reused (AUTOINCREMENT), so a dispatcher's cursor
-- cannot skip a delivery.
CREATE TABLE deliveries (
	seq              INTEGER PRIMARY KEY AUTOINCREMENT,
	id               TEXT NOT NULL UNIQUE,
	company_id       TEXT NOT NULL,
	app_id           TEXT NOT NULL,
	webhook_id       TEXT NOT NULL,
	event_id         TEXT NOT NULL,
	event_name       TEXT NOT NULL,
	payload          BLOB NOT NULL,
	status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
	attempts         INTEGER NOT NULL DEFAULT 0,
	next_attempt_at  INTEGER NOT NULL,
	last_status_code INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	finished_at      INTEGER
) STRICT;

CREATE INDEX deliveries_company ON deliveries (company_id, seq);
CREATE INDEX deliveries_app ON deliveries (app_id, seq);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, seq);

-- The app queues: only pending rows, so the index stays as small as the
-- backlog however large the history grows.
CREATE INDEX deliveries_pending ON deliveries (app_id, seq) WHERE status = 'pending';

CREATE TABLE attempts (
	id            TEXT PRIMARY KEY,
	delivery_id   TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	number        INTEGER NOT NULL,
	started_at    INTEGER NOT NULL,
	duration_ns   INTEGER NOT NULL,
	status_code   INTEGER NOT NULL,
	succeeded     INTEGER NOT NULL,
	error         TEXT NOT NULL DEFAULT '',
	response_body TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
