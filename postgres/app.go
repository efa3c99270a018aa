package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// CreateApp stores a new app. A second default app of one company is a
// KindConflict, as is an existing ID; an unknown company is KindNotFound.
func (s *Store) CreateApp(ctx context.Context, a *pimhook.App) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if found, err := exists(ctx, tx, `SELECT 1 FROM companies WHERE id = $1`, a.CompanyID); err != nil || !found {
			return orError(err, companyNotFound(a.CompanyID))
		}
		if found, err := exists(ctx, tx, `SELECT 1 FROM apps WHERE id = $1`, a.ID); err != nil || found {
			return orError(err, conflictf("app %q already exists", a.ID))
		}
		if err := checkOneDefault(ctx, tx, a); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO apps (`+appColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.ID, a.CompanyID, a.Name, a.AppType, a.Worker, a.IsDefault, a.CreatedAt, a.UpdatedAt)
		return defaultConflict(err, a)
	})
	if err != nil {
		return fmt.Errorf("create app: %w", storeError(err))
	}
	return nil
}

// checkOneDefault refuses a default app when its company has another. Two
// concurrent calls may both pass it: the unique index apps_default then
// refuses the second, which defaultConflict reports the same way.
func checkOneDefault(ctx context.Context, tx pgx.Tx, a *pimhook.App) error {
	if !a.IsDefault {
		return nil
	}
	found, err := exists(ctx, tx, `SELECT 1 FROM apps WHERE company_id = $1 AND is_default AND id <> $2`, a.CompanyID, a.ID)
	if err != nil || found {
		return orError(err, conflictf("company %q already has a default app", a.CompanyID))
	}
	return nil
}

// defaultConflict reports a violation of apps_default as checkOneDefault
// does.
func defaultConflict(err error, a *pimhook.App) error {
	if isViolation(err, sqlUniqueViolation, "apps_default") {
		return conflictf("company %q already has a default app", a.CompanyID)
	}
	return err
}

// App returns an app of a company.
func (s *Store) App(ctx context.Context, companyID, id string) (*pimhook.App, error) {
	return s.oneApp(ctx, `SELECT `+appColumns+` FROM apps WHERE company_id = $1 AND id = $2`, id, companyID, id)
}

// AppByID returns an app whatever its company.
func (s *Store) AppByID(ctx context.Context, id string) (*pimhook.App, error) {
	return s.oneApp(ctx, `SELECT `+appColumns+` FROM apps WHERE id = $1`, id, id)
}

// DefaultApp returns the company's default app.
func (s *Store) DefaultApp(ctx context.Context, companyID string) (*pimhook.App, error) {
	a, err := scanApp(s.queryRow(ctx, `SELECT `+appColumns+` FROM apps WHERE company_id = $1 AND is_default`, companyID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeAppNotFound, "company %q has no default app", companyID)
	}
	if err != nil {
		return nil, fmt.Errorf("default app: %w", err)
	}
	return a, nil
}

func (s *Store) oneApp(ctx context.Context, query, id string, args ...any) (*pimhook.App, error) {
	a, err := scanApp(s.queryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, appNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return a, nil
}

// Apps lists a company's apps, oldest first.
func (s *Store) Apps(ctx context.Context, companyID string) ([]*pimhook.App, error) {
	as, err := queryAll(ctx, s, scanApp, `SELECT `+appColumns+` FROM apps WHERE company_id = $1 ORDER BY created_at, id`, companyID)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	return as, nil
}

// UpdateApp stores an app's name, type, worker, default flag and UpdatedAt.
func (s *Store) UpdateApp(ctx context.Context, a *pimhook.App) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if found, err := exists(ctx, tx, `SELECT 1 FROM apps WHERE company_id = $1 AND id = $2`, a.CompanyID, a.ID); err != nil || !found {
			return orError(err, appNotFound(a.ID))
		}
		if err := checkOneDefault(ctx, tx, a); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE apps SET name = $1, app_type = $2, worker = $3, is_default = $4, updated_at = $5
			WHERE company_id = $6 AND id = $7`,
			a.Name, a.AppType, a.Worker, a.IsDefault, a.UpdatedAt, a.CompanyID, a.ID)
		return affectedOne(tag, defaultConflict(err, a), appNotFound(a.ID))
	})
	if err != nil {
		return fmt.Errorf("update app: %w", storeError(err))
	}
	return nil
}

// DeleteApp removes an app; KindConflict (CodeAppInUse) while webhooks or
// pending deliveries belong to it. Its finished deliveries stay, as history.
// It locks the app's queue, as every enqueue does, so that no delivery is
// added to the app between the check and the delete.
func (s *Store) DeleteApp(ctx context.Context, companyID, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if found, err := exists(ctx, tx, `SELECT 1 FROM apps WHERE company_id = $1 AND id = $2 FOR UPDATE`, companyID, id); err != nil || !found {
			return orError(err, appNotFound(id))
		}
		if err := lockQueues(ctx, tx, []string{id}); err != nil {
			return err
		}
		inUse := func(what string) error {
			return pimhook.Errorf(pimhook.KindConflict, pimhook.CodeAppInUse, "app %q still has %s", id, what)
		}
		if found, err := exists(ctx, tx, `SELECT 1 FROM webhooks WHERE app_id = $1 LIMIT 1`, id); err != nil || found {
			return orError(err, inUse("webhooks"))
		}
		if found, err := exists(ctx, tx, `SELECT 1 FROM deliveries WHERE app_id = $1 AND status = 'pending' LIMIT 1`, id); err != nil || found {
			return orError(err, inUse("pending deliveries"))
		}
		_, err := tx.Exec(ctx, `DELETE FROM apps WHERE id = $1`, id)
		if isViolation(err, sqlForeignKeyViolation, "") { // a webhook created meanwhile
			return inUse("webhooks")
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM app_queues WHERE app_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete app: %w", storeError(err))
	}
	return nil
}

const appColumns = `id, company_id, name, app_type, worker, is_default, created_at, updated_at`

func scanApp(row pgx.Row) (*pimhook.App, error) {
	var a pimhook.App
	if err := row.Scan(&a.ID, &a.CompanyID, &a.Name, &a.AppType, &a.Worker, &a.IsDefault, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return nil, err
	}
	return &a, nil
}

func appNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeAppNotFound, "app %q not found", id)
}
