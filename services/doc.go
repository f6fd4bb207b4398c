// Package services holds, in its subpackages, the protocol proxies
// (pgproxy for the PostgreSQL wire protocol, httpproxy for HTTP) that
// produce events, the authenticated HTTP API (api), approvals, identity,
// masking and the development OpenID provider. The API maps errors to
// HTTP status in one place, by their ledger and events sentinels.
package services
