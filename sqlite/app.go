package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pimhook/pimhook"
)

// CreateApp stores a new app. A second default app of one company is a
// KindConflict, as is an existing ID; an unknown company is KindNotFound.
func (s *Store) CreateApp(ctx context.Context, a *pimhook.App) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM companies WHERE id = ?`, a.CompanyID); err != nil || !found {
			return orError(err, companyNotFound(a.CompanyID))
		}
		if found, err := exists(tx, `SELECT 1 FROM apps WHERE id = ?`, a.ID); err != nil || found {
			return orConflict(err, "app %q already exists", a.ID)
		}
		if err := checkOneDefault(tx, a); err != nil {
			return err
		}
		_, err := tx.exec(`INSERT INTO apps (`+appColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.CompanyID, a.Name, a.AppType, a.Worker, a.IsDefault, unixNano(a.CreatedAt), unixNano(a.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	return nil
}

// checkOneDefault refuses a default app when its company has another.
func checkOneDefault(tx *wtx, a *pimhook.App) error {
	if !a.IsDefault {
		return nil
	}
	found, err := exists(tx, `SELECT 1 FROM apps WHERE company_id = ? AND is_default AND id <> ?`, a.CompanyID, a.ID)
	if err != nil || found {
		return orConflict(err, "company %q already has a default app", a.CompanyID)
	}
	return nil
}

// App returns an app of a company.
func (s *Store) App(ctx context.Context, companyID, id string) (*pimhook.App, error) {
	return s.oneApp(ctx, `SELECT `+appColumns+` FROM apps WHERE company_id = ? AND id = ?`, id, companyID, id)
}

// AppByID returns an app whatever its company.
func (s *Store) AppByID(ctx context.Context, id string) (*pimhook.App, error) {
	return s.oneApp(ctx, `SELECT `+appColumns+` FROM apps WHERE id = ?`, id, id)
}

// DefaultApp returns the company's default app.
func (s *Store) DefaultApp(ctx context.Context, companyID string) (*pimhook.App, error) {
	a, err := scanApp(s.rdb.QueryRowContext(ctx, `SELECT `+appColumns+` FROM apps WHERE company_id = ? AND is_default`, companyID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeAppNotFound, "company %q has no default app", companyID)
	}
	if err != nil {
		return nil, fmt.Errorf("default app: %w", err)
	}
	return a, nil
}

func (s *Store) oneApp(ctx context.Context, query, id string, args ...any) (*pimhook.App, error) {
	a, err := scanApp(s.rdb.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, appNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return a, nil
}

// Apps lists a company's apps, oldest first.
func (s *Store) Apps(ctx context.Context, companyID string) ([]*pimhook.App, error) {
	as, err := queryAll(ctx, s.rdb, scanApp, `SELECT `+appColumns+` FROM apps WHERE company_id = ? ORDER BY created_at, id`, companyID)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	return as, nil
}

// UpdateApp stores an app's name, type, worker, default flag and UpdatedAt.
func (s *Store) UpdateApp(ctx context.Context, a *pimhook.App) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM apps WHERE company_id = ? AND id = ?`, a.CompanyID, a.ID); err != nil || !found {
			return orError(err, appNotFound(a.ID))
		}
		if err := checkOneDefault(tx, a); err != nil {
			return err
		}
		res, err := tx.exec(`UPDATE apps SET name = ?, app_type = ?, worker = ?, is_default = ?, updated_at = ?
			WHERE company_id = ? AND id = ?`,
			a.Name, a.AppType, a.Worker, a.IsDefault, unixNano(a.UpdatedAt), a.CompanyID, a.ID)
		return affectedOne(res, err, appNotFound(a.ID))
	})
	if err != nil {
		return fmt.Errorf("update app: %w", err)
	}
	return nil
}

// DeleteApp removes an app; KindConflict (CodeAppInUse) while webhooks or
// pending deliveries belong to it. Its finished deliveries stay, as history.
func (s *Store) DeleteApp(ctx context.Context, companyID, id string) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM apps WHERE company_id = ? AND id = ?`, companyID, id); err != nil || !found {
			return orError(err, appNotFound(id))
		}
		if found, err := exists(tx, `SELECT 1 FROM webhooks WHERE app_id = ? LIMIT 1`, id); err != nil || found {
			return orError(err, pimhook.Errorf(pimhook.KindConflict, pimhook.CodeAppInUse, "app %q still has webhooks", id))
		}
		if found, err := exists(tx, `SELECT 1 FROM deliveries WHERE app_id = ? AND status = 'pending' LIMIT 1`, id); err != nil || found {
			return orError(err, pimhook.Errorf(pimhook.KindConflict, pimhook.CodeAppInUse, "app %q still has pending deliveries", id))
		}
		_, err := tx.exec(`DELETE FROM apps WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	return nil
}

const appColumns = `id, company_id, name, app_type, worker, is_default, created_at, updated_at`

func scanApp(row scanner) (*pimhook.App, error) {
	var (
		a                pimhook.App
		created, updated int64
	)
	if err := row.Scan(&a.ID, &a.CompanyID, &a.Name, &a.AppType, &a.Worker, &a.IsDefault, &created, &updated); err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt = fromUnixNano(created), fromUnixNano(updated)
	return &a, nil
}

func appNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeAppNotFound, "app %q not found", id)
}
