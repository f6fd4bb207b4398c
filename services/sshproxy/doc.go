// Package sshproxy is the SSH gateway: the stock ssh, scp and sftp
// clients reach SSH servers through it, and it records, holds and
// refuses through the gateway core (services/gateway) as the PostgreSQL
// and HTTP gateways do.
//
// Clients log in with short-lived user certificates from the gateway's
// user CA, issued in exchange for an OIDC token (CertHandler, Login); the
// gateway presents a host certificate from its host CA, so clients trust
// it through an @cert-authority line and never on first use. A client
// names the account and the target as its user name, LOGIN+TARGET; the
// gateway logs in to the target with a certificate from a separate target
// CA made for that connection alone (key id: the OIDC subject), after
// checking the target's host key against the one pinned for it.
//
// Each session channel is a session of the core: session.started with
// the client, the pty and the environment it asked for; each exec command
// judged by a POSIX shell parser (mvdan.cc/sh) and recorded as
// command.executed, or command.blocked; the terminal stream, both ways,
// as bounded session.output chunks that pass the detectors; window
// changes; session.ended with the exit status, the bytes each way and
// the keyed digest of the output. SFTP (and scp, which uses it) is served
// by the gateway and relayed one file operation at a time, each recorded
// with its path, size and keyed digest.
//
// The policy's limits (max_duration, idle_timeout, max_sessions) and the
// user certificate's expiry are measured by Config.Clock; a connection
// they end tells the client why on each session's stderr. User
// certificates are checked against an OpenSSH KRL (krl.go), read again
// when its file changes; a new version closes the open connections it
// revokes. The user CA rotates with an overlap (RotateUserCA), after
// which its connections close; the host CA too (RotateHostCA: the
// known_hosts lines handed out list both CAs during the overlap); the
// target CA in two steps (StageTargetCA, ActivateTargetCA).
package sshproxy
