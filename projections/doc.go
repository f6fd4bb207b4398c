// Package projections will build the read side from the AUDIT_LEDGER
// stream: PostgreSQL views for queries and signed ISO 27001 evidence
// bundles. It may import events, ledger and compliance, and nothing above.
package projections
