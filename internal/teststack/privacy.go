package teststack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// FindInKombo reads every row of every table of schema kombo as text and returns where each of
// the values appears ("kombo.changes: …"); nil when none does.
func (s *Stack) FindInKombo(t testing.TB, values ...string) []string {
	t.Helper()
	return FindInSchema(t, s.Pool, values...)
}

// FindInSchema is FindInKombo on any pool holding schema kombo.
func FindInSchema(t testing.TB, pool *pgxpool.Pool, values ...string) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = 'kombo' and c.relkind = 'r' order by 1`) // partitions, not their parent: each row once
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "hris_employees")
	var found []string
	for _, table := range tables {
		rows, err := pool.Query(t.Context(), fmt.Sprintf(`select t::text from kombo.%q t`, table))
		require.NoError(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, text := range texts {
			for _, v := range values {
				if strings.Contains(text, v) {
					found = append(found, fmt.Sprintf("kombo.%s: %q", table, v))
				}
			}
		}
	}
	return found
}
