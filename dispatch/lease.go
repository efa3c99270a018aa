package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pimhook/pimhook"
)

// Cluster mode: with Config.Leaser set, several dispatchers share one
// store, and an app is served by the node that holds its lease. A worker
// claims the app's lease when it takes the app from its pool's ready queue,
// so apps go to nodes that have a free worker; it keeps the lease while the
// app has work (its renewer extends every lease it holds a third of the TTL
// before expiry) and gives it up when the app's queue is empty. Every write
// of an attempt is made under the lease, so a node whose lease ran out
// (paused, cut off) cannot record anything, and before each attempt the
// worker checks, on its own clock, that the lease outlasts the attempt.

// errLeaseLost ends the serving of an app whose lease another node has.
var errLeaseLost = errors.New("lease lost")

// ensureLease makes sure st's lease is held and, if it can, outlasts need;
// it claims or renews it as needed. It returns when the lease ends by this
// node's clock. ok is false when another node has the app; err is a store
// failure, after which the lease is kept as it was.
func (d *Dispatcher) ensureLease(ctx context.Context, st *appState, need time.Duration) (l pimhook.Lease, until time.Time, ok bool, err error) {
	if d.cfg.Leaser == nil {
		return pimhook.Lease{}, time.Time{}, true, nil
	}
	d.mu.Lock()
	held, until := st.lease, st.leaseUntil
	d.mu.Unlock()
	if held != nil && d.clock.Now().Add(need+d.leaseMargin()).Before(until) {
		return *held, until, true, nil
	}
	asked := d.clock.Now()
	got, ok, err := d.cfg.Leaser.AcquireApp(ctx, st.id, d.cfg.Node, d.cfg.LeaseTTL)
	if err != nil {
		return pimhook.Lease{}, time.Time{}, false, fmt.Errorf("claim app: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok {
		st.lease = nil
		return pimhook.Lease{}, time.Time{}, false, nil
	}
	st.lease, st.leaseUntil = &got, asked.Add(d.cfg.LeaseTTL)
	return got, st.leaseUntil, true, nil
}

// leaseMargin is how much of a lease is kept in reserve: an attempt ends
// at least this long before the lease does, by this node's clock.
func (d *Dispatcher) leaseMargin() time.Duration { return d.cfg.LeaseTTL / 10 }

// releaseLease gives up st's lease, when it holds one.
func (d *Dispatcher) releaseLease(st *appState) {
	if d.cfg.Leaser == nil {
		return
	}
	d.mu.Lock()
	l := st.lease
	st.lease = nil
	d.mu.Unlock()
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.cfg.Leaser.ReleaseApp(ctx, *l); err != nil {
		d.log.Warn("release app", attrApp, st.id, attrError, err)
	}
}

// renewLeases extends every lease the node holds, and forgets the ones it
// lost. It runs every third of the TTL until ctx ends.
func (d *Dispatcher) renewLeases(ctx context.Context) {
	tick := time.NewTicker(d.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.mu.Lock()
		var apps []string
		for id, st := range d.apps {
			if st.lease != nil {
				apps = append(apps, id)
			}
		}
		d.mu.Unlock()
		if len(apps) == 0 {
			continue
		}
		asked := d.clock.Now()
		held, err := d.cfg.Leaser.RenewApps(ctx, d.cfg.Node, apps, d.cfg.LeaseTTL)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("renew leases", attrError, err)
			}
			continue
		}
		kept := make(map[string]pimhook.Lease, len(held))
		for _, l := range held {
			kept[l.AppID] = l
		}
		d.mu.Lock()
		for _, id := range apps {
			st, ok := d.apps[id]
			if !ok || st.lease == nil {
				continue
			}
			if l, ok := kept[id]; ok && l.Token == st.lease.Token {
				st.leaseUntil = asked.Add(d.cfg.LeaseTTL)
			} else {
				st.lease = nil
			}
		}
		d.mu.Unlock()
	}
}

// watchWork wakes apps when any node queues work for them, and, every TTL,
// the apps whose lease expired with work pending (a dead node's).
func (d *Dispatcher) watchWork(ctx context.Context) error {
	if err := d.cfg.Leaser.ListenWork(ctx, d.Notify); err != nil {
		return fmt.Errorf("listen for work: %w", err)
	}
	go func() {
		tick := time.NewTicker(d.cfg.LeaseTTL)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ids, err := d.cfg.Leaser.OrphanedApps(ctx)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error("find orphaned apps", attrError, err)
				}
				continue
			}
			for _, id := range ids {
				d.Notify(id)
			}
		}
	}()
	go d.renewLeases(ctx)
	return nil
}

// releaseAll gives up every lease the node holds, at shutdown.
func (d *Dispatcher) releaseAll() {
	if d.cfg.Leaser == nil {
		return
	}
	d.mu.Lock()
	var held []*appState
	for _, st := range d.apps {
		if st.lease != nil {
			held = append(held, st)
		}
	}
	d.mu.Unlock()
	for _, st := range held {
		d.releaseLease(st)
	}
}
