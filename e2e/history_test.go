package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"github.com/kombosync/kombosync/internal/localstack"
)

// RecordHistoriesEnv, when set to 1, makes the end-to-end tests write the histories of the
// workflows they ran to workflows/testdata, where the replay test reads them:
//
//	KOMBOSYNC_RECORD_HISTORIES=1 go test ./e2e
const RecordHistoriesEnv = "KOMBOSYNC_RECORD_HISTORIES"

// recordHistory exports a closed workflow run's history (the latest run when runID is empty) as workflows/testdata/<name>.json, in the
// JSON form `temporal workflow show --output json` writes, when recording is switched on.
func (s *stack) recordHistory(t *testing.T, workflowID, runID, name string) {
	t.Helper()
	if os.Getenv(RecordHistoriesEnv) != "1" {
		return
	}
	hist := &historypb.History{}
	it := s.tc.GetWorkflowHistory(t.Context(), workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, e)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	root, err := localstack.RepoRoot()
	require.NoError(t, err)
	file := filepath.Join(root, "workflows", "testdata", name+".json")
	require.NoError(t, os.WriteFile(file, append(b, '\n'), 0o644))
	t.Logf("recorded %d events of %s in %s", len(hist.Events), workflowID, file)
}
