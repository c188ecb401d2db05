package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

// The guide's flows with the real programs and the emulator: a multiposter's job with its code
// is confirmed, a job sent by e-mail with its URL is confirmed, a title-only job is proposed and
// then confirmed by a person; the first job then closes in the emulator and the second is
// deleted: their links turn inactive (closed, deleted_in_ats) within a round, each transition a
// row of the feed.
func TestJobLinksFollowTheATS(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "ats/jobs")})
	const id = "greenhouse:e2e-jobs"
	jobs := kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryATS, Records: 300, Seed: 8, Notify: true}))
	inSync := func() {
		teststack.Eventually(t, 2*time.Minute, func() string { return s.Diff(t, id, jobs) })
	}
	inSync()

	var listed struct{ Jobs []store.SyncedJob }
	s.StarterJSON(t, &listed, "jobs", "list", id, "--status", "OPEN")
	require.GreaterOrEqual(t, len(listed.Jobs), 3)
	multi, mailed, titled := listed.Jobs[0], listed.Jobs[1], listed.Jobs[2]

	link := func(appJob string, args ...string) store.JobLink {
		var out store.JobLink
		s.StarterJSON(t, &out, append([]string{"jobs", "link", id, appJob}, args...)...)
		return out
	}
	got := link("app-multi", "--code", " "+multi.JobCode+" ")
	require.Equal(t, store.LinkConfirmed, got.State, "a multiposter's job code")
	require.Equal(t, multi.ID, got.KomboJobID)
	got = link("app-mail", "--url", mailed.PostURL+"?utm_source=email")
	require.Equal(t, store.LinkConfirmed, got.State, "a URL sent by e-mail")
	require.Equal(t, mailed.ID, got.KomboJobID)
	require.Equal(t, "post_url", got.Method)
	got = link("app-title", "--title", titled.Name)
	require.Equal(t, store.LinkProposed, got.State, "a title is only proposed")
	var confirmed store.JobLink
	s.StarterJSON(t, &confirmed, "jobs", "confirm", id, "app-title", titled.ID, "--by", "ada")
	require.Equal(t, store.LinkConfirmed, confirmed.State)

	_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: jobs, Op: komboemu.OpUpdate, ID: multi.ID, Fields: map[string]any{"status": "CLOSED"}},
		komboemu.Mutation{Endpoint: jobs, Op: komboemu.OpDelete, ID: mailed.ID})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	inSync()
	teststack.Eventually(t, time.Minute, func() string {
		var links struct{ Links []store.LinkView }
		s.StarterJSON(t, &links, "jobs", "links", id, "--needs-person")
		reasons := map[string]string{}
		for _, v := range links.Links {
			reasons[v.AppJobID] = v.Reason
		}
		if reasons["app-multi"] != "closed" || reasons["app-mail"] != "deleted_in_ats" {
			return fmt.Sprintf("links needing a person: %v", reasons)
		}
		return ""
	})
	teststack.Eventually(t, time.Minute, func() string { // the round's report writes the transitions
		n := s.Count(t, `select count(*) from kombo.changes where integration_id = $1 and endpoint = 'job-links' and op = 'deactivated'
			and ((record_id = 'app-multi' and diff -> 'reason' ->> 1 = 'closed') or (record_id = 'app-mail' and diff -> 'reason' ->> 1 = 'deleted_in_ats'))`, id)
		if n != 2 {
			return fmt.Sprintf("%d of 2 transitions in the feed", n)
		}
		return ""
	})
	require.Zero(t, s.Count(t, `select count(*) from kombo.changes where endpoint = 'job-links' and record_id = 'app-title'`),
		"the open job's link made no transition")
	var can bool
	require.NoError(t, s.Pool.QueryRow(t.Context(), `select kombo.job_can_take_applications($1, 'app-title')`, id).Scan(&can))
	require.True(t, can)
	require.NoError(t, s.Pool.QueryRow(t.Context(), `select kombo.job_can_take_applications($1, 'app-multi')`, id).Scan(&can))
	require.False(t, can)
}
