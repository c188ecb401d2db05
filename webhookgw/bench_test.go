package webhookgw_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/webhookgw"
)

// BenchmarkReceive posts signed data-changed webhooks for 500 integrations to the gateway, 32 at
// a time, against the real PostgreSQL and dev server, and reports this process's CPU per webhook
// (gateway and HTTP client both). It is the profile's harness for the gateway's own work:
//
//	go test -run '^$' -bench Receive -cpuprofile cpu.out ./webhookgw && go tool pprof -top webhookgw.test cpu.out
func BenchmarkReceive(b *testing.B) {
	pool, err := pgxpool.New(b.Context(), testenv.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	// The gateway as the program runs it: its client options, SDK metrics, JSON log lines.
	devNull, err := os.Create(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	logger := slog.New(slog.NewJSONHandler(devNull, nil))
	reg := prometheus.NewRegistry()
	tc, err := service.DialTemporal(b.Context(), &config.Config{TemporalAddress: testenv.TemporalAddress(b),
		TemporalNamespace: config.DefaultTemporalNamespace}, logger, reg)
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	g, err := webhookgw.New(webhookgw.Options{Secrets: []string{secret}, Store: store.New(pool), Logger: logger,
		Temporal: tc, TaskQueue: testenv.TaskQueue(b), Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	run := time.Now().UnixNano()
	var next atomic.Int64
	b.SetParallelism(16) // 16 per GOMAXPROCS: 32 senders on this 2-core machine, as bench figure 5
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			body := dataChanged(fmt.Sprintf("bench-%d-%d", run, i), fmt.Sprintf("personio:bench-%d", i%500))
			req, _ := http.NewRequest(http.MethodPost, srv.URL+webhookgw.Path, bytes.NewReader(body))
			req.Header.Set(kombo.SignatureHeader, kombo.Sign(secret, body))
			resp, err := httpc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("answered %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
