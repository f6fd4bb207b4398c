// Package bench holds the benchmarks behind `auditledger bench`: the
// ledger's append, verify and proofs; ingestion through JetStream; the
// PostgreSQL proxy under pgbench; the ways of storing events on the bus;
// the read path; evidence bundles; and the SIEM forwarders. Each runs
// real components (an embedded NATS server, a local or S3 store, a real
// PostgreSQL) and prints a table; docs/PERFORMANCE.md keeps the results.
package bench
