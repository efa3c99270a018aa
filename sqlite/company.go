package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pimhook/pimhook"
)

// CreateCompany stores a new company; KindConflict if its ID exists.
func (s *Store) CreateCompany(ctx context.Context, c *pimhook.Company) error {
	prefs, err := json.Marshal(c.Preferences)
	if err != nil {
		return fmt.Errorf("create company: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM companies WHERE id = ?`, c.ID); err != nil || found {
			return orConflict(err, "company %q already exists", c.ID)
		}
		_, err := tx.exec(`INSERT INTO companies (id, name, preferences, created_at) VALUES (?, ?, ?, ?)`,
			c.ID, c.Name, string(prefs), unixNano(c.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create company: %w", err)
	}
	return nil
}

// Company returns a company by ID.
func (s *Store) Company(ctx context.Context, id string) (*pimhook.Company, error) {
	c, err := scanCompany(s.rdb.QueryRowContext(ctx, `SELECT `+companyColumns+` FROM companies WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, companyNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("company: %w", err)
	}
	return c, nil
}

// Companies lists every company, oldest first.
func (s *Store) Companies(ctx context.Context) ([]*pimhook.Company, error) {
	cs, err := queryAll(ctx, s.rdb, scanCompany, `SELECT `+companyColumns+` FROM companies ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("companies: %w", err)
	}
	return cs, nil
}

// UpdateCompany stores a company's name and preferences.
func (s *Store) UpdateCompany(ctx context.Context, c *pimhook.Company) error {
	prefs, err := json.Marshal(c.Preferences)
	if err != nil {
		return fmt.Errorf("update company: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE companies SET name = ?, preferences = ? WHERE id = ?`,
			c.Name, string(prefs), c.ID)
		return affectedOne(res, err, companyNotFound(c.ID))
	})
	if err != nil {
		return fmt.Errorf("update company: %w", err)
	}
	return nil
}

// CreateAPIKey stores a key's hash for its company.
func (s *Store) CreateAPIKey(ctx context.Context, k *pimhook.APIKey) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM companies WHERE id = ?`, k.CompanyID); err != nil || !found {
			return orError(err, companyNotFound(k.CompanyID))
		}
		if found, err := exists(tx, `SELECT 1 FROM api_keys WHERE id = ? OR hash = ?`, k.ID, k.Hash); err != nil || found {
			return orConflict(err, "API key %q already exists", k.ID)
		}
		_, err := tx.exec(`INSERT INTO api_keys (id, company_id, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)`,
			k.ID, k.CompanyID, k.Hash, k.Prefix, unixNano(k.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// CompanyByAPIKey returns the company owning the key with this hash;
// KindUnauthorized when there is none.
func (s *Store) CompanyByAPIKey(ctx context.Context, hash string) (*pimhook.Company, error) {
	c, err := scanCompany(s.rdb.QueryRowContext(ctx, `SELECT `+prefixed("c.", companyColumns)+`
		FROM api_keys k JOIN companies c ON c.id = k.company_id WHERE k.hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, pimhook.Errorf(pimhook.KindUnauthorized, pimhook.CodeUnauthorized, "unknown API key")
	}
	if err != nil {
		return nil, fmt.Errorf("company by api key: %w", err)
	}
	return c, nil
}

const companyColumns = `id, name, preferences, created_at`

func scanCompany(row scanner) (*pimhook.Company, error) {
	var (
		c       pimhook.Company
		prefs   string
		created int64
	)
	if err := row.Scan(&c.ID, &c.Name, &prefs, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(prefs), &c.Preferences); err != nil {
		return nil, fmt.Errorf("company %s preferences: %w", c.ID, err)
	}
	c.CreatedAt = fromUnixNano(created)
	return &c, nil
}

func companyNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeCompanyNotFound, "company %q not found", id)
}
