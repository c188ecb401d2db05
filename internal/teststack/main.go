// Package teststack runs kombosync the way it runs in production, for the end-to-end tests (e2e/)
// and the benchmarks (bench/): the programs built once per test binary and started as processes
// (each keeping a tail of its log), on a fresh database of the testenv cluster and the testenv
// Temporal dev server, with the Kombo emulator in the test process, over HTTP. It also holds the
// waiting helpers both need: for an HTTP answer, and for a condition.
package teststack

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
)

// MainOptions say how Main builds the programs and what testenv starts.
type MainOptions struct {
	// Race builds the programs with the race detector (end-to-end tests); benchmarks build
	// without it.
	Race bool
	// Services testenv starts; Postgres and Temporal when zero.
	Services testenv.Service
}

// binDir holds the programs Main built for this test binary.
var binDir string

// programs are the packages Main builds, named by their binaries.
var programs = []string{"./worker", "./starter", "./cmd/webhookgw", "./cmd/komboemu", "./cmd/backoffice"}

// Main builds the programs, starts the services, runs the tests and exits. With -short it runs
// nothing: these tests start whole programs and take minutes, and -short is the fast inner loop.
func Main(m *testing.M, o MainOptions) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipped: end-to-end tests do not run with -short")
		os.Exit(0)
	}
	if o.Services == 0 {
		o.Services = testenv.Postgres | testenv.Temporal
	}
	dir, err := build(o.Race)
	if err != nil {
		fmt.Fprintln(os.Stderr, "teststack: build programs:", err)
		os.Exit(1)
	}
	binDir = dir
	code := testenv.Run(m, o.Services)
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(race bool) (string, error) {
	root, err := localstack.RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "kombosync-programs-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + "/"}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, programs...)...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}
