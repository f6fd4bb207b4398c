// Package gateway is the core every gateway records, holds and judges
// through; a gateway (services/pgproxy, services/httpproxy) keeps only
// its protocol.
//
// The core owns what every gateway must do the same way:
//
//   - identity on the session: user, groups, tenant and how they were
//     established (an OIDC token, an SSH certificate, a Kubernetes
//     exec-credential token);
//   - the event envelope, the session's sequence (session_seq from 1, so
//     a gap shows) and event ids (<session id>.<seq>);
//   - the recording rule: every string of every payload passes the
//     built-in detectors before it leaves the gateway, whatever the
//     policy says, and what they find is replaced by [REDACTED:<detector>]
//     and counted in the payload's "redacted" member, each value by its
//     keyed search digest under the tenant's key (scrub.go, keys.go);
//   - record or refuse: Record returns only once the bus has stored the
//     event, and its error means the command does not run; Command
//     applies the durability mode (before-forward, before-response);
//     RecordAsync records what is owed for what already happened;
//   - the approval hold (Hold): approval.requested recorded, a signed
//     decision awaited, bound to the exact text;
//   - policy loading (LoadPolicy), the policy's reference on every event
//     and policy.loaded before the gateway serves;
//   - streamed sessions (Stream: bounded chunks of a byte stream) and a
//     journal of open sessions, so a session a crash left open is
//     recorded as ended, lost, at the next start;
//   - metrics of what was recorded and how long each record took.
//
// A gateway builds one Gateway from its Config, calls Start before it
// serves, and opens a Session per client session.
package gateway
