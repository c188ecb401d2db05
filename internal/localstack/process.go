package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a program started detached from its parent (own session, output to a log file,
// pid in a file), so it outlives the command that started it; StateDir holds name.pid and
// name.log.
type Process struct {
	Name     string
	Path     string
	Args     []string
	Env      []string // added to the parent's environment
	StateDir string
}

func (p *Process) pidFile() string { return filepath.Join(p.StateDir, p.Name+".pid") }

// LogFile is where the process writes stdout and stderr.
func (p *Process) LogFile() string { return filepath.Join(p.StateDir, p.Name+".log") }

// Pid returns the pid of the running process, or 0.
func (p *Process) Pid() int {
	b, err := os.ReadFile(p.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0
	}
	// A recycled pid would belong to another program: check it is still ours. The programs we
	// start run as us, so their exe link is readable.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != filepath.Base(p.Path) {
		return 0
	}
	return pid
}

// Start launches the process unless it already runs; it reports whether it launched it.
func (p *Process) Start() (bool, error) {
	if p.Pid() != 0 {
		return false, nil
	}
	if err := os.MkdirAll(p.StateDir, 0o755); err != nil {
		return false, err
	}
	log, err := os.OpenFile(p.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer log.Close()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start %s: %w", p.Name, err)
	}
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return true, err
	}
	// Reap it if it exits while we still run, so a quick crash is seen as not alive.
	go cmd.Wait() //nolint:errcheck // exit status is in the log
	return true, nil
}

// Stop sends SIGTERM, waits up to grace for the exit, then SIGKILLs.
func (p *Process) Stop(grace time.Duration) error {
	pid := p.Pid()
	defer os.Remove(p.pidFile())
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// Field 3 is the state; it follows the parenthesised command name.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// WaitTCP waits until something accepts connections on addr, or the process dies, or ctx ends.
func WaitTCP(ctx context.Context, addr string, p *Process) error {
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if p != nil && p.Pid() == 0 {
			return fmt.Errorf("%s exited; see %s", p.Name, p.LogFile())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: nothing listens on %s: %w", p.Name, addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FreePort asks the kernel for a free TCP port on the loopback interface.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RepoRoot finds the module root (the folder holding go.mod) from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// TemporalCLI is the pinned Temporal CLI built into bin/ by `make bin/temporal`.
func TemporalCLI(root string) (string, error) {
	path := filepath.Join(root, "bin", "temporal")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s is missing: run `make bin/temporal` (builds the pinned Temporal CLI v1.5.1 from the Go module proxy)", path)
	}
	return path, nil
}
