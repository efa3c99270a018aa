-- Job state (reference document 2). Every run of a job stages its products
-- as a new product set; committing the run points the job at that set, so
-- a run that fails half-way changes nothing and a commit copies no product.
-- The rows of a set that is no job's current set are swept in the
-- background, except the delivery payloads of a set that committed.

-- job_sets numbers the product sets. A set's rows in job_products and
-- staged_deliveries have ids from id << 36 up to (id + 1) << 36, in the
-- order they were staged: a set is one contiguous range, written by
-- appending, read in run order and deleted range by range.
CREATE TABLE job_sets (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	company_id TEXT NOT NULL,
	job_id     TEXT NOT NULL,
	run_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	committed  INTEGER NOT NULL DEFAULT 0 -- its delivery payloads are queued
) STRICT;

-- The state of a job is its current set.
CREATE TABLE jobs (
	company_id  TEXT NOT NULL,
	job_id      TEXT NOT NULL,
	current_set INTEGER NOT NULL,
	run_id      TEXT NOT NULL,
	PRIMARY KEY (company_id, job_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE job_products (
	id   INTEGER PRIMARY KEY, -- set << 36 | staging order
	key  TEXT NOT NULL,
	pos  INTEGER NOT NULL,
	hash BLOB NOT NULL,
	data BLOB NOT NULL
) STRICT;

-- The keys of each set, to find a product by key and the products a run
-- dropped, by walking two sets' keys side by side. A run writes its keys
-- sorted, once all its products are staged: the inserts then fill pages one
-- after the other instead of touching a random page of a large index for
-- each product. The primary key refuses a key staged twice.
CREATE TABLE job_keys (
	set_id INTEGER NOT NULL,
	key    TEXT NOT NULL,
	id     INTEGER NOT NULL, -- the product's row in job_products
	PRIMARY KEY (set_id, key)
) STRICT, WITHOUT ROWID;

-- The deliveries of a run that has not committed yet, in staging order,
-- without their payloads. Commit moves them to deliveries, where they get
-- their seq.
CREATE TABLE staged_deliveries (
	id               INTEGER PRIMARY KEY, -- set << 36 | staging order
	delivery_id      TEXT NOT NULL,
	company_id       TEXT NOT NULL,
	app_id           TEXT NOT NULL,
	webhook_id       TEXT NOT NULL,
	event_id         TEXT NOT NULL,
	event_name       TEXT NOT NULL,
	status           TEXT NOT NULL,
	attempts         INTEGER NOT NULL,
	next_attempt_at  INTEGER NOT NULL,
	last_status_code INTEGER NOT NULL,
	last_error       TEXT NOT NULL,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	finished_at      INTEGER
) STRICT;

-- The payloads of job deliveries, written once, when staged, under the id
-- of their staged delivery. A run's payloads add up to as much as its
-- products, so Commit points the queued deliveries at them instead of
-- copying them while every other write waits.
CREATE TABLE delivery_payloads (
	id      INTEGER PRIMARY KEY, -- set << 36 | staging order
	payload BLOB NOT NULL
) STRICT;

-- A delivery with a payload_id has its payload in delivery_payloads, and an
-- empty one here.
ALTER TABLE deliveries ADD COLUMN payload_id INTEGER;

CREATE TABLE job_runs (
	n           INTEGER PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	company_id  TEXT NOT NULL,
	job_id      TEXT NOT NULL,
	key_field   TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('accepted', 'failed')),
	products    INTEGER NOT NULL,
	added       INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	removed     INTEGER NOT NULL,
	deliveries  INTEGER NOT NULL,
	error       TEXT NOT NULL DEFAULT '',
	line        INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL
) STRICT;

CREATE INDEX job_runs_job ON job_runs (company_id, job_id, created_at);
