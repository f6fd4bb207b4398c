// Package services holds, in its subpackages, what stands between people
// or agents and the systems they reach, and what serves the ledger's
// readers:
//
//   - gateway: the core every gateway records, holds and judges through —
//     identity on the session, the event envelope, session sequence and
//     ids, record or refuse with the durability modes, the approval hold,
//     policy loading (policy.loaded, the policy's reference on every
//     event), streamed sessions and the journal that ends a session a
//     crash left open, and just-in-time access (a session admitted only
//     inside a live grant, ended when the grant ends);
//   - pgproxy (the PostgreSQL wire protocol) and httpproxy (HTTP): the
//     gateways, each a protocol on the core;
//   - approvals: held commands and their signed decisions, on the bus;
//   - access: just-in-time access requests, their signed grants, and the
//     watcher gateways follow them with;
//   - identity: OIDC tokens (and development users) to actors;
//   - mask: value detectors and mask methods the gateways apply;
//   - api: the authenticated HTTP API (queries, proofs, approvals,
//     access requests, evidence), which maps errors to HTTP status in one place (status in
//     api.go) by their kind;
//   - siem: renderings of sealed records (JSON, OCSF, CEF) and the
//     forwarders that deliver them;
//   - telemetry: the metrics the gateways and the API publish;
//   - internal/policyfile: what the gateways' policy files share (strict
//     decoding, versions, the description of a loaded policy).
package services
