package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/approvals"
)

// Hold is a command held for an approval: the rule that holds it, and the
// exact text an approver decides on.
type Hold struct {
	Rule    string        // the policy rule's id
	Reason  string        // the rule's reason, recorded with the request
	Timeout time.Duration // how long the command waits for a decision
	// Statement is the text held. What the detectors find in it is
	// replaced (detect.Scrub) before it leaves the gateway: the approver
	// decides on, and the decision is bound to, the scrubbed text, while
	// the gateway runs the exact command it held in memory.
	Statement string
	// Redacted lists what the gateway replaced in Statement itself (SQL
	// literals found by its parser), so the record counts it; paths are
	// "/statement".
	Redacted []Redaction
	// Notify, if set, tells the client that its command is held (a
	// PostgreSQL notice), once the request is open and before waiting.
	Notify func(r *approvals.Request) error
}

// ErrNoApprovals: a command needs an approval, and the gateway has no
// approvals broker to ask.
var ErrNoApprovals = errors.New("no approvals broker is configured")

// Hold records approval.requested (stored, or the command is refused),
// opens the request and waits for a signed decision. ok means an approver
// granted exactly h.Statement; otherwise why says what was decided. err
// means the request could not be recorded, opened or awaited: the command
// MUST NOT run.
func (s *Session) Hold(ctx context.Context, h Hold) (ok bool, why string, err error) {
	b := s.g.cfg.Approvals
	if b == nil {
		return false, "", ErrNoApprovals
	}
	now := time.Now().UTC()
	var found []Finding
	held, _ := ScrubFound(h.Statement, &found)
	r := &approvals.Request{ID: approvals.NewID(), Tenant: s.tenant, Rule: h.Rule, Requester: s.actor(ctx), // the e-mail sealed: the bucket keeps none in clear
		Target: s.scrubbedTarget(), SessionID: s.id, Statement: held, RequestedAt: now, ExpiresAt: now.Add(h.Timeout)}
	payload := approvals.RequestedPayload(r)
	payload["reason"] = h.Reason
	AddRedactions(payload, h.Redacted...)
	AddRedactions(payload, Found("/statement", found)...)
	if _, err := s.Record(ctx, events.ApprovalRequested, payload); err != nil {
		return false, "", fmt.Errorf("approval request: %w", err)
	}
	if err := b.Open(ctx, r); err != nil {
		return false, "", fmt.Errorf("approval %s: %w", r.ID, err)
	}
	s.g.cfg.Logger.Info("command held for approval", "approval_id", r.ID, "rule", h.Rule, "session_id", s.id, "requester", r.Requester.Subject)
	if h.Notify != nil {
		if err := h.Notify(r); err != nil {
			return false, "", err
		}
	}
	d, err := b.Await(ctx, r)
	if err != nil {
		return false, "", fmt.Errorf("approval %s: %w", r.ID, err)
	}
	switch d.Status {
	case approvals.Granted:
		if d.StatementSHA256 != approvals.Digest(held) { // the broker checks it too
			return false, "approval " + r.ID + " is bound to another command", nil
		}
		return true, "", nil
	case approvals.Denied:
		return false, fmt.Sprintf("approval %s denied by %s: %s", r.ID, d.Decider.Subject, d.Reason), nil
	}
	return false, fmt.Sprintf("approval %s expired: %s", r.ID, d.Reason), nil
}
