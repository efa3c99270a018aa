package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	attrSet     = "set"
	attrError   = "error"
)

// migrations returns the embedded migrations in order.
func migrations() ([]migration.Migration, error) { return migration.Read(migrationFS) }

// Migrate brings the schema up to date: it applies the migrations the
// database lacks, each in its own transaction, and records them in
// schema_migrations. Every transaction first takes an advisory lock of the
// schema, so nodes that start at once apply each migration once: the others
// wait, then find it applied. Open calls it unless Options.NoMigrate.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.live(); err != nil {
		return err
	}
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(ms) == 0 {
		return fmt.Errorf("migrate: no migrations embedded")
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockSchema(ctx, tx); err != nil {
			return err
		}
		if s.schema != "" {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
				return fmt.Errorf("create schema %s: %w", s.schema, err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var newest *int64
		if err := tx.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if known := ms[len(ms)-1].Version; newest != nil && *newest > int64(known) {
			return fmt.Errorf("the database schema is at version %d, newer than this program's %d", *newest, known)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		applied, err := s.applyMigration(ctx, m)
		if err != nil {
			return fmt.Errorf("migrate: migration %03d_%s: %w", m.Version, m.Name, err)
		}
		if applied {
			s.log.InfoContext(ctx, "applied migration", attrVersion, m.Version, attrName, m.Name)
		}
	}
	return nil
}

// lockSchema takes the transaction-scoped advisory lock that serialises the
// migrations of the store's schema. The lock is named after the schema, so
// that stores in other schemas of the database migrate independently.
func (s *Store) lockSchema(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('pimhook.migrate:' || $1, 0))`, s.ns)
	if err != nil {
		return fmt.Errorf("lock the schema: %w", err)
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, m migration.Migration) (applied bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockSchema(ctx, tx); err != nil {
			return err
		}
		found, err := exists(ctx, tx, `SELECT 1 FROM schema_migrations WHERE version = $1`, m.Version)
		if err != nil || found {
			return err
		}
		// Without arguments, Exec uses the simple protocol, which runs a
		// script of several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return err
		}
		applied = true
		return nil
	})
	return applied && err == nil, err
}
