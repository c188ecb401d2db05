// Package kombo is kombosync's client for Kombo's unified HRIS/ATS API: the endpoint catalogue
// and model→endpoint table, cursor pagination, typed errors, webhook events and signatures.
package kombo
