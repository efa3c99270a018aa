package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

// CreateBulkOperation stores a new operation. A name the company already
// uses is a KindConflict (CodeAlreadyExists); an unknown company is
// KindNotFound.
func (s *Store) CreateBulkOperation(ctx context.Context, op *pimhook.BulkOperation) error {
	headers, err := jsonBytes(op.Headers, "{}")
	if err != nil {
		return fmt.Errorf("create bulk operation: %w", err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if found, err := exists(ctx, tx, `SELECT 1 FROM companies WHERE id = $1`, op.CompanyID); err != nil || !found {
			return orError(err, companyNotFound(op.CompanyID))
		}
		tag, err := tx.Exec(ctx, `INSERT INTO bulk_operations (`+bulkOperationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (company_id, name) DO NOTHING`,
			op.CompanyID, op.Name, op.URL, headers, op.Secret, op.CreatedAt, op.UpdatedAt)
		if err == nil && tag.RowsAffected() == 0 {
			err = conflictf("bulk operation %q already exists", op.Name)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create bulk operation: %w", storeError(err))
	}
	return nil
}

// BulkOperation returns an operation of a company by name.
func (s *Store) BulkOperation(ctx context.Context, companyID, name string) (*pimhook.BulkOperation, error) {
	op, err := scanBulkOperation(s.queryRow(ctx, `SELECT `+bulkOperationColumns+` FROM bulk_operations
		WHERE company_id = $1 AND name = $2`, companyID, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bulkOperationNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bulk operation: %w", err)
	}
	return op, nil
}

// BulkOperations lists a company's operations by name.
func (s *Store) BulkOperations(ctx context.Context, companyID string) ([]*pimhook.BulkOperation, error) {
	ops, err := queryAll(ctx, s, scanBulkOperation, `SELECT `+bulkOperationColumns+` FROM bulk_operations
		WHERE company_id = $1 ORDER BY name`, companyID)
	if err != nil {
		return nil, fmt.Errorf("bulk operations: %w", err)
	}
	return ops, nil
}

// UpdateBulkOperation stores an operation's URL, headers and UpdatedAt;
// its secret and CreatedAt stay as they are.
func (s *Store) UpdateBulkOperation(ctx context.Context, op *pimhook.BulkOperation) error {
	headers, err := jsonBytes(op.Headers, "{}")
	if err != nil {
		return fmt.Errorf("update bulk operation: %w", err)
	}
	tag, err := s.exec(ctx, `UPDATE bulk_operations SET url = $1, headers = $2, updated_at = $3 WHERE company_id = $4 AND name = $5`,
		op.URL, headers, op.UpdatedAt, op.CompanyID, op.Name)
	if err := affectedOne(tag, err, bulkOperationNotFound(op.Name)); err != nil {
		return fmt.Errorf("update bulk operation: %w", storeError(err))
	}
	return nil
}

// DeleteBulkOperation removes an operation. Its runs stay, and a new
// operation of the same name lists them as its own.
func (s *Store) DeleteBulkOperation(ctx context.Context, companyID, name string) error {
	tag, err := s.exec(ctx, `DELETE FROM bulk_operations WHERE company_id = $1 AND name = $2`, companyID, name)
	if err := affectedOne(tag, err, bulkOperationNotFound(name)); err != nil {
		return fmt.Errorf("delete bulk operation: %w", err)
	}
	return nil
}

// RecordBulkRun stores a run and, when entry is not nil, its error-log
// entry, in one transaction. The entry goes to the run's company, whatever
// company it names. A run ID that is taken is a KindConflict. The operation
// need not exist any more: a run outlives it.
func (s *Store) RecordBulkRun(ctx context.Context, run *pimhook.BulkRun, entry *pimhook.ErrorLogEntry) error {
	if run.ID == "" || run.CompanyID == "" || run.OperationName == "" {
		return fmt.Errorf("record bulk run: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
			"a bulk run needs an ID, a company and an operation"))
	}
	var entries errorLogColumns
	if entry != nil {
		if err := entries.add(run.CompanyID, entry); err != nil {
			return fmt.Errorf("record bulk run %s: %w", run.ID, err)
		}
	}
	products := run.Products
	if products == nil {
		products = []string{}
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO bulk_runs (`+bulkRunColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (id) DO NOTHING`,
			run.ID, run.CompanyID, run.OperationName, run.URL, products, run.ProductCount, string(run.Status),
			run.StatusCode, sanitize(run.Error), run.TimeoutMS, run.DurationMS, run.StartedAt)
		if err == nil && tag.RowsAffected() == 0 {
			err = conflictf("bulk run %q already exists", run.ID)
		}
		if err != nil || entry == nil {
			return err
		}
		_, err = tx.Exec(ctx, insertErrorLogSQL, entries.args()...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record bulk run %s: %w", run.ID, storeError(err))
	}
	return nil
}

// The bulk run listings, named so that TestBulkPlans checks their plans:
// both read the operation's index in id order.
const (
	bulkRunsQuery = `SELECT ` + bulkRunColumns + ` FROM bulk_runs
		WHERE company_id = $1 AND operation_name = $2 ORDER BY id DESC LIMIT $3`
	bulkRunsBeforeQuery = `SELECT ` + bulkRunColumns + ` FROM bulk_runs
		WHERE company_id = $1 AND operation_name = $2 AND id < $3 ORDER BY id DESC LIMIT $4`
)

// BulkRuns lists the runs of an operation, newest (highest ID) first: those
// with an ID below beforeID when it is not empty, at most limit of them
// (pimhook.DefaultPage when limit is not positive, capped at
// pimhook.MaxPage). The runs of a deleted operation are listed too.
func (s *Store) BulkRuns(ctx context.Context, companyID, name, beforeID string, limit int) ([]*pimhook.BulkRun, error) {
	query, args := bulkRunsQuery, []any{companyID, name, pimhook.PageLimit(limit)}
	if beforeID != "" {
		query, args = bulkRunsBeforeQuery, []any{companyID, name, beforeID, pimhook.PageLimit(limit)}
	}
	runs, err := queryAll(ctx, s, scanBulkRun, query, args...)
	if err != nil {
		return nil, fmt.Errorf("bulk runs: %w", err)
	}
	return runs, nil
}

// productsPage is how many products Products reads per query.
const productsPage = 1000

// The pages of Products, named so that TestBulkPlans checks their plans:
// both walk the primary key of entities in id order.
const (
	productsFirstQuery = `SELECT id, data FROM entities
		WHERE company_id = $1 AND type = 'products' AND NOT deleted ORDER BY id LIMIT $2`
	productsNextQuery = `SELECT id, data FROM entities
		WHERE company_id = $1 AND type = 'products' AND NOT deleted AND id > $2 ORDER BY id LIMIT $3`
)

// Products calls fn with every live product of a company, in ID order,
// until fn returns an error, which Products returns as it is. It reads the
// products a page at a time, each page a query of its own: fn may take its
// time (it runs a user's filter) without holding a connection or a
// snapshot meanwhile. A product written during the walk is seen in its
// state at the time its page is read, or not at all if it sorts before
// that page.
func (s *Store) Products(ctx context.Context, companyID string, fn func(id string, data json.RawMessage) error) error {
	var after string
	for first := true; ; first = false {
		var (
			page []entityData
			err  error
		)
		if first {
			page, err = queryAll(ctx, s, scanEntityData, productsFirstQuery, companyID, productsPage)
		} else {
			page, err = queryAll(ctx, s, scanEntityData, productsNextQuery, companyID, after, productsPage)
		}
		if err != nil {
			return fmt.Errorf("products: %w", err)
		}
		for _, p := range page {
			if err := fn(p.id, p.data); err != nil {
				return err
			}
		}
		if len(page) < productsPage {
			return nil
		}
		after = page[len(page)-1].id
	}
}

// entityData is an entity's ID and data.
type entityData struct {
	id   string
	data json.RawMessage
}

func scanEntityData(row pgx.Row) (entityData, error) {
	var (
		e    entityData
		data []byte
	)
	err := row.Scan(&e.id, &data)
	e.data = data
	return e, err
}

const bulkOperationColumns = `company_id, name, url, headers, secret, created_at, updated_at`

func scanBulkOperation(row pgx.Row) (*pimhook.BulkOperation, error) {
	var (
		op      pimhook.BulkOperation
		headers []byte
	)
	if err := row.Scan(&op.CompanyID, &op.Name, &op.URL, &headers, &op.Secret, &op.CreatedAt, &op.UpdatedAt); err != nil {
		return nil, err
	}
	op.Headers = map[string]string{}
	if err := json.Unmarshal(headers, &op.Headers); err != nil {
		return nil, fmt.Errorf("bulk operation %s: %w", op.Name, err)
	}
	return &op, nil
}

const bulkRunColumns = `id, company_id, operation_name, url, products, product_count, status,
	status_code, error, timeout_ms, duration_ms, started_at`

func scanBulkRun(row pgx.Row) (*pimhook.BulkRun, error) {
	var r pimhook.BulkRun
	if err := row.Scan(&r.ID, &r.CompanyID, &r.OperationName, &r.URL, &r.Products, &r.ProductCount, &r.Status,
		&r.StatusCode, &r.Error, &r.TimeoutMS, &r.DurationMS, &r.StartedAt); err != nil {
		return nil, err
	}
	r.Products = orEmptyList(r.Products)
	return &r, nil
}

func bulkOperationNotFound(name string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeBulkOpNotFound, "bulk operation %q not found", name)
}
