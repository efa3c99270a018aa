package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// CreateCompany stores a new company; KindConflict if its ID exists.
func (s *Store) CreateCompany(ctx context.Context, c *pimhook.Company) error {
	prefs, err := json.Marshal(c.Preferences)
	if err != nil {
		return fmt.Errorf("create company: %w", err)
	}
	tag, err := s.exec(ctx, `INSERT INTO companies (id, name, preferences, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.Name, prefs, c.CreatedAt)
	if err == nil && tag.RowsAffected() == 0 {
		err = conflictf("company %q already exists", c.ID)
	}
	if err != nil {
		return fmt.Errorf("create company: %w", storeError(err))
	}
	return nil
}

// Company returns a company by ID.
func (s *Store) Company(ctx context.Context, id string) (*pimhook.Company, error) {
	c, err := scanCompany(s.queryRow(ctx, `SELECT `+companyColumns+` FROM companies WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, companyNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("company: %w", err)
	}
	return c, nil
}

// Companies lists every company, oldest first.
func (s *Store) Companies(ctx context.Context) ([]*pimhook.Company, error) {
	cs, err := queryAll(ctx, s, scanCompany, `SELECT `+companyColumns+` FROM companies ORDER BY created_at, id`)
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
	tag, err := s.exec(ctx, `UPDATE companies SET name = $1, preferences = $2 WHERE id = $3`, c.Name, prefs, c.ID)
	if err := affectedOne(tag, err, companyNotFound(c.ID)); err != nil {
		return fmt.Errorf("update company: %w", storeError(err))
	}
	return nil
}

// CreateAPIKey stores a key's hash for its company. An unknown company is
// KindNotFound; a key ID or hash that is taken is KindConflict.
func (s *Store) CreateAPIKey(ctx context.Context, k *pimhook.APIKey) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if found, err := exists(ctx, tx, `SELECT 1 FROM companies WHERE id = $1`, k.CompanyID); err != nil || !found {
			return orError(err, companyNotFound(k.CompanyID))
		}
		tag, err := tx.Exec(ctx, `INSERT INTO api_keys (id, company_id, hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, k.ID, k.CompanyID, k.Hash, k.Prefix, k.CreatedAt)
		if err == nil && tag.RowsAffected() == 0 {
			err = conflictf("API key %q already exists", k.ID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create api key: %w", storeError(err))
	}
	return nil
}

// CompanyByAPIKey returns the company owning the key with this hash;
// KindUnauthorized when there is none.
func (s *Store) CompanyByAPIKey(ctx context.Context, hash string) (*pimhook.Company, error) {
	c, err := scanCompany(s.queryRow(ctx, `SELECT `+prefixed("c.", companyColumns)+`
		FROM api_keys k JOIN companies c ON c.id = k.company_id WHERE k.hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pimhook.Errorf(pimhook.KindUnauthorized, pimhook.CodeUnauthorized, "unknown API key")
	}
	if err != nil {
		return nil, fmt.Errorf("company by api key: %w", err)
	}
	return c, nil
}

const companyColumns = `id, name, preferences, created_at`

func scanCompany(row pgx.Row) (*pimhook.Company, error) {
	var (
		c     pimhook.Company
		prefs []byte
	)
	if err := row.Scan(&c.ID, &c.Name, &prefs, &c.CreatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(prefs, &c.Preferences); err != nil {
		return nil, fmt.Errorf("company %s preferences: %w", c.ID, err)
	}
	return &c, nil
}

func companyNotFound(id string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeCompanyNotFound, "company %q not found", id)
}
