package teststack

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Program is one run of a built program. It is killed when the test ends, and its output is
// logged then if the test failed.
type Program struct {
	Name   string
	cmd    *exec.Cmd
	output *Tail
	done   chan struct{}
	err    error
}

// Start runs a built program with only PATH and env in its environment: the developer's own
// settings must not leak in.
func Start(t testing.TB, name string, env []string, args ...string) *Program {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p := &Program{Name: name, cmd: cmd, output: NewTail(DefaultTailBytes), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	require.NoError(t, cmd.Start(), "start %s (built by teststack.Main?)", name)
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// RunToEnd runs a built program to completion (within a minute) and returns its exit code and
// output.
func RunToEnd(t testing.TB, name string, env []string, args ...string) (int, string) {
	t.Helper()
	p := Start(t, name, env, args...)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit", name)
	}
	return p.cmd.ProcessState.ExitCode(), p.Output()
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Program) Stop(t testing.TB) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop after SIGTERM", p.Name)
	}
	require.NoError(t, p.err, "%s must exit cleanly after SIGTERM", p.Name)
}

// Kill SIGKILLs the program, as a crash would, and waits until it is gone.
func (p *Program) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed when the program has exited.
func (p *Program) Done() <-chan struct{} { return p.done }

// Err is the program's exit error, once Done is closed.
func (p *Program) Err() error { return p.err }

// Output is what the program wrote to stdout and stderr (its last DefaultTailBytes).
func (p *Program) Output() string { return p.output.String() }

// OutputTruncated says whether the program wrote more than Output holds.
func (p *Program) OutputTruncated() bool { return p.output.Dropped() > 0 }

// RSSMiB is the program's resident memory now.
func (p *Program) RSSMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// CPUSeconds is the CPU time the program has used so far.
func (p *Program) CPUSeconds() float64 {
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

// DefaultTailBytes is how much of a program's output a Program keeps: every end-to-end test's
// whole log, and the last part of a benchmark's (the scale run logs hundreds of megabytes).
const DefaultTailBytes = 16 << 20

// Tail is an io.Writer keeping the last bytes written to it, safe for concurrent use.
type Tail struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	dropped int64
}

// NewTail keeps the last limit bytes (at least).
func NewTail(limit int) *Tail { return &Tail{limit: limit} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		// Drop a quarter more than needed, so that a long log is not copied on every write.
		cut := min(len(t.buf), over+t.limit/4)
		t.dropped += int64(cut)
		t.buf = append(t.buf[:0], t.buf[cut:]...)
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Dropped is how many of the first bytes written are no longer kept.
func (t *Tail) Dropped() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Env turns key, value pairs into an environment.
func Env(kv ...string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, kv[i]+"="+kv[i+1])
	}
	return out
}
