package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/pimhook/pimhook/internal/migration"
)

// migrationFS holds the schema migrations, NNN_name.up.sql, applied in
// order of NNN. A migration, once released, never changes: a new one is
// added instead.
//
//go:embed migration/*.up.sql
var migrationFS embed.FS

// Log attribute keys.
const (
	attrVersion = "version"
	attrName    = "name"
)

// migrations returns the embedded migrations in order.
func migrations() ([]migration.Migration, error) { return migration.Read(migrationFS) }

// migrate applies the migrations db lacks, each in its own transaction, and
// records them in schema_migrations. It is safe to run again and against a
// file another process is migrating: the version check happens under the
// write lock.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	return migrateTo(ctx, db, log, math.MaxInt)
}

// migrateTo is migrate stopping after version last, for tests that need a
// file as an older release left it.
func migrateTo(ctx context.Context, db *sql.DB, log *slog.Logger, last int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return fmt.Errorf("no migrations embedded")
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if known := ms[len(ms)-1].Version; newest.Int64 > int64(known) {
		return fmt.Errorf("the database schema is at version %d, newer than this program's %d", newest.Int64, known)
	}
	for _, m := range ms {
		if m.Version > last {
			break
		}
		applied, err := applyMigration(ctx, db, m)
		if err != nil {
			return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
		}
		if applied {
			log.InfoContext(ctx, "applied migration", attrVersion, m.Version, attrName, m.Name)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration.Migration) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !applied {
			tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixNano()); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}
