package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeating runs fn, one long statement say, heartbeating meanwhile: with a heartbeat timeout
// on the activity, a dead worker is noticed within it, not at the (long) start-to-close timeout.
func heartbeating[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	stop := heartbeatEvery(ctx, nil)
	defer stop()
	return fn()
}

// heartbeatEvery heartbeats at heartbeatInterval until the returned stop is called, with what
// details returns (nothing when nil). It runs beside the work, so a page statement or a slow page
// that takes longer than the heartbeat timeout is never mistaken for a dead worker.
func heartbeatEvery(ctx context.Context, details func() any) (stop func()) {
	done := make(chan struct{})
	t := time.NewTicker(heartbeatInterval(activity.GetInfo(ctx).HeartbeatTimeout))
	go func() {
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if details != nil {
					activity.RecordHeartbeat(ctx, details())
				} else {
					activity.RecordHeartbeat(ctx)
				}
			}
		}
	}()
	return func() { close(done) }
}

// heartbeatInterval is how often a pass heartbeats while it waits: a third of the timeout.
func heartbeatInterval(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return 10 * time.Second
	}
	return max(timeout/3, 100*time.Millisecond)
}
