package workflows_test

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/workflows"
)

// TestReplayRecordedHistories replays every history recorded from real runs on the dev server
// (workflows/testdata, written by `KOMBOSYNC_RECORD_HISTORIES=1 go test ./e2e`) against the
// current workflow code: a change that alters the command sequence without workflow.GetVersion
// fails here, before it can break running workflows.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			workflows.Register(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), f))
		})
	}
}

// changedIntegrationSync is IntegrationSync after a change to its command sequence: it first
// waits a second (a new timer), then runs as before. versioned puts the change behind
// workflow.GetVersion, as a real change must be.
func changedIntegrationSync(versioned bool) func(workflow.Context, workflows.IntegrationSyncInput) error {
	return func(ctx workflow.Context, in workflows.IntegrationSyncInput) error {
		if !versioned || workflow.GetVersion(ctx, "settle-before-loading", workflow.DefaultVersion, 1) == 1 {
			if err := workflow.Sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		return workflows.IntegrationSync(ctx, in)
	}
}

func replayWith(wf func(workflow.Context, workflows.IntegrationSyncInput) error, file string) error {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: workflows.IntegrationSyncType})
	r.RegisterWorkflowWithOptions(workflows.FullSync, workflow.RegisterOptions{Name: workflows.FullSyncType})
	return r.ReplayWorkflowHistoryFromJSONFile(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), file)
}

// The replay test is the guard it claims to be: the same change to the command sequence fails
// replay of every recorded IntegrationSync history when unversioned, and passes behind
// workflow.GetVersion (recorded runs take the old path, new runs the new one).
func TestReplayCatchesAnUnversionedChange(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "integration_sync_*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			err := replayWith(changedIntegrationSync(false), f)
			require.Error(t, err, "an unversioned change must fail replay")
			require.Contains(t, err.Error(), "TMPRL1100", "a non-determinism error")
			require.NoError(t, replayWith(changedIntegrationSync(true), f), "the versioned change replays")
		})
	}
}
