// Package kombosync keeps a company's PostgreSQL database in step with the HRIS and ATS data
// that Kombo holds for each of its customers, as a durable workflow application on Temporal.
// See README.md; the programs are worker/, starter/, cmd/webhookgw and cmd/komboemu.
package kombosync
