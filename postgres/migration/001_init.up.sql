-- The whole schema of the PostgreSQL store. Times are timestamptz, kept to
-- the microsecond. Documents that must come back byte for byte (payloads,
-- entity data, reducer configurations, response bodies) are bytea: jsonb
-- would reformat them, and text refuses the NUL bytes and invalid UTF-8 a
-- receiver may answer with. Identifiers and keys are text COLLATE "C", so
-- that they sort byte by byte, as the cursors and the Go side compare them,
-- whatever the database's collation.

CREATE TABLE companies (
	id          text COLLATE "C" PRIMARY KEY,
	name        text NOT NULL,
	preferences jsonb NOT NULL DEFAULT '{}',
	created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
	id         text COLLATE "C" PRIMARY KEY,
	company_id text COLLATE "C" NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
	hash       text COLLATE "C" NOT NULL UNIQUE,
	prefix     text NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE INDEX api_keys_company ON api_keys (company_id);

CREATE TABLE apps (
	id         text COLLATE "C" PRIMARY KEY,
	company_id text COLLATE "C" NOT NULL REFERENCES companies (id),
	name       text NOT NULL,
	app_type   text NOT NULL,
	worker     text NOT NULL,
	is_default boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

CREATE INDEX apps_company ON apps (company_id, created_at);

-- At most one default app per company.
CREATE UNIQUE INDEX apps_default ON apps (company_id) WHERE is_default;

CREATE TABLE webhooks (
	id                     text COLLATE "C" PRIMARY KEY,
	company_id             text COLLATE "C" NOT NULL REFERENCES companies (id),
	app_id                 text COLLATE "C" NOT NULL REFERENCES apps (id),
	name                   text NOT NULL,
	url                    text NOT NULL,
	entity_types           text[] NOT NULL DEFAULT '{}',
	events                 text[] NOT NULL DEFAULT '{}',
	fields                 text[] NOT NULL DEFAULT '{}',
	format                 text NOT NULL,
	job_id                 text NOT NULL DEFAULT '',
	batch_size             integer NOT NULL DEFAULT 0,
	include_entity_data    boolean NOT NULL,
	headers                jsonb NOT NULL DEFAULT '{}',
	-- A JSON array; reducer configurations in it are the user's documents,
	-- kept byte for byte.
	filter_reducers        bytea NOT NULL DEFAULT '\x5b5d', -- []
	retry_policy           text NOT NULL,
	minimum_retry_interval double precision NOT NULL,
	retry_limit            integer NOT NULL,
	timeout_ms             integer NOT NULL,
	enabled                boolean NOT NULL,
	disabled_reason        text NOT NULL DEFAULT '',
	-- When the current run of failed attempts began; NULL after a success.
	failing_since          timestamptz,
	secret                 text NOT NULL,
	created_at             timestamptz NOT NULL,
	updated_at             timestamptz NOT NULL
);

CREATE INDEX webhooks_company ON webhooks (company_id, created_at);
CREATE INDEX webhooks_app ON webhooks (app_id);

-- The latest state of each entity. Ingest locks the rows of the entities it
-- changes (see event.go), which orders the events of one entity across
-- concurrent calls and nodes. Products are iterated through the primary key,
-- already in id order.
CREATE TABLE entities (
	company_id text COLLATE "C" NOT NULL,
	type       text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	data       bytea,
	revision   bigint NOT NULL,
	deleted    boolean NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (company_id, type, id)
);

-- One row per ingested event: the idempotency record of its ID.
CREATE TABLE events (
	company_id       text COLLATE "C" NOT NULL,
	id               text COLLATE "C" NOT NULL,
	entity_type      text NOT NULL,
	entity_id        text NOT NULL,
	action           text NOT NULL,
	effective_action text NOT NULL,
	name             text NOT NULL,
	revision         bigint NOT NULL,
	changed_fields   bytea NOT NULL, -- JSON
	status           text NOT NULL CHECK (status IN ('accepted', 'unchanged')),
	deliveries       integer NOT NULL,
	fingerprint      text NOT NULL DEFAULT '',
	source_app_id    text NOT NULL DEFAULT '',
	received_at      timestamptz NOT NULL,
	PRIMARY KEY (company_id, id)
);

-- The seq of every delivery, unique across the database. A delivery takes
-- its seq while its transaction holds the row of its app in app_queues, and
-- keeps that lock until it commits: within one app, seqs become visible in
-- ascending order, so a dispatcher reading "pending with seq above the last
-- one seen" never skips one.
CREATE SEQUENCE delivery_seq AS bigint;

-- One row per app that ever had a delivery: the lock that serialises the
-- enqueues of one app.
CREATE TABLE app_queues (
	app_id text COLLATE "C" PRIMARY KEY
);

CREATE TABLE deliveries (
	seq              bigint PRIMARY KEY,
	id               text COLLATE "C" NOT NULL UNIQUE,
	company_id       text COLLATE "C" NOT NULL,
	app_id           text COLLATE "C" NOT NULL,
	webhook_id       text COLLATE "C" NOT NULL,
	event_id         text NOT NULL,
	event_name       text NOT NULL,
	-- NULL for a delivery of a job run, whose payload is in
	-- delivery_payloads, written when the run staged it.
	payload          bytea,
	status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
	attempts         integer NOT NULL DEFAULT 0,
	next_attempt_at  timestamptz NOT NULL,
	last_status_code integer NOT NULL DEFAULT 0,
	last_error       text NOT NULL DEFAULT '',
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL,
	finished_at      timestamptz
);

CREATE INDEX deliveries_company ON deliveries (company_id, seq);
CREATE INDEX deliveries_app ON deliveries (app_id, seq);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, seq);

-- The app queues: only pending rows, so the index stays as small as the
-- backlog however large the history grows. It serves the queue heads and
-- the list of apps with a backlog.
CREATE INDEX deliveries_pending ON deliveries (app_id, seq) WHERE status = 'pending';

-- Attempts carry the company, app and webhook of their delivery, which
-- never change once the delivery is queued, so that a report reads the
-- attempts of one company (or webhook) in a time range as one index range,
-- without touching the deliveries, whose rows hold the payloads.
CREATE TABLE attempts (
	id            text COLLATE "C" PRIMARY KEY,
	delivery_id   text COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	company_id    text COLLATE "C" NOT NULL,
	app_id        text COLLATE "C" NOT NULL,
	webhook_id    text COLLATE "C" NOT NULL,
	number        integer NOT NULL,
	started_at    timestamptz NOT NULL,
	duration_ns   bigint NOT NULL,
	status_code   integer NOT NULL,
	succeeded     boolean NOT NULL,
	error         text NOT NULL DEFAULT '',
	response_body bytea NOT NULL
);

CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
-- The attempts of a report in (started_at, id) order, the order in which
-- they are paged. A filter on an app is checked on the company's rows: a
-- company has few apps. A webhook has its own index: a company may have
-- many webhooks, and the report of one should not read all of theirs.
CREATE INDEX attempts_company ON attempts (company_id, started_at, id);
CREATE INDEX attempts_webhook ON attempts (webhook_id, started_at, id);

-- Job state (reference document 2). Every run of a job stages its products
-- as a new product set; committing the run points the job at that set, so
-- a run that fails half-way changes nothing and a commit copies no product.
-- A set is staging while its run goes on, current while it is its job's
-- state, and dead once superseded or abandoned; dead sets are swept in the
-- background.
CREATE TABLE job_sets (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	company_id text COLLATE "C" NOT NULL,
	job_id     text COLLATE "C" NOT NULL,
	run_id     text NOT NULL,
	state      text NOT NULL CHECK (state IN ('staging', 'current', 'dead')),
	created_at timestamptz NOT NULL
);

CREATE INDEX job_sets_staging ON job_sets (company_id, job_id) WHERE state = 'staging';
CREATE INDEX job_sets_dead ON job_sets (id) WHERE state = 'dead';

-- The state of a job is its current set.
CREATE TABLE jobs (
	company_id  text COLLATE "C" NOT NULL,
	job_id      text COLLATE "C" NOT NULL,
	current_set bigint NOT NULL,
	run_id      text NOT NULL,
	PRIMARY KEY (company_id, job_id)
);

-- The products of each set; n is the staging order, from 0. The unique key
-- refuses a key staged twice in one run and finds products by key.
CREATE TABLE job_products (
	set_id bigint NOT NULL,
	n      bigint NOT NULL,
	key    text COLLATE "C" NOT NULL,
	pos    bigint NOT NULL,
	hash   bytea NOT NULL,
	data   bytea NOT NULL,
	PRIMARY KEY (set_id, n),
	UNIQUE (set_id, key)
);

-- The deliveries of a run that has not committed yet, in staging order,
-- without their payloads. Commit moves them to deliveries, where they get
-- their seq.
CREATE TABLE staged_deliveries (
	set_id           bigint NOT NULL,
	n                bigint NOT NULL,
	delivery_id      text COLLATE "C" NOT NULL,
	company_id       text COLLATE "C" NOT NULL,
	app_id           text COLLATE "C" NOT NULL,
	webhook_id       text COLLATE "C" NOT NULL,
	event_id         text NOT NULL,
	event_name       text NOT NULL,
	status           text NOT NULL,
	attempts         integer NOT NULL,
	next_attempt_at  timestamptz NOT NULL,
	last_status_code integer NOT NULL,
	last_error       text NOT NULL,
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL,
	finished_at      timestamptz,
	PRIMARY KEY (set_id, n)
);

-- The payloads of job deliveries, written once, when staged. A run's
-- payloads add up to as much as its changed products, so Commit leaves them
-- where they are instead of copying them while it holds the app queues.
CREATE TABLE delivery_payloads (
	delivery_id text COLLATE "C" PRIMARY KEY,
	payload     bytea NOT NULL
);

CREATE TABLE job_runs (
	n           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id          text COLLATE "C" NOT NULL UNIQUE,
	company_id  text COLLATE "C" NOT NULL,
	job_id      text COLLATE "C" NOT NULL,
	key_field   text NOT NULL,
	status      text NOT NULL CHECK (status IN ('accepted', 'failed')),
	products    integer NOT NULL,
	added       integer NOT NULL,
	updated     integer NOT NULL,
	removed     integer NOT NULL,
	deliveries  integer NOT NULL,
	error       text NOT NULL DEFAULT '',
	line        integer NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL,
	finished_at timestamptz NOT NULL
);

CREATE INDEX job_runs_job ON job_runs (company_id, job_id, created_at);

-- Bulk operations and their runs (reference document 4).
CREATE TABLE bulk_operations (
	company_id text COLLATE "C" NOT NULL REFERENCES companies (id),
	name       text COLLATE "C" NOT NULL,
	url        text NOT NULL,
	headers    jsonb NOT NULL DEFAULT '{}',
	secret     text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (company_id, name)
);

-- The runs of an operation outlive it: they are the history of what was
-- sent. Their IDs are ULIDs, so id order is start order.
CREATE TABLE bulk_runs (
	id             text COLLATE "C" PRIMARY KEY,
	company_id     text COLLATE "C" NOT NULL,
	operation_name text COLLATE "C" NOT NULL,
	url            text NOT NULL,
	products       text[] NOT NULL DEFAULT '{}',
	product_count  integer NOT NULL,
	status         text NOT NULL CHECK (status IN ('succeeded', 'failed', 'timeout', 'error')),
	status_code    integer NOT NULL DEFAULT 0,
	error          text NOT NULL DEFAULT '',
	timeout_ms     integer NOT NULL,
	duration_ms    double precision NOT NULL,
	started_at     timestamptz NOT NULL
);

CREATE INDEX bulk_runs_operation ON bulk_runs (company_id, operation_name, id);

-- The error log of each company, listed newest (highest id) first. Every
-- listing reads one index in id order: by company alone or with one of the
-- filters below, the others being checked on the rows it reads. The indexes
-- of optional references hold only the entries that have one.
CREATE TABLE error_log (
	id             text COLLATE "C" PRIMARY KEY,
	company_id     text COLLATE "C" NOT NULL,
	source         text COLLATE "C" NOT NULL, -- pimhook.ErrorSource, checked by the store
	occurred_at    timestamptz NOT NULL,
	webhook_id     text COLLATE "C" NOT NULL DEFAULT '',
	delivery_id    text NOT NULL DEFAULT '',
	event_id       text COLLATE "C" NOT NULL DEFAULT '',
	operation_name text COLLATE "C" NOT NULL DEFAULT '',
	run_id         text NOT NULL DEFAULT '',
	attempt        integer NOT NULL DEFAULT 0,
	status_code    integer NOT NULL DEFAULT 0,
	error          text NOT NULL DEFAULT '',
	response_body  bytea NOT NULL
);

CREATE INDEX error_log_company ON error_log (company_id, id);
CREATE INDEX error_log_source ON error_log (company_id, source, id);
CREATE INDEX error_log_webhook ON error_log (company_id, webhook_id, id) WHERE webhook_id <> '';
CREATE INDEX error_log_event ON error_log (company_id, event_id, id) WHERE event_id <> '';
CREATE INDEX error_log_operation ON error_log (company_id, operation_name, id) WHERE operation_name <> '';
