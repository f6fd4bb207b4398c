// Package ledger is the tamper-evident log: records that commit to the
// exact event bytes and their source, an RFC 6962 Merkle tree with
// inclusion and consistency proofs, a hash chain, C2SP signed-note
// checkpoints, sealed write-once segments behind a small SegmentStore
// interface, the single writer (Log) and the offline verifier (Verify).
//
// docs/FORMAT.md specifies every byte a verifier reads; testdata/golden
// pins them. Backends live in subpackages: file (a local directory) and s3
// (S3 with Object Lock).
package ledger
