package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"time"
)

// walAutocheckpoint is the writer's wal_autocheckpoint, in pages: a
// backstop that makes the writer checkpoint itself once the WAL holds about
// 64 MiB, well above SQLite's default of 1000 pages. The checkpointer has
// usually copied those pages already, so the writer's checkpoint is short;
// and because the writer starts its next transaction right after it, with
// nothing new in the WAL, SQLite can then start the WAL over instead of
// letting it grow while readers keep coming.
const walAutocheckpoint = 16384

// walSizeLimit is the journal_size_limit: a WAL file that grew beyond it is
// cut back to it when SQLite starts the WAL over.
const walSizeLimit = 64 << 20

// checkpointer copies committed pages from the WAL into the database file
// on a connection of its own, so that commits do not wait for it: with
// SQLite's default every commit that finds the WAL above 1000 pages (4 MiB)
// checkpoints it before returning, and a job run that stages a gigabyte
// spends much of its time there. A PASSIVE checkpoint never blocks the
// writer or the readers.
type checkpointer struct {
	db       *sql.DB
	log      *slog.Logger
	gap      time.Duration // checkpointGap
	nearFull int           // walNearFull
	kick     chan struct{}
	quit     chan struct{} // closed by stop: no more waiting between checkpoints
	done     chan struct{}
	runs     atomic.Int64 // checkpoints made
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	return startCheckpointerWith(db, log, checkpointGap, walNearFull)
}

func startCheckpointerWith(db *sql.DB, log *slog.Logger, gap time.Duration, nearFull int) *checkpointer {
	c := &checkpointer{db: db, log: log, gap: gap, nearFull: nearFull,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// poke asks for a checkpoint, without waiting for it. Pokes that come while
// one runs make one more.
func (c *checkpointer) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// checkpointGap is the least time between two checkpoints while the WAL is
// below walNearFull. The writer pokes after every commit; checkpointing
// after each would copy a page (an index page, say) as many times as
// commits wrote it, and sync the database file each time. Letting commits
// gather copies it once.
const checkpointGap = 50 * time.Millisecond

// walNearFull is the WAL size, in frames, from which the checkpointer
// leaves no gap between checkpoints. When the WAL reaches
// walAutocheckpoint, the writer checkpoints whatever the checkpointer has
// not copied yet, and syncs the database file, while commits wait: up to a
// gap's worth of commits' pages. Checkpointing back to back as the WAL
// nears that size leaves the writer a few commits' worth.
const walNearFull = walAutocheckpoint * 3 / 4

func (c *checkpointer) run() {
	defer close(c.done)
	ctx := context.Background()
	copiedBefore := 0
	for range c.kick {
		var busy, frames, copied int
		if err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
			c.log.WarnContext(ctx, "wal checkpoint", attrError, err)
		}
		c.runs.Add(1)
		// A checkpoint that copied nothing new was held back by readers of
		// older snapshots: the next one would be too, so it rests.
		progress := copied > copiedBefore
		copiedBefore = copied
		if frames >= c.nearFull && progress {
			continue
		}
		gap := time.NewTimer(c.gap)
		select {
		case <-gap.C:
		case <-c.quit:
			gap.Stop()
		}
	}
}

// stop waits for a running checkpoint and ends the checkpointer. The
// writer must be stopped first: it pokes.
func (c *checkpointer) stop() {
	close(c.quit)
	close(c.kick)
	<-c.done
}
