// Package e2e runs kombosync's programs as built binaries against a real PostgreSQL and a real
// Temporal dev server, the way they run in production (the harness is internal/teststack).
// `go test -short` skips it.
package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/workflows"
)

func TestMain(m *testing.M) { teststack.Main(m, teststack.MainOptions{Race: true}) }

// stack is a teststack.Stack with what only the end-to-end tests do (recording histories).
type stack struct{ *teststack.Stack }

// newStack starts a stack with the end-to-end tests' defaults, where o leaves them zero: debounce
// windows of 300 ms and 3 s, the emulator's coalescing at 100 ms, five webhook retries, debug
// logs (which the stack checks for secrets).
func newStack(t *testing.T, o teststack.Options) *stack {
	t.Helper()
	if o.Quiet == 0 {
		o.Quiet = 300 * time.Millisecond
	}
	if o.Max == 0 {
		o.Max = 3 * time.Second
	}
	if o.Webhooks.Window == 0 {
		o.Webhooks.Window = 100 * time.Millisecond
	}
	if o.Webhooks.Retries == 0 {
		o.Webhooks.Retries = 5
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	return &stack{teststack.New(t, o)}
}

// terminateAtEnd terminates the integrations' workflows when the test ends, so that a test run
// again on the same dev server (go test -count=2) starts them afresh on its own task queue.
func (s *stack) terminateAtEnd(t *testing.T, integrationIDs ...string) {
	t.Cleanup(func() {
		for _, id := range integrationIDs {
			_ = s.Temporal.TerminateWorkflow(context.Background(), workflows.IntegrationWorkflowID(id), "", "test ended")
		}
	})
}

// finish cancels the integration's workflow, waits for it to close and records its history
// under name (see recordHistory).
func (s *stack) finish(t *testing.T, integrationID, name string) {
	t.Helper()
	id := workflows.IntegrationWorkflowID(integrationID)
	require.NoError(t, s.Temporal.CancelWorkflow(t.Context(), id, ""))
	// Bounded: a workflow that never closes (a failing workflow task) fails the test, with the
	// worker's log, instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := s.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil)
	if ctx.Err() != nil {
		d, derr := s.Temporal.DescribeWorkflowExecution(t.Context(), id, "")
		t.Fatalf("%s did not close within 2 minutes of its cancellation: %v (describe: %v, %v)", id, err, d, derr)
	}
	require.ErrorAs(t, err, new(*temporal.CanceledError))
	s.recordHistory(t, id, "", name)
}
