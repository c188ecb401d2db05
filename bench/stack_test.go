//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

const (
	benchAPIKey = "bench-api-key"
	benchSecret = "bench-webhook-secret"
)

// program is a built worker or gateway, killed when the test ends.
type program struct {
	cmd *exec.Cmd
	out *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the tail only: the scale run logs a lot
		l.b.Reset()
	}
	return l.b.Write(p)
}

func start(t *testing.T, name string, env ...string) *program {
	t.Helper()
	cmd := exec.Command(filepath.Join(infra.binDir, name))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=warn"}, env...)
	p := &program{cmd: cmd, out: new(lockedBuffer)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			p.out.mu.Lock()
			t.Logf("%s output:\n%s", name, p.out.b.String())
			p.out.mu.Unlock()
		}
	})
	return p
}

// rssMiB is the process's resident memory.
func (p *program) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// stack is the gateway and worker programs on a fresh database, an in-process emulator sending
// signed webhooks to the gateway, on a task queue of its own.
type stack struct {
	db, taskQueue, gatewayURL, metricsURL string
	pool                                  *pgxpool.Pool
	tc                                    client.Client
	emu                                   *komboemu.Emulator
	worker, gateway                       *program
}

type stackOptions struct {
	name      string
	worker    bool
	workerEnv []string
	window    time.Duration // the emulator's data-changed coalescing
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{db: database(t, o.name), taskQueue: "bench-" + o.name}
	var err error
	s.pool, err = pgxpool.New(t.Context(), s.db)
	must(t, err)
	t.Cleanup(s.pool.Close)
	s.tc, err = client.Dial(client.Options{HostPort: infra.temporalAddress, Logger: quiet()})
	must(t, err)
	t.Cleanup(s.tc.Close)

	gwPort, err := localstack.FreePort()
	must(t, err)
	s.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	common := []string{"DATABASE_URL=" + s.db, "TEMPORAL_ADDRESS=" + infra.temporalAddress, "TEMPORAL_TASK_QUEUE=" + s.taskQueue}
	s.gateway = start(t, "webhookgw", append(common, "KOMBO_WEBHOOK_SECRET="+benchSecret,
		fmt.Sprintf("WEBHOOK_LISTEN_ADDR=127.0.0.1:%d", gwPort))...)
	waitReady(t, s.gatewayURL+"/readyz")

	if o.window == 0 {
		o.window = time.Second
	}
	s.emu = komboemu.New(komboemu.Options{APIKey: benchAPIKey, Seed: 3, Webhooks: komboemu.WebhookOptions{
		URL: s.gatewayURL + "/webhooks/kombo", Secret: benchSecret, Window: o.window}})
	emuSrv := httptest.NewServer(s.emu.Handler())
	t.Cleanup(func() { emuSrv.Close(); s.emu.Close() })

	if o.worker {
		mPort, err := localstack.FreePort()
		must(t, err)
		s.metricsURL = fmt.Sprintf("http://127.0.0.1:%d", mPort)
		s.worker = start(t, "worker", append(append(common, "KOMBO_API_KEY="+benchAPIKey, "KOMBO_BASE_URL="+emuSrv.URL+"/v1",
			fmt.Sprintf("METRICS_LISTEN_ADDR=127.0.0.1:%d", mPort)), o.workerEnv...)...)
		waitReady(t, s.metricsURL+"/readyz")
	}
	return s
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // polling a program that is starting
	}
	t.Fatalf("%s not ready within a minute", url)
}

// waitFor polls cond until it is true or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(200 * time.Millisecond) // polling the system under measurement
	}
}

// status asks an integration's workflow for its status.
func (s *stack) status(ctx context.Context, id string) (workflows.Status, error) {
	var st workflows.Status
	v, err := s.tc.QueryWorkflow(ctx, workflows.IntegrationWorkflowID(id), "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// cpuSeconds is the CPU time the process has used.
func (p *program) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 per second on Linux
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
