package e2e

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/workflows"
)

// RecordHistoriesEnv, when set to 1, makes the end-to-end tests write the histories of the
// workflows they ran to workflows/testdata, where the replay test reads them:
//
//	KOMBOSYNC_RECORD_HISTORIES=1 go test ./e2e
const RecordHistoriesEnv = "KOMBOSYNC_RECORD_HISTORIES"

// recordHistory exports a closed workflow run's history (the latest run when runID is empty) with
// `starter history export` and replays it against the current workflow code at once. When
// recording is switched on, it also becomes workflows/testdata/<name>.json.
func (s *stack) recordHistory(t *testing.T, workflowID, runID, name string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".json")
	require.Contains(t, s.Starter(t, "history", "export", workflowID, file, "--run-id", runID), "events written to "+file)
	r := worker.NewWorkflowReplayer()
	workflows.Register(r)
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), file),
		"the exported history of %s replays", workflowID)
	if os.Getenv(RecordHistoriesEnv) != "1" {
		return
	}
	root, err := localstack.RepoRoot()
	require.NoError(t, err)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "workflows", "testdata", name+".json"), b, 0o644))
	t.Logf("recorded %s as workflows/testdata/%s.json", workflowID, name)
}

// starter history export refuses what it cannot do, clearly.
func TestHistoryExportRejectsBadArguments(t *testing.T) {
	t.Parallel()
	env := teststack.Env("TEMPORAL_ADDRESS", testenv.TemporalAddress(t))
	code, out := teststack.RunToEnd(t, "starter", env, "history", "export", "only-one-argument")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "takes a workflow id and a file")
	code, out = teststack.RunToEnd(t, "starter", env, "history", "export", "kombo-integration:no-such", filepath.Join(t.TempDir(), "h.json"))
	require.Equal(t, 3, code, out) // not found
	require.Contains(t, out, "kombo-integration:no-such")
}
