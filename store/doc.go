// Package store is kombosync's Postgres access with pgx/v5: batched page upserts that write
// nothing for unchanged records, the change feed, watermarks, fetch-run bookkeeping and the
// webhook inbox, all in schema kombo. It is filled by the ingest-path issue.
package store
