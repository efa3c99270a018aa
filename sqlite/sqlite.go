// Package sqlite is the embedded store of pimhook: one SQLite file in WAL
// mode, written by a single goroutine that commits concurrent writes together
// (group commit) and read through a pool of connections.
//
// Every write is durable when its method returns nil: the file is opened
// with synchronous=FULL, and throughput comes from sharing one fsync among
// every write waiting at that moment, not from skipping it. Each write runs
// in its own savepoint within the shared transaction, so one that fails is
// undone alone.
//
// A write whose context ends while it waits in the queue is dropped and
// returns the context's error. Once the writer has started it, it runs to
// the end and may commit whatever its context does meanwhile; its method
// then returns what really happened.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/internal/proc"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ pimhook.Store = (*Store)(nil)

// Defaults of Options.
const (
	DefaultMaxBatch    = 512
	DefaultBusyTimeout = 5 * time.Second
	DefaultRecordDelay = 2 * time.Millisecond
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Logger receives migration notices and warnings about background
	// work; nil discards them.
	Logger *slog.Logger
	// MaxBatch caps how many write requests share one transaction;
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// Readers is the size of the read connection pool; 0 means the number
	// of CPUs, at least 4.
	Readers int
	// BusyTimeout is how long a connection waits for a lock held by another
	// process (a concurrent migrate, a backup); 0 means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// RecordDelay is how long a batch holding nothing but records
	// submitted with SubmitAttempt waits for more requests to share its
	// commit, unless someone waits for one of them first. 0 means
	// DefaultRecordDelay; a negative value commits at once.
	RecordDelay time.Duration
}

// WithDefaults returns o with its zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Readers <= 0 {
		o.Readers = max(4, runtime.NumCPU())
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.RecordDelay == 0 {
		o.RecordDelay = DefaultRecordDelay
	}
	return o
}

// Store is the SQLite implementation of pimhook.Store.
type Store struct {
	path   string
	wdb    *sql.DB // one connection, used by the writer goroutine only
	rdb    *sql.DB // the read pool
	cdb    *sql.DB // one connection, used by the checkpointer only
	w      *writer
	ck     *checkpointer
	queues *queueCache // the app queues the writer keeps in memory
	log    *slog.Logger

	stmts    stmtCache             // prepared on the read pool
	jobLocks proc.KeyLocks[jobKey] // serialize the runs of each job
	tasks    *proc.Tasks           // background sweeping of job state
}

