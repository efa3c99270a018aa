// Package proc holds the in-process coordination both stores use: locks by
// key and background tasks that stop with the store.
package proc

import (
	"context"
	"sync"
)

// KeyLocks serializes work by key within the process. A key's lock lives
// while some caller holds or waits for it. The zero value is ready to use.
type KeyLocks[K comparable] struct {
	mu    sync.Mutex
	locks map[K]*keyLock
}

type keyLock struct {
	token chan struct{} // full while the lock is held
	refs  int           // callers holding or waiting for the lock
}

// Lock waits until no one else holds k's lock, or ctx ends.
func (l *KeyLocks[K]) Lock(ctx context.Context, k K) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[K]*keyLock{}
	}
	kl := l.locks[k]
	if kl == nil {
		kl = &keyLock{token: make(chan struct{}, 1)}
		l.locks[k] = kl
	}
	kl.refs++
	l.mu.Unlock()
	select {
	case kl.token <- struct{}{}:
		return sync.OnceFunc(func() {
			<-kl.token
			l.release(k, kl)
		}), nil
	case <-ctx.Done():
		l.release(k, kl)
		return nil, ctx.Err()
	}
}

func (l *KeyLocks[K]) release(k K, kl *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if kl.refs--; kl.refs == 0 {
		delete(l.locks, k)
	}
}

// Tasks runs a store's background work; Stop ends it.
type Tasks struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// NewTasks returns Tasks ready to run work.
func NewTasks() *Tasks {
	ctx, cancel := context.WithCancel(context.Background())
	return &Tasks{ctx: ctx, cancel: cancel}
}

// Go runs fn in a goroutine, unless Stop was called; it reports whether it
// did.
func (t *Tasks) Go(fn func(ctx context.Context)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return false
	}
	t.wg.Go(func() { fn(t.ctx) })
	return true
}

// Stop cancels the running tasks and waits for them to return.
func (t *Tasks) Stop() {
	t.mu.Lock()
	t.cancel()
	t.mu.Unlock()
	t.wg.Wait()
}
