// Package services will hold the protocol proxies (PostgreSQL wire, HTTP)
// that produce events and the authenticated HTTP API. Errors are mapped to
// HTTP status here, in one place, by their ledger and events sentinels.
package services