// Open opens the SQLite file at path, creating it if needed, brings its
// schema up to date and starts the writer. Close releases it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	wdb, err := openWriter(path, opts)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, wdb, opts.Logger); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	rdb, err := openDB(path, opts, "_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, err
	}
	rdb.SetMaxOpenConns(opts.Readers)
	rdb.SetMaxIdleConns(opts.Readers)
	cdb, err := openDB(path, opts, "_pragma=synchronous(FULL)")
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, err
	}
	cdb.SetMaxOpenConns(1)
	if err := errors.Join(rdb.PingContext(ctx), cdb.PingContext(ctx)); err != nil {
		wdb.Close()
		rdb.Close()
		cdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	ck := startCheckpointer(cdb, opts.Logger)
	queues := newQueueCache()
	s := &Store{
		path:   path,
		wdb:    wdb,
		rdb:    rdb,
		cdb:    cdb,
		w:      startWriter(wdb, opts.MaxBatch, max(opts.RecordDelay, 0), ck.poke, queues),
		ck:     ck,
		queues: queues,
		log:    opts.Logger,
		tasks:  proc.NewTasks(),
	}
	if err := s.sweepGarbage(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

// Migrate brings the schema of the SQLite file at path up to date, creating
// the file if needed, and closes it again. Open does the same on its own;
// Migrate is for a deployment step that runs before the servers start.
func Migrate(ctx context.Context, path string, opts Options) error {
	opts = opts.WithDefaults()
	wdb, err := openWriter(path, opts)
	if err != nil {
		return err
	}
	err = migrate(ctx, wdb, opts.Logger)
	if cerr := wdb.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	return nil
}

// openWriter opens the single write connection: WAL, synchronous=FULL so a
// commit survives power loss, and BEGIN IMMEDIATE so a transaction takes the
// write lock up front instead of failing halfway on a busy database. Each
// request's savepoint journals the pages it changes to a temporary file, not
// to memory: a batch of ingests that each fan out to thousands of webhooks
// journals hundreds of megabytes, which as process memory tripled the
// server's footprint, and which a temporary file keeps in the kernel's
// cache instead. The checkpointer does most checkpointing (see
// walAutocheckpoint).
func openWriter(path string, opts Options) (*sql.DB, error) {
	db, err := openDB(path, opts,
		"_pragma=journal_mode(WAL)", "_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)", "_txlock=immediate",
		fmt.Sprintf("_pragma=wal_autocheckpoint(%d)", walAutocheckpoint),
		fmt.Sprintf("_pragma=journal_size_limit(%d)", walSizeLimit))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

func openDB(path string, opts Options, params ...string) (*sql.DB, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open: %q is not a usable database path", path)
	}
	q := append([]string{fmt.Sprintf("_pragma=busy_timeout(%d)", opts.BusyTimeout.Milliseconds())}, params...)
	db, err := sql.Open("sqlite", path+"?"+strings.Join(q, "&"))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Close stops taking writes, lets the queued ones commit, and closes the
// database. Background sweeping of old job state stops where it is; the
// next Open resumes it. Calling Close again does nothing.
func (s *Store) Close() error {
	s.tasks.Stop()
	if !s.w.close() {
		return nil
	}
	s.ck.stop()
	s.stmts.close()
	if err := errors.Join(s.wdb.Close(), s.rdb.Close(), s.cdb.Close()); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// Ping checks that the file can be read and that writes are accepted.
func (s *Store) Ping(ctx context.Context) error {
	if s.w.isClosed() {
		return errClosed
	}
	var version int
	if err := s.rdb.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// errClosed answers every call made after Close.
var errClosed = pimhook.Errorf(pimhook.KindUnavailable, pimhook.CodeShuttingDown, "the store is closed")

// conflictf is the error of a create whose ID or unique key is taken.
func conflictf(format string, args ...any) error {
	return pimhook.Errorf(pimhook.KindConflict, pimhook.CodeAlreadyExists, format, args...)
}

// Times are stored as Unix nanoseconds, 0 standing for the zero time.

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nullUnixNano(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: unixNano(*t), Valid: true}
}

func fromNullUnixNano(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromUnixNano(n.Int64)
	return &t
}

// exists reports whether query returns a row.
func exists(tx *wtx, query string, args ...any) (bool, error) {
	var one int
	err := tx.queryRow(query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
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

// orConflict is orError with a KindConflict alternative.
func orConflict(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return conflictf(format, args...)
}

// affectedOne turns an UPDATE or DELETE that matched no row into notFound.
func affectedOne(res sql.Result, err, notFound error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

// prefixed qualifies each of a comma-separated column list with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = p + c
	}
	return strings.Join(cols, ", ")
}

// jsonText encodes v as JSON text, writing ifNull for a nil slice or map.
func jsonText(v any, ifNull string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if string(b) == "null" {
		return ifNull, nil
	}
	return string(b), nil
}

// stmtCache keeps the statements prepared on the read pool, for queries
// whose text is long enough that preparing it each time would cost more
// than running it.
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// readStmt returns query prepared on the read pool.
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// queryAll runs a read query and scans every row; the list is empty, not
// nil, when no row matches.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scan)
}

// queryAllStmt is queryAll with a prepared statement.
func queryAllStmt[T any](ctx context.Context, stmt *sql.Stmt, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scan)
}

func scanAll[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
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
