// Package activities holds kombosync's Temporal activities as methods of structs that hold their
// dependencies (the Kombo client, the store): FetchEndpoint pages an endpoint into Postgres with
// heartbeated cursors, and the sweep and status activities of the full pass. It is filled by the
// ingest-path issue; the worker registers nothing from it until then.
package activities
