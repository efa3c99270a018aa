// Package postgres is the PostgreSQL store of pimhook, for several nodes
// that share one database. It keeps the contract of pimhook.Store and
// pimhook.JobStore as the SQLite store does, with what sharing needs:
//
//   - Ingest locks the rows of the entities it changes, in one order, so the
//     events of one entity apply in the order received across calls and
//     nodes; the primary key of events settles two calls racing with one
//     event ID.
//   - A delivery takes its Seq from one sequence while its transaction holds
//     its app's row in app_queues, until it commits: within one app a higher
//     Seq never becomes visible before a lower one.
//   - Runs of one job are serialized across nodes by a session advisory lock.
//
// Every write is one transaction, durable when its method returns nil.
// Ingest calls made at once share transactions (see batch.go): the
// deliveries of one app are enqueued one transaction at a time, so one
// commit per call would bound an app's intake by the commit latency.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/internal/proc"
)

var _ pimhook.Store = (*Store)(nil)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Logger receives migration notices and warnings about background
	// work; nil discards them.
	Logger *slog.Logger
	// Schema, when set, is the schema the store keeps its tables in: it is
	// the connections' search_path, and Migrate creates it if needed.
	// Empty means the server's search_path.
	Schema string
	// MaxConns caps the connection pool; 0 means pgxpool's default (the
	// number of CPUs, at least 4), or pool_max_conns from the URL. A job
	// run holds one more connection, outside the pool, while it is staged.
	MaxConns int32
	// IngestWorkers is how many transactions of Ingest calls run at once
	// (see batch.go); 0 means the number of CPUs, at least 2 and at most
	// half the pool.
	IngestWorkers int
	// NoMigrate makes Open leave the schema alone; Migrate applies it.
	NoMigrate bool
}

// WithDefaults returns o with its zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is the PostgreSQL implementation of pimhook.Store.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	schema string // Options.Schema
	ns     string // the schema, as advisory lock keys name it
	closed atomic.Bool

	ingestQ   ingestQueue           // Ingest calls waiting for a transaction
	ingestTxs atomic.Int64          // transactions of Ingest calls run, for tests
	jobLocks  proc.KeyLocks[jobKey] // serialize the runs of each job within the process
	tasks     *proc.Tasks           // background sweeping of job state
	listenPID atomic.Uint32         // the backend of the latest ListenWork connection, for tests
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string), brings its schema up to date unless opts.NoMigrate,
// and starts sweeping job state left over by runs that ended. Close
// releases it.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err) // pgconn hides the password it quotes
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		// Times come back in UTC, as the other store returns them.
		c.TypeMap().RegisterType(&pgtype.Type{
			Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
		})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	s := &Store{pool: pool, log: opts.Logger, schema: opts.Schema, tasks: proc.NewTasks()}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open: connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s.ns = opts.Schema
	if s.ns == "" {
		if err := pool.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&s.ns); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open: %w", err)
		}
	}
	if !opts.NoMigrate {
		if err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open: %w", err)
		}
	}
	workers := opts.IngestWorkers
	if workers <= 0 {
		workers = max(1, min(max(2, runtime.NumCPU()), int(cfg.MaxConns)/2))
	}
	s.startIngest(workers)
	s.sweepDead()
	return s, nil
}

// Close lets the queued Ingest calls commit, stops background work, waits
// for the calls in flight to return their connections, and closes the
// pool. Calls made afterwards fail with KindUnavailable. Calling Close
// again does nothing.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.ingestQ.close()
	s.tasks.Stop()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers and holds the store's schema.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.live(); err != nil {
		return err
	}
	var version *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// errClosed answers every call made after Close.
var errClosed = pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "the store is closed")

// live returns errClosed once Close has been called.
func (s *Store) live() error {
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := s.live(); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// exec runs one statement on the pool.
func (s *Store) exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	if err := s.live(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return s.pool.Exec(ctx, query, args...)
}

// queryRow runs a query expected to return one row on the pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) pgx.Row {
	if err := s.live(); err != nil {
		return errRow{err}
	}
	return s.pool.QueryRow(ctx, query, args...)
}

// errRow is a row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queryAll runs a read query on the pool and scans every row; the list is
// empty, not nil, when no row matches.
func queryAll[T any](ctx context.Context, s *Store, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	return collect(ctx, s.pool, scan, query, args...)
}

// collect runs a query on q and scans every row.
func collect[T any](ctx context.Context, q querier, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// exists reports whether query returns a row.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// orError returns err if there is one, else alt: for a check that either
// failed or found what it must not.
func orError(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// affectedOne turns a statement that matched no row into notFound.
func affectedOne(tag pgconn.CommandTag, err, notFound error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound
	}
	return nil
}

// conflictf is the error of a create whose ID or unique key is taken.
func conflictf(format string, args ...any) error {
	return pimhook.Errorf(pimhook.KindConflict, pimhook.CodeAlreadyExists, format, args...)
}

// SQLSTATE codes the store reacts to.
const (
	sqlUniqueViolation     = "23505"
	sqlForeignKeyViolation = "23503"
	sqlDeadlock            = "40P01"
	sqlSerialization       = "40001"
)

// pgError returns the PostgreSQL error in err's chain, or nil.
func pgError(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// isViolation reports whether err is a violation of kind (a SQLSTATE) of
// the constraint named constraint, or of any constraint when it is empty.
func isViolation(err error, kind, constraint string) bool {
	pe := pgError(err)
	return pe != nil && pe.Code == kind && (constraint == "" || pe.ConstraintName == constraint)
}

// storeError returns err as the store reports it: a unique violation is a
// KindConflict, a value PostgreSQL cannot store (an out-of-range number, a
// NUL byte in a text) is a KindInvalid, and anything else stays as it is.
func storeError(err error) error {
	pe := pgError(err)
	switch {
	case pe == nil:
		return err
	case pe.Code == sqlUniqueViolation:
		return conflictf("%s already exists (%s)", what(pe.TableName), pe.ConstraintName)
	case strings.HasPrefix(pe.Code, "22"): // data exception
		return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation, "a value cannot be stored: %s", pe.Message)
	}
	return err
}

// what names the kind of row a table holds, for error messages.
func what(table string) string {
	if table == "" {
		return "the row"
	}
	return "a row of " + table
}

// sanitize returns s as a PostgreSQL text can hold it: valid UTF-8 without
// NUL bytes. It is for messages meant for people (errors, reasons), which a
// receiver's answer or a Go error may fill with any bytes.
func sanitize(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// jsonBytes encodes v as JSON, writing ifNull for a nil slice or map.
func jsonBytes(v any, ifNull string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return []byte(ifNull), nil
	}
	return b, nil
}

// orEmpty returns b, or an empty slice for nil, for a NOT NULL bytea.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// prefixed qualifies each of a comma-separated column list with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// stringList converts a slice of a string type to []string, empty rather than
// nil, for a NOT NULL text[].
func stringList[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}
