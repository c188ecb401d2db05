// Package localstack runs kombosync's local dependencies without Docker: a throwaway PostgreSQL
// cluster made with the machine's initdb/pg_ctl, the Temporal CLI dev server, and the project's
// own programs as detached processes with pid files. The dev stack (cmd/devstack) and the test
// harness (internal/testenv) both use it.
package localstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL cluster kept in Root: the cluster in Root/data, its log in
// Root/postgres.log. It listens on 127.0.0.1:Port only (no Unix socket) and trusts local
// connections: it is for development and tests, never for production data.
type Postgres struct {
	Root      string
	Port      int
	Superuser string // the cluster's superuser role; "kombo" when empty
	// Ephemeral turns durability off (fsync, full_page_writes, synchronous_commit) for speed:
	// a server crash may lose the last commits (not yet flushed from the WAL buffers), an OS crash
	// more. For tests that never crash the server.
	Ephemeral bool
}

func (p *Postgres) superuser() string {
	if p.Superuser == "" {
		return "kombo"
	}
	return p.Superuser
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Root, "data") }

// LogFile is the server's log.
func (p *Postgres) LogFile() string { return filepath.Join(p.Root, "postgres.log") }

// URL is the connection string of database db.
func (p *Postgres) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(p.superuser()),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Start creates the cluster if Root holds none, and starts it unless it already runs.
// It is safe to call again.
func (p *Postgres) Start(ctx context.Context) error {
	bin, err := postgresBinDir()
	if err != nil {
		return err
	}
	owner, err := clusterOwner()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.Root, 0o755); err != nil {
		return err
	}
	if err := owner.chown(p.Root); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(p.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		args := []string{"-D", p.dataDir(), "-U", p.superuser(), "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"}
		if p.Ephemeral {
			args = append(args, "--no-sync")
		}
		if out, err := owner.run(ctx, filepath.Join(bin, "initdb"), args...); err != nil {
			return fmt.Errorf("initdb %s: %w\n%s", p.dataDir(), err, out)
		}
	}
	if p.running(ctx, bin, owner) {
		return p.waitReady(ctx)
	}
	opts := []string{
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
	}
	if p.Ephemeral {
		opts = append(opts, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	out, err := owner.run(ctx, filepath.Join(bin, "pg_ctl"), "start", "-w", "-t", "60",
		"-D", p.dataDir(), "-l", p.LogFile(), "-o", strings.Join(opts, " "))
	if err != nil {
		tail, _ := os.ReadFile(p.LogFile())
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, lastLines(tail, 15))
	}
	return p.waitReady(ctx)
}

// Stop shuts the cluster down (fast mode). Stopping a stopped cluster is not an error.
func (p *Postgres) Stop(ctx context.Context) error { return p.stop(ctx, "fast") }

// Crash stops the cluster the way a crash would (immediate mode: no checkpoint, every
// connection cut); the next Start recovers from the WAL. For tests of what survives.
func (p *Postgres) Crash(ctx context.Context) error { return p.stop(ctx, "immediate") }

func (p *Postgres) stop(ctx context.Context, mode string) error {
	bin, err := postgresBinDir()
	if err != nil {
		return err
	}
	owner, err := clusterOwner()
	if err != nil {
		return err
	}
	if !p.running(ctx, bin, owner) {
		return nil
	}
	if out, err := owner.run(ctx, filepath.Join(bin, "pg_ctl"), "stop", "-w", "-m", mode, "-D", p.dataDir()); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w\n%s", mode, err, out)
	}
	return nil
}

// Running reports whether the cluster's postmaster runs.
func (p *Postgres) Running(ctx context.Context) bool {
	bin, err := postgresBinDir()
	if err != nil {
		return false
	}
	owner, err := clusterOwner()
	if err != nil {
		return false
	}
	return p.running(ctx, bin, owner)
}

func (p *Postgres) running(ctx context.Context, bin string, owner osUser) bool {
	if _, err := os.Stat(filepath.Join(p.dataDir(), "postmaster.pid")); err != nil {
		return false
	}
	_, err := owner.run(ctx, filepath.Join(bin, "pg_ctl"), "status", "-D", p.dataDir())
	return err == nil
}

func (p *Postgres) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres on port %d not ready: %w", p.Port, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CreateDatabase creates database name unless it exists.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "select exists(select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	return err
}

// postgresBinDir finds the directory of initdb and pg_ctl: on PATH, or Debian's
// /usr/lib/postgresql/<major>/bin (newest first).
func postgresBinDir() (string, error) {
	if path, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(path), nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package (apt-get install postgresql)")
	}
	best, bestMajor := "", -1
	for _, m := range matches {
		major, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if major > bestMajor {
			best, bestMajor = m, major
		}
	}
	return filepath.Dir(best), nil
}

// osUser is who runs the cluster: PostgreSQL refuses to run as root, so root hands it to the
// postgres user; anyone else runs it as themselves.
type osUser struct {
	cred *syscall.Credential // nil: the current user
}

func clusterOwner() (osUser, error) {
	if os.Geteuid() != 0 {
		return osUser{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return osUser{}, errors.New("running as root needs a postgres user to own the cluster (apt-get install postgresql creates it)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

func (o osUser) chown(path string) error {
	if o.cred == nil {
		return nil
	}
	return os.Chown(path, int(o.cred.Uid), int(o.cred.Gid))
}

func (o osUser) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred, Setsid: true}
	cmd.Dir = "/"
	// pg_ctl start leaves the server holding inherited pipes; a file keeps it from blocking.
	out, err := os.CreateTemp("", "kombosync-pgctl-*.out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return bytes.TrimSpace(b), err
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
