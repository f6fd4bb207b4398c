// Package projections builds the read side of a log in PostgreSQL: every
// sealed record as a row of events (with its ledger index and leaf hash),
// the segments it was read from, and views over them (commands with their
// results, masks, blocks, approvals, sessions). The projector follows the
// segment store itself, checking each segment as verify does before
// applying it in one transaction with its cursor; a rebuild applies the
// whole store again.
//
// The package owns the schema (migrations/) and every query over it:
// Reader (read.go) is what the API, the evidence builder and the console
// call, and no other package writes SQL against these tables (a structure
// test checks it). It may import events, ledger and compliance, and
// nothing above.
package projections
