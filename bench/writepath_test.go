//go:build bench

package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/kombosync/kombosync/store"
)

// writePathParts are where a pass's CPU goes in kombosync's process.
var writePathParts = []part{
	{"the replay server", []string{"bench.(*replay)"}},
	{"page decoding", []string{"kombo.decodePage"}},
	{"HTTP client", []string{"kombo.(*Client).get", "net/http.(*persistConn)", "net/http.(*Transport)"}},
	{"building the page statement", []string{"store.queueUpsert", "store.queueRejected", "store.dedupe", "store.chunk"}},
	{"pgx encoding and I/O", []string{"jackc/pgx"}},
	{"garbage collection", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"}},
	{"scheduler and network poller", []string{"runtime.mcall", "runtime.schedule", "runtime.findRunnable", "runtime.netpoll"}},
}

// pageCost is where one page's time goes on the write path, measured sequentially (fetch, then
// write, no overlap) so each part is seen alone.
type pageCost struct {
	pages                    int
	fetch, write             time.Duration // wall time per page
	writeSelfCPU, writePgCPU time.Duration // CPU per page while writing: kombosync's process, the rest of the machine (PostgreSQL)
	shares                   []float64     // of kombosync's CPU over the whole loop, by writePathParts
}

// profileWritePath fetches every recorded page and applies it with the store's ApplyPage, as a
// backfill's writer does, one after the other, under the CPU profiler.
func profileWritePath(t *testing.T, in *ingest) pageCost {
	t.Helper()
	ctx := t.Context()
	run := store.Run{ID: "profile-1", IntegrationID: integrationID, Endpoint: employees, Kind: store.KindDelta}
	_, err := in.acts.Store.StartRun(ctx, run)
	must(t, err)
	var c pageCost
	c.shares = profiled(t, writePathParts, func() {
		params := passParams
		for {
			f0 := time.Now()
			at, err := in.acts.Store.DatabaseTime(ctx)
			must(t, err)
			page, err := in.kc.ListPage(ctx, integrationID, employees, params)
			must(t, err)
			w0, self0, machine0 := time.Now(), processCPU(), machineCPU()
			_, err = in.acts.Store.ApplyPage(ctx, run, page, at)
			must(t, err)
			self := processCPU() - self0
			c.fetch += w0.Sub(f0)
			c.write += time.Since(w0)
			c.writeSelfCPU += self
			c.writePgCPU += machineCPU().cpuSince(machine0) - self
			c.pages++
			if page.Next == "" {
				break
			}
			params.Cursor = page.Next
		}
	})
	per := func(d time.Duration) time.Duration { return d / time.Duration(c.pages) }
	c.fetch, c.write, c.writeSelfCPU, c.writePgCPU = per(c.fetch), per(c.write), per(c.writeSelfCPU), per(c.writePgCPU)
	return c
}

func (c pageCost) String() string {
	msf := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("fetching a page (request, transfer, decoding) %s; writing it %s of wall time, during which "+
		"kombosync used %s of CPU and the rest of the machine %s (PostgreSQL: its backend and background writers, "+
		"on either core; /proc/stat's ticks). kombosync's CPU over the loop: %s",
		msf(c.fetch), msf(c.write), msf(c.writeSelfCPU), msf(c.writePgCPU), sharesText(writePathParts, c.shares))
}
