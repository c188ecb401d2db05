package activities_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kombosync/kombosync/komboemu"
)

// BenchmarkFullPass measures a full pass of employees (nested records, emulator on loopback)
// into a fresh database, and an unchanged re-fetch of the same records. The latency variant
// shows the fetch of the next page overlapping the write of the current one: its time should
// stay close to pages × latency. Run: go test -run '^$' -bench FullPass -benchtime 1x ./activities
func BenchmarkFullPass(b *testing.B) {
	for _, c := range []struct {
		records int
		latency time.Duration
	}{{20000, 0}, {5000, 200 * time.Millisecond}} {
		b.Run(fmt.Sprintf("employees=%d/latency=%s", c.records, c.latency), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				h := setup(b, c.records)
				h.emu.SetFaults(komboemu.Faults{Latency: c.latency})
				b.StartTimer()
				start := time.Now()
				res, err := h.fetch(b, input(employees, "full", nil))
				if err != nil {
					b.Fatal(err)
				}
				first := time.Since(start)
				b.ReportMetric(float64(res.Counts.Fetched)/first.Seconds(), "records/s")
				if c.latency > 0 {
					bound := time.Duration(res.Counts.Pages) * c.latency
					b.ReportMetric(first.Seconds()/bound.Seconds(), "x-latency-bound")
					continue
				}
				start = time.Now()
				again, err := h.fetch(b, input(employees, "again", nil))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds()/first.Seconds(), "refetch-time-ratio")
				b.ReportMetric(float64(again.Counts.Written()), "refetch-rows-written")
			}
		})
	}
}
