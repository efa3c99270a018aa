package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
)

var _ pimhook.Leaser = (*Store)(nil)

// workChannel is the channel of the notifications of queued work; their
// payload is the app's ID. Channels are per database, not per schema:
// stores in other schemas of the same database signal on it too, and a
// node that takes their signals finds no work for those apps.
const workChannel = "pimhook_work"

// notifyWorkSQL signals the apps $1 on workChannel. In a transaction,
// PostgreSQL sends the notifications when it commits, and only then, once
// for each app however often it was signalled.
const notifyWorkSQL = `SELECT pg_notify('` + workChannel + `', a) FROM unnest($1::text[]) AS a`

// acquireAppSQL claims app $1 for node $2 for $3 (an interval), on the
// database's clock: it takes the lease when it is free or expired, with a
// new token, and renews it, token unchanged, when node $2 holds it still.
// It returns no row when another node holds it. A node that claims again
// a lease of its own that expired gets a new token: another node may have
// held the app meanwhile.
const acquireAppSQL = `INSERT INTO app_leases AS l (app_id, node, token, expires_at)
	VALUES ($1, $2, 1, now() + $3::interval)
	ON CONFLICT (app_id) DO UPDATE SET node = excluded.node,
		token = CASE WHEN l.node = excluded.node AND l.expires_at > now() THEN l.token ELSE l.token + 1 END,
		expires_at = excluded.expires_at
	WHERE l.expires_at <= now() OR l.node = excluded.node
	RETURNING app_id, node, token, expires_at`

// AcquireApp claims appID for node for ttl (see pimhook.Leaser).
func (s *Store) AcquireApp(ctx context.Context, appID, node string, ttl time.Duration) (pimhook.Lease, bool, error) {
	l, err := scanLease(s.queryRow(ctx, acquireAppSQL, appID, node, ttl))
	if errors.Is(err, pgx.ErrNoRows) {
		return pimhook.Lease{}, false, nil
	}
	if err != nil {
		return pimhook.Lease{}, false, fmt.Errorf("acquire app %s: %w", appID, err)
	}
	return l, true, nil
}

// RenewApps extends for ttl the unexpired leases node holds on apps, and
// returns them; a lease that expired is not renewed, since another node
// may have held the app since.
func (s *Store) RenewApps(ctx context.Context, node string, apps []string, ttl time.Duration) ([]pimhook.Lease, error) {
	ls, err := queryAll(ctx, s, scanLease, `UPDATE app_leases SET expires_at = now() + $3::interval
		WHERE node = $1 AND app_id = ANY($2::text[]) AND expires_at > now()
		RETURNING app_id, node, token, expires_at`, node, apps, ttl)
	if err != nil {
		return nil, fmt.Errorf("renew apps: %w", err)
	}
	return ls, nil
}

// ReleaseApp ends l, if it is still the app's current lease, and signals
// the app's pending work, if any, to every node.
func (s *Store) ReleaseApp(ctx context.Context, l pimhook.Lease) error {
	_, err := s.exec(ctx, `WITH r AS (
			UPDATE app_leases SET expires_at = least(expires_at, now())
			WHERE app_id = $1 AND node = $2 AND token = $3
			RETURNING app_id
		)
		SELECT pg_notify('`+workChannel+`', r.app_id) FROM r
		WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.app_id = r.app_id AND d.status = 'pending')`,
		l.AppID, l.Node, l.Token)
	if err != nil {
		return fmt.Errorf("release app %s: %w", l.AppID, err)
	}
	return nil
}

// orphanedAppsQuery lists the apps with pending deliveries, through the
// loose index scan of pendingAppsQuery, whose lease is missing or expired.
const orphanedAppsQuery = `WITH RECURSIVE pending (app_id) AS (
		(SELECT app_id FROM deliveries WHERE status = 'pending' ORDER BY app_id LIMIT 1)
		UNION ALL
		SELECT (SELECT d.app_id FROM deliveries d WHERE d.status = 'pending' AND d.app_id > p.app_id
			ORDER BY d.app_id LIMIT 1)
		FROM pending p WHERE p.app_id IS NOT NULL
	)
	SELECT p.app_id FROM pending p WHERE p.app_id IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM app_leases l WHERE l.app_id = p.app_id AND l.expires_at > now())`

// OrphanedApps lists the apps that have pending deliveries and no
// unexpired lease, by ID.
func (s *Store) OrphanedApps(ctx context.Context) ([]string, error) {
	ids, err := queryAll(ctx, s, scanString, orphanedAppsQuery)
	if err != nil {
		return nil, fmt.Errorf("orphaned apps: %w", err)
	}
	return ids, nil
}

func scanLease(row pgx.Row) (pimhook.Lease, error) {
	var l pimhook.Lease
	err := row.Scan(&l.AppID, &l.Node, &l.Token, &l.Expires)
	return l, err
}

// Backoff of ListenWork between attempts to connect again.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// ListenWork calls fn with an app's ID each time work is queued for it, on
// any node, until ctx ends or the store closes. It listens on a connection
// of its own, outside the pool, and returns once it listens. Should the
// connection fail, it connects again, with backoff, and then calls fn with
// every orphaned app, since signals sent meanwhile are lost.
func (s *Store) ListenWork(ctx context.Context, fn func(appID string)) error {
	if err := s.live(); err != nil {
		return err
	}
	conn, err := s.listen(ctx)
	if err != nil {
		return fmt.Errorf("listen work: %w", err)
	}
	started := s.tasks.Go(func(stop context.Context) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		s.serveWork(ctx, conn, fn)
	})
	if !started {
		conn.Close(context.Background())
		return errClosed
	}
	return nil
}

// listen opens a connection with the pool's settings and listens on
// workChannel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+workChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	s.listenPID.Store(conn.PgConn().PID())
	return conn, nil
}

// serveWork hands the notifications of conn to fn until ctx ends,
// connecting again whenever the connection fails.
func (s *Store) serveWork(ctx context.Context, conn *pgx.Conn, fn func(appID string)) {
	defer func() {
		if conn != nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(closeCtx)
			cancel()
		}
	}()
	backoff := listenBackoffMin
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			backoff = listenBackoffMin
			fn(n.Payload)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("listen for work", attrError, err)
		conn.Close(context.Background())
		conn = nil
		for conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, listenBackoffMax)
			if conn, err = s.listen(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("listen for work", attrError, err)
			}
		}
		// Signals sent while it was not listening are lost; the apps they
		// were for are orphaned now, unless a node took them.
		ids, err := s.OrphanedApps(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("find orphaned apps", attrError, err)
		}
		for _, id := range ids {
			fn(id)
		}
	}
}
