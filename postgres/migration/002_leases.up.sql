-- Cluster mode (see lease.go): the node that serves each app, until when.
-- Leases are granted, renewed and checked on the database's clock alone,
-- so that the nodes' clocks need not agree. token grows with every new
-- claim of the app, whoever makes it: a write made under an older token is
-- refused (fencing). Rows stay once created; an expired row is a free app.
CREATE TABLE app_leases (
	app_id     text COLLATE "C" PRIMARY KEY,
	node       text NOT NULL,
	token      bigint NOT NULL,
	expires_at timestamptz NOT NULL
);

-- Prune (see prune.go) finds the final deliveries and the error-log
-- entries older than the retention through these, a batch at a time,
-- instead of reading the whole history each time. Pending deliveries have
-- no finished_at and stay out of the index.
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE status <> 'pending';
CREATE INDEX error_log_occurred ON error_log (occurred_at);
