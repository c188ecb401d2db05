// Package e2e runs kombosync's programs as built binaries against a real PostgreSQL and a real
// Temporal dev server, the way they run in production.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
)

// binDir holds the programs built once for this test binary.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kombosync-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := localstack.RepoRoot()
	if err == nil {
		cmd := exec.Command("go", "build", "-race", "-o", dir+"/", "./worker", "./starter", "./cmd/webhookgw", "./cmd/komboemu")
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		err = cmd.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build programs:", err)
		os.Exit(1)
	}
	binDir = dir
	code := testenv.Run(m, testenv.Postgres|testenv.Temporal)
	os.RemoveAll(dir)
	os.Exit(code)
}

// program is one run of a built binary.
type program struct {
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	err    error
}

func start(t *testing.T, name string, env []string, args ...string) *program {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	// Only what the test passes: the developer's own settings must not leak in.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p := &program{cmd: cmd, output: new(syncBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	require.NoError(t, cmd.Start())
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output.String())
		}
	})
	return p
}

// runToEnd runs a program to completion and returns its exit code and output.
func runToEnd(t *testing.T, name string, env []string, args ...string) (int, string) {
	t.Helper()
	p := start(t, name, env, args...)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit", name)
	}
	return p.cmd.ProcessState.ExitCode(), p.output.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (p *program) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("program did not stop after SIGTERM")
	}
	require.NoError(t, p.err, "exit after SIGTERM must be clean")
}

// waitHTTP polls url until it answers want, or the program exits, or a minute passes.
func waitHTTP(t *testing.T, p *program, url string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			t.Fatalf("program exited while waiting for %s: %v", url, p.err)
		case <-ctx.Done():
			t.Fatalf("%s never answered %d (last: %s)", url, want, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func envOf(kv ...string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, kv[i]+"="+kv[i+1])
	}
	return out
}
