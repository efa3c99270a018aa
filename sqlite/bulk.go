package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pimhook/pimhook"
)

// CreateBulkOperation stores a new operation. A name the company already
// uses is a KindConflict (CodeAlreadyExists); an unknown company is
// KindNotFound.
func (s *Store) CreateBulkOperation(ctx context.Context, op *pimhook.BulkOperation) error {
	headers, err := jsonText(op.Headers, "{}")
	if err != nil {
		return fmt.Errorf("create bulk operation: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM companies WHERE id = ?`, op.CompanyID); err != nil || !found {
			return orError(err, companyNotFound(op.CompanyID))
		}
		if found, err := exists(tx, `SELECT 1 FROM bulk_operations WHERE company_id = ? AND name = ?`, op.CompanyID, op.Name); err != nil || found {
			return orConflict(err, "bulk operation %q already exists", op.Name)
		}
		_, err := tx.exec(`INSERT INTO bulk_operations (`+bulkOperationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			op.CompanyID, op.Name, op.URL, headers, op.Secret, unixNano(op.CreatedAt), unixNano(op.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create bulk operation: %w", err)
	}
	return nil
}

// BulkOperation returns an operation of a company by name.
func (s *Store) BulkOperation(ctx context.Context, companyID, name string) (*pimhook.BulkOperation, error) {
	op, err := scanBulkOperation(s.rdb.QueryRowContext(ctx, `SELECT `+bulkOperationColumns+` FROM bulk_operations
		WHERE company_id = ? AND name = ?`, companyID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, bulkOperationNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bulk operation: %w", err)
	}
	return op, nil
}

// BulkOperations lists a company's operations by name.
func (s *Store) BulkOperations(ctx context.Context, companyID string) ([]*pimhook.BulkOperation, error) {
	ops, err := queryAll(ctx, s.rdb, scanBulkOperation, `SELECT `+bulkOperationColumns+` FROM bulk_operations
		WHERE company_id = ? ORDER BY name`, companyID)
	if err != nil {
		return nil, fmt.Errorf("bulk operations: %w", err)
	}
	return ops, nil
}

// UpdateBulkOperation stores an operation's URL, headers and UpdatedAt;
// its secret and CreatedAt stay as they are.
func (s *Store) UpdateBulkOperation(ctx context.Context, op *pimhook.BulkOperation) error {
	headers, err := jsonText(op.Headers, "{}")
	if err != nil {
		return fmt.Errorf("update bulk operation: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE bulk_operations SET url = ?, headers = ?, updated_at = ? WHERE company_id = ? AND name = ?`,
			op.URL, headers, unixNano(op.UpdatedAt), op.CompanyID, op.Name)
		return affectedOne(res, err, bulkOperationNotFound(op.Name))
	})
	if err != nil {
		return fmt.Errorf("update bulk operation: %w", err)
	}
	return nil
}

// DeleteBulkOperation removes an operation. Its runs stay, and a new
// operation of the same name lists them as its own.
func (s *Store) DeleteBulkOperation(ctx context.Context, companyID, name string) error {
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM bulk_operations WHERE company_id = ? AND name = ?`, companyID, name)
		return affectedOne(res, err, bulkOperationNotFound(name))
	})
	if err != nil {
		return fmt.Errorf("delete bulk operation: %w", err)
	}
	return nil
}

// RecordBulkRun stores a run and, when entry is not nil, its error-log
// entry, in one write. The entry goes to the run's company, whatever company
// it names. A run ID that is taken is a KindConflict. The operation need not
// exist any more: a run outlives it.
func (s *Store) RecordBulkRun(ctx context.Context, run *pimhook.BulkRun, entry *pimhook.ErrorLogEntry) error {
	if run.ID == "" || run.CompanyID == "" || run.OperationName == "" {
		return fmt.Errorf("record bulk run: %w", pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeValidation,
			"a bulk run needs an ID, a company and an operation"))
	}
	products, err := jsonText(run.Products, "[]")
	if err != nil {
		return fmt.Errorf("record bulk run: %w", err)
	}
	err = s.w.do(ctx, func(tx *wtx) error {
		if found, err := exists(tx, `SELECT 1 FROM bulk_runs WHERE id = ?`, run.ID); err != nil || found {
			return orConflict(err, "bulk run %q already exists", run.ID)
		}
		if _, err := tx.exec(`INSERT INTO bulk_runs (`+bulkRunColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			run.ID, run.CompanyID, run.OperationName, run.URL, products, run.ProductCount, string(run.Status),
			run.StatusCode, run.Error, run.TimeoutMS, run.DurationMS, unixNano(run.StartedAt)); err != nil {
			return fmt.Errorf("store bulk run: %w", err)
		}
		if entry == nil {
			return nil
		}
		return insertErrorLog(tx, run.CompanyID, entry)
	})
	if err != nil {
		return fmt.Errorf("record bulk run %s: %w", run.ID, err)
	}
	return nil
}

// The bulk run listings, named so that TestBulkPlans checks the plans of
// the queries that run: both read the operation's index in id order.
const (
	bulkRunsQuery = `SELECT ` + bulkRunColumns + ` FROM bulk_runs
		WHERE company_id = ? AND operation_name = ? ORDER BY id DESC LIMIT ?`
	bulkRunsBeforeQuery = `SELECT ` + bulkRunColumns + ` FROM bulk_runs
		WHERE company_id = ? AND operation_name = ? AND id < ? ORDER BY id DESC LIMIT ?`
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
	runs, err := queryAll(ctx, s.rdb, scanBulkRun, query, args...)
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
		WHERE company_id = ? AND type = 'products' AND deleted = 0 ORDER BY id LIMIT ?`
	productsNextQuery = `SELECT id, data FROM entities
		WHERE company_id = ? AND type = 'products' AND deleted = 0 AND id > ? ORDER BY id LIMIT ?`
)

// Products calls fn with every live product of a company, in ID order,
// until fn returns an error, which Products returns as it is. It reads the
// products a page at a time, each page in a read transaction of its own:
// fn may take its time (it runs a user's filter) without holding a
// snapshot that would keep the WAL from being reset meanwhile. A product
// written during the walk is seen in its state at the time its page is
// read, or not at all if it sorts before that page.
func (s *Store) Products(ctx context.Context, companyID string, fn func(id string, data json.RawMessage) error) error {
	var after string
	for first := true; ; first = false {
		var (
			page []entityData
			err  error
		)
		if first {
			page, err = queryAll(ctx, s.rdb, scanEntityData, productsFirstQuery, companyID, productsPage)
		} else {
			page, err = queryAll(ctx, s.rdb, scanEntityData, productsNextQuery, companyID, after, productsPage)
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

func scanEntityData(row scanner) (entityData, error) {
	var (
		e    entityData
		data []byte
	)
	err := row.Scan(&e.id, &data)
	e.data = data
	return e, err
}

const bulkOperationColumns = `company_id, name, url, headers, secret, created_at, updated_at`

func scanBulkOperation(row scanner) (*pimhook.BulkOperation, error) {
	var (
		op               pimhook.BulkOperation
		headers          string
		created, updated int64
	)
	if err := row.Scan(&op.CompanyID, &op.Name, &op.URL, &headers, &op.Secret, &created, &updated); err != nil {
		return nil, err
	}
	op.Headers = map[string]string{}
	if err := json.Unmarshal([]byte(headers), &op.Headers); err != nil {
		return nil, fmt.Errorf("bulk operation %s: %w", op.Name, err)
	}
	op.CreatedAt, op.UpdatedAt = fromUnixNano(created), fromUnixNano(updated)
	return &op, nil
}

const bulkRunColumns = `id, company_id, operation_name, url, products, product_count, status,
	status_code, error, timeout_ms, duration_ms, started_at`

func scanBulkRun(row scanner) (*pimhook.BulkRun, error) {
	var (
		r        pimhook.BulkRun
		products string
		started  int64
	)
	if err := row.Scan(&r.ID, &r.CompanyID, &r.OperationName, &r.URL, &products, &r.ProductCount, &r.Status,
		&r.StatusCode, &r.Error, &r.TimeoutMS, &r.DurationMS, &started); err != nil {
		return nil, err
	}
	r.Products = []string{}
	if err := json.Unmarshal([]byte(products), &r.Products); err != nil {
		return nil, fmt.Errorf("bulk run %s: %w", r.ID, err)
	}
	r.StartedAt = fromUnixNano(started)
	return &r, nil
}

func bulkOperationNotFound(name string) *pimhook.Error {
	return pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeBulkOpNotFound, "bulk operation %q not found", name)
}
