// Package history exports workflow histories as JSON, in the form `temporal workflow show
// --output json` writes and worker.WorkflowReplayer reads: the replay tests' input.
package history

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
)

// Export returns the JSON history of a workflow run (the latest run when runID is empty) and its
// number of events.
func Export(ctx context.Context, c client.Client, workflowID, runID string) ([]byte, int, error) {
	hist := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, 0, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		hist.Events = append(hist.Events, e)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		return nil, 0, err
	}
	return append(b, '\n'), len(hist.Events), nil
}

// WriteFile writes b to file through a temporary file in the same folder, so a failure never
// leaves half a history behind.
func WriteFile(file string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".history-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
