//go:build bench

// Package bench measures kombosync against the limits of the machine it runs on: make bench.
// It is a test binary behind the bench build tag, so go test ./... never runs it, and it runs on
// the same harness as the end-to-end tests (internal/teststack), with two differences: its
// PostgreSQL cluster keeps the durable defaults (fsync on, as in production; the tests' cluster
// runs without), and the programs are built without the race detector.
package bench

import (
	"testing"

	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/internal/teststack"
)

func TestMain(m *testing.M) {
	teststack.Main(m, teststack.MainOptions{Services: testenv.DurablePostgres | testenv.Temporal})
}
