package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// An isolated change is fetched as its webhook arrives (the leading edge): with a quiet window
// of 30 s it still lands in a few seconds.
func TestAnIsolatedChangeLandsWithoutAQuietWindow(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{Quiet: 30 * time.Second, Max: time.Minute,
		WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "hris/employees")})
	const id = "personio:e2e-leading-edge"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 10, Seed: 14, Notify: true}))
	teststack.Eventually(t, time.Minute, func() string { return s.Diff(t, id, employees) })
	s.WaitState(t, id, workflows.StateIdle, time.Minute)

	changed := time.Now()
	_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	teststack.Eventually(t, 15*time.Second, func() string { return s.Diff(t, id, employees) })
	require.Less(t, time.Since(changed), 15*time.Second, "well within the 30 s quiet window")
	s.finish(t, id, "integration_sync_leading_edge")
}
