//go:build bench

package bench

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/komboemu"
)

// stack is a teststack.Stack with what only the benchmarks measure.
type stack struct{ *teststack.Stack }

type stackOptions struct {
	worker    bool
	workerEnv []string
	window    time.Duration // the emulator's data-changed coalescing; 1 s when zero
	// programEnv adds to the settings of every program, the starter's too.
	programEnv []string
}

// newStack starts the gateway (and the worker when asked) with the programs' default settings,
// logging warnings only, the worker's metrics served.
func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.window == 0 {
		o.window = time.Second
	}
	s := teststack.New(t, teststack.Options{Seed: 3, LogLevel: "warn", NoWorker: !o.worker, WorkerMetrics: o.worker,
		WorkerEnv: o.workerEnv, ProgramEnv: o.programEnv, Webhooks: komboemu.WebhookOptions{Window: o.window}})
	return &stack{s}
}

// cpuSnapshot is the machine's CPU time so far (/proc/stat), busy and in all.
type cpuSnapshot struct{ busy, total float64 }

func machineCPU() cpuSnapshot {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSnapshot{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var s cpuSnapshot
	for k, v := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		s.total += n
		if k != 3 && k != 4 { // idle, iowait
			s.busy += n
		}
	}
	return s
}

// busyShareSince is the share of the machine's CPU time in use between before and s.
func (s cpuSnapshot) busyShareSince(before cpuSnapshot) float64 {
	return (s.busy - before.busy) / max(1, s.total-before.total)
}

// cpuSince is the machine's CPU time in use between before and s, in every core (/proc/stat counts
// in ticks of 1/100 s, so short intervals add up right only in sums).
func (s cpuSnapshot) cpuSince(before cpuSnapshot) time.Duration {
	return time.Duration((s.busy - before.busy) * float64(time.Second) / 100)
}
