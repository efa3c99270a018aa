-- Filters and reducers of webhooks, bulk operations and their runs, and the
-- error log (reference documents 4 and 5).

-- A webhook's filter_reducers, as JSON text. Reducer configurations are kept
-- byte for byte.
ALTER TABLE webhooks ADD COLUMN filter_reducers TEXT NOT NULL DEFAULT '[]';

CREATE TABLE bulk_operations (
	company_id TEXT NOT NULL REFERENCES companies (id),
	name       TEXT NOT NULL,
	url        TEXT NOT NULL,
	headers    TEXT NOT NULL DEFAULT '{}',
	secret     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (company_id, name)
) STRICT;

-- The runs of an operation outlive it: they are the history of what was
-- sent. Their IDs are ULIDs, so id order is start order.
CREATE TABLE bulk_runs (
	id             TEXT PRIMARY KEY,
	company_id     TEXT NOT NULL,
	operation_name TEXT NOT NULL,
	url            TEXT NOT NULL,
	products       TEXT NOT NULL DEFAULT '[]',
	product_count  INTEGER NOT NULL,
	status         TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'timeout', 'error')),
	status_code    INTEGER NOT NULL DEFAULT 0,
	error          TEXT NOT NULL DEFAULT '',
	timeout_ms     INTEGER NOT NULL,
	duration_ms    REAL NOT NULL,
	started_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX bulk_runs_operation ON bulk_runs (company_id, operation_name, id);

-- The error log of each company, listed newest (highest id) first. Every
-- listing reads one index in id order: by company alone or with one of the
-- filters below, the others being checked on the rows it reads. The indexes
-- of optional references hold only the entries that have one.
CREATE TABLE error_log (
	id             TEXT PRIMARY KEY,
	company_id     TEXT NOT NULL,
	source         TEXT NOT NULL CHECK (source IN ('webhook', 'bulk_operation', 'filter')),
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

CREATE INDEX error_log_company ON error_log (company_id, id);
CREATE INDEX error_log_source ON error_log (company_id, source, id);
CREATE INDEX error_log_webhook ON error_log (company_id, webhook_id, id) WHERE webhook_id <> '';
CREATE INDEX error_log_event ON error_log (company_id, event_id, id) WHERE event_id <> '';
CREATE INDEX error_log_operation ON error_log (company_id, operation_name, id) WHERE operation_name <> '';

-- Products are iterated through the primary key of entities, (company_id,
-- type, id), which is already in id order: no index of its own, so that
-- ingest, which writes entities all the time, keeps one index to update.
