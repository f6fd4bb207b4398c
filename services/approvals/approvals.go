// Package approvals holds risky commands until a person decides. A proxy
// opens a request bound to the SHA-256 of the exact statement it holds and
// waits; an approver (never the requester) grants or denies it through the
// API; the decision, or the expiry, is an event in the ledger before the
// proxy acts on it. Pending requests live in the JetStream key-value bucket
// AUDIT_APPROVALS, so any proxy or API instance on the bus sees them, and a
// decision is a compare-and-swap on the request's revision: exactly one of
// grant, deny and expire wins.
//
// The bucket is working state that anyone with producer credentials can
// write, so a decision counts only if the API signed it: the API signs a
// canonical statement of each grant or denial (a C2SP signed note, the
// format of the ledger's checkpoints) with its own key, and a proxy opens
// it with the API's verifier key against the request it opened itself
// before it runs anything. A decision that does not verify is refused,
// ends the request as denied, and is recorded.
package approvals

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/internal/kvrecord"
)

// Bucket is the key-value bucket holding approval requests.
const Bucket = bus.ApprovalsBucket

// Status is where a request stands.
type Status string

// Statuses. Only Pending changes, once, to one of the others.
const (
	Pending Status = "pending"
	Granted Status = "granted"
	Denied  Status = "denied"
	Expired Status = "expired"
)

var (
	ErrNotFound = errors.New("no such approval request")
	// ErrNoBucket: the approvals bucket does not exist yet; the api role
	// creates it.
	ErrNoBucket = errors.New("the approvals bucket " + Bucket + " does not exist yet: the api role creates it")
	// ErrSelfApproval: the approver is the requester.
	ErrSelfApproval = errors.New("the requester cannot decide their own request")
	// ErrDecided: the request is no longer pending (see DecidedError).
	ErrDecided = errors.New("the request is no longer pending")
	// ErrNoKey: the broker has no key to sign (API) or check (proxy)
	// decisions with.
	ErrNoKey = errors.New("no approvals key configured")
)

// redactedPrefix begins a placeholder (detect.Placeholder).
var redactedPrefix = strings.TrimSuffix(detect.Placeholder(""), "]")

// DecidedError says how an already-decided request ended.
type DecidedError struct {
	ID     string
	Status Status
}

func (e *DecidedError) Error() string {
	return fmt.Sprintf("approval %s is already %s", e.ID, e.Status)
}
func (e *DecidedError) Unwrap() error { return ErrDecided }

// Request is one approval request as stored in the bucket.
type Request struct {
	ID        string        `json:"id"`
	Tenant    string        `json:"tenant"`
	Rule      string        `json:"rule"` // the policy rule that asked for approval
	Requester events.Actor  `json:"requester"`
	Target    events.Target `json:"target"`
	SessionID string        `json:"session_id,omitempty"`
	// Statement is the exact text held: SQL, or for HTTP the canonical
	// request line (see HTTPStatement). StatementSHA256 is over its bytes;
	// only a command with this digest may run on a grant.
	Statement       string        `json:"statement"`
	StatementSHA256 string        `json:"statement_sha256"`
	RequestedAt     time.Time     `json:"requested_at"`
	ExpiresAt       time.Time     `json:"expires_at"`
	Status          Status        `json:"status"`
	Decider         *events.Actor `json:"decider,omitempty"`
	Reason          string        `json:"reason,omitempty"`
	DecidedAt       time.Time     `json:"decided_at,omitzero"`
	// Signature is the API's signed note over DecisionText, for a grant
	// or a denial.
	Signature string `json:"signature,omitempty"`
}

// DecisionText is the statement the API signs for a decision on r: the
// request as the proxy opened it, and the decision. Canonical JSON (the
// fields in this order, Go's encoding) and a newline.
func DecisionText(r *Request) []byte {
	type who struct {
		Issuer  string `json:"issuer"`
		Subject string `json:"subject"`
	}
	var decider who
	if r.Decider != nil {
		decider = who{r.Decider.Issuer, r.Decider.Subject}
	}
	b, _ := json.Marshal(struct {
		Kind            string    `json:"kind"`
		ID              string    `json:"id"`
		Tenant          string    `json:"tenant"`
		Rule            string    `json:"rule"`
		Requester       who       `json:"requester"`
		SessionID       string    `json:"session_id"`
		StatementSHA256 string    `json:"statement_sha256"`
		Status          Status    `json:"status"`
		Decider         who       `json:"decider"`
		Reason          string    `json:"reason"`
		DecidedAt       time.Time `json:"decided_at"`
	}{"auditledger approval decision v1", r.ID, r.Tenant, r.Rule, who{r.Requester.Issuer, r.Requester.Subject}, r.SessionID,
		r.StatementSHA256, r.Status, decider, r.Reason, r.DecidedAt})
	return append(b, '\n')
}

// MaxTimeout is the longest a request may wait for a decision. The bucket
// keeps a request (with the statement it holds) only this long plus an
// hour, then drops it: the ledger has the record, and the working state
// should not keep statements — and what they may contain — for longer
// than the decision needs.
const MaxTimeout = 24 * time.Hour

// Digest is the hex SHA-256 an approval is bound to.
func Digest(statement string) string {
	h := sha256.Sum256([]byte(statement))
	return hex.EncodeToString(h[:])
}

// HTTPStatement is the text an HTTP approval is bound to: method,
// canonical request target, the headers that change how the body is read
// (Content-Type, Content-Encoding), and bodyHMAC, the body's keyed digest
// under the tenant's search key (docs/FORMAT.md §1.5) — so a grant for
// one request does not cover another, and the text, which is recorded,
// does not let the body be guessed back. An empty bodyHMAC (a gateway
// without the key) leaves the line out.
func HTTPStatement(method, target string, header http.Header, bodyHMAC string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + "\n")
	for _, name := range []string{"Content-Type", "Content-Encoding"} {
		if v := header.Values(name); len(v) > 0 {
			b.WriteString(strings.ToLower(name) + ": " + strings.Join(v, ", ") + "\n")
		}
	}
	if bodyHMAC != "" {
		b.WriteString("body-hmac: " + bodyHMAC)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Config configures a Broker.
type Config struct {
	JetStream jetstream.JetStream // required
	Emitter   *emitter.Emitter    // required: decisions are recorded with it
	Source    events.Source       // who records decision events
	// Signer signs decisions (the API role). Decide fails with ErrNoKey
	// without it.
	Signer *ledger.NoteSigner
	// Verifier checks decisions before Await reports one (the proxies):
	// the API's verifier key. Nil means Signer's, if set; Await fails
	// with ErrNoKey without either.
	Verifier *ledger.NoteVerifier
	// Create makes the bucket, or updates its configuration (the API
	// role, whose bus credentials allow it). When false the bucket must
	// exist already.
	Create bool
	// Replicas of the bucket, when creating it; zero means 1.
	Replicas int
	Logger   *slog.Logger // nil means slog.Default()
}

// Broker opens, decides and awaits approval requests.
type Broker struct {
	cfg Config
	kv  jetstream.KeyValue
}

// New creates or opens the bucket.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.JetStream == nil || cfg.Emitter == nil || cfg.Source.Kind == "" {
		return nil, errors.New("approvals: JetStream, Emitter and Source are required")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Verifier == nil && cfg.Signer != nil {
		cfg.Verifier = cfg.Signer.Verifier()
	}
	if !cfg.Create {
		kv, err := cfg.JetStream.KeyValue(ctx, Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("approvals: %w", ErrNoBucket)
		}
		if err != nil {
			return nil, fmt.Errorf("approvals: bucket %s: %w", Bucket, err)
		}
		return &Broker{cfg: cfg, kv: kv}, nil
	}
	kv, err := bus.CreateOrUpdateKeyValue(ctx, cfg.JetStream, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "auditledger approval requests (working state; the ledger holds the record)",
		History:     4, // pending, then the decision
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         MaxTimeout + time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("approvals: bucket %s: %w", Bucket, err)
	}
	return &Broker{cfg: cfg, kv: kv}, nil
}

// NewID returns a fresh request id, short enough to type.
func NewID() string {
	return "apr-" + detect.RandomHex(6)
}

// Open stores r as pending. The caller MUST have recorded
// approval.requested for it first, so no decision precedes its request in
// the ledger.
func (b *Broker) Open(ctx context.Context, r *Request) error {
	r.Status = Pending
	r.StatementSHA256 = Digest(r.Statement)
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := b.kv.Create(ctx, r.ID, data); err != nil {
		return fmt.Errorf("approvals: open %s: %w", r.ID, err)
	}
	return nil
}

func (b *Broker) get(ctx context.Context, id string) (*Request, uint64, error) {
	return kvrecord.Get[Request](ctx, b.kv, "approval", id, ErrNotFound)
}

// Get returns one request.
func (b *Broker) Get(ctx context.Context, id string) (*Request, error) {
	r, _, err := b.get(ctx, id)
	return r, err
}

// List returns the requests with the given status (all when empty),
// oldest first.
func (b *Broker) List(ctx context.Context, status Status) ([]*Request, error) {
	out, err := kvrecord.List(ctx, b.kv, "approval", ErrNotFound, func(r *Request) bool { return status == "" || r.Status == status })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y *Request) int { return x.RequestedAt.Compare(y.RequestedAt) })
	return out, nil
}

// Decide grants or denies a pending request on behalf of decider, and
// records the decision in the ledger. It fails with ErrSelfApproval
// (also when the requester's or the decider's subject is recorded only as
// a placeholder, docs/FORMAT.md §1.6), ErrNotFound or a DecidedError
// (also when the request has expired).
func (b *Broker) Decide(ctx context.Context, id string, decider events.Actor, grant bool, reason string) (*Request, error) {
	// The reason is kept in the bucket, signed and recorded: as
	// detect.FreeText keeps it, never as typed.
	reason = detect.FreeText(reason)
	r, rev, err := b.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if identity.Same(decider, r.Requester) {
		return nil, fmt.Errorf("approval %s: %w", id, ErrSelfApproval)
	}
	// A personal subject recorded as a placeholder (no key store, or it
	// failed) stands for anyone whose subject a detector matches: the
	// decider cannot be told apart from the requester, so fail closed.
	for _, who := range []struct {
		role  string
		actor events.Actor
	}{{"requester", r.Requester}, {"decider", decider}} {
		if strings.HasPrefix(who.actor.Subject, redactedPrefix) {
			return nil, fmt.Errorf("approval %s: %w: the %s's subject is recorded as %s, not by pseudonym (no key store, or it failed), so requester and decider cannot be compared",
				id, ErrSelfApproval, who.role, who.actor.Subject)
		}
	}
	if r.Status != Pending {
		return nil, &DecidedError{ID: id, Status: r.Status}
	}
	now := time.Now().UTC()
	if now.After(r.ExpiresAt) {
		return nil, &DecidedError{ID: id, Status: Expired}
	}
	if b.cfg.Signer == nil {
		return nil, fmt.Errorf("approvals: deciding %s: %w (the api role signs decisions with approvals.key)", id, ErrNoKey)
	}
	r.Status, r.Decider, r.Reason, r.DecidedAt = Denied, &decider, reason, now
	if grant {
		r.Status = Granted
	}
	sig, err := b.cfg.Signer.SignNote(DecisionText(r))
	if err != nil {
		return nil, fmt.Errorf("approvals: signing the decision on %s: %w", id, err)
	}
	r.Signature = string(sig)
	if err := b.swap(ctx, r, rev); err != nil {
		return nil, err
	}
	if err := b.record(ctx, r); err != nil {
		return r, fmt.Errorf("approval %s is %s, but its event is not stored yet (the proxy records it before acting): %w", id, r.Status, err)
	}
	return r, nil
}

// swap writes r if the stored revision is still rev.
func (b *Broker) swap(ctx context.Context, r *Request, rev uint64) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := b.kv.Update(ctx, r.ID, data, rev); err != nil {
		if cur, _, gerr := b.get(ctx, r.ID); gerr == nil && cur.Status != Pending {
			return &DecidedError{ID: r.ID, Status: cur.Status}
		}
		return fmt.Errorf("approval %s: %w", r.ID, err)
	}
	return nil
}

// Await waits until the request opened (the caller's own copy, as passed
// to Open) is decided or expires, makes sure the outcome is recorded in the
// ledger, and returns it. A grant or denial counts only if the API's
// signature covers it and the request as opened: one that does not is
// refused — the request ends denied, with the forgery recorded. If ctx
// ends first (the requester went away) the request expires. A request
// deleted or purged from the bucket before a decision ends denied, and is
// recorded so (its end must be in the ledger whoever removed it). Only a
// Granted result allows the held statement to run.
func (b *Broker) Await(ctx context.Context, opened *Request) (*Request, error) {
	if b.cfg.Verifier == nil {
		return nil, fmt.Errorf("approvals: awaiting %s: %w (proxies check decisions with approvals.vkey, the API's verifier key)", opened.ID, ErrNoKey)
	}
	id := opened.ID
	w, err := b.kv.Watch(context.WithoutCancel(ctx), id)
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var cur *Request
	var rev uint64
	var timer <-chan time.Time
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("approval %s: watch ended", id)
			}
			if e == nil {
				continue // end of the initial values
			}
			if e.Operation() != jetstream.KeyValuePut {
				return b.removed(context.WithoutCancel(ctx), opened, cur, e.Operation())
			}
			var r Request
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				return nil, fmt.Errorf("approval %s: %w", id, err)
			}
			cur, rev = &r, e.Revision()
			if r.Status == Granted || r.Status == Denied {
				if err := b.authentic(opened, cur); err != nil {
					return b.refuseForged(context.WithoutCancel(ctx), opened, cur, rev, err)
				}
			}
			if r.Status != Pending {
				return cur, b.record(context.WithoutCancel(ctx), cur)
			}
			if timer == nil {
				timer = time.After(time.Until(r.ExpiresAt))
			}
		case <-timer:
			if err := b.expire(ctx, cur, rev, "no decision before the request expired"); err != nil {
				continue // decided meanwhile: the watch delivers it
			}
			return cur, b.record(context.WithoutCancel(ctx), cur)
		case <-ctx.Done():
			if cur == nil {
				return nil, ctx.Err()
			}
			if err := b.expire(context.WithoutCancel(ctx), cur, rev, "the requester's session ended before a decision"); err != nil {
				continue
			}
			return cur, b.record(context.WithoutCancel(ctx), cur)
		}
	}
}

// authentic checks that got's decision is signed by the API and covers the
// request as opened.
func (b *Broker) authentic(opened, got *Request) error {
	text, err := b.cfg.Verifier.OpenNote([]byte(got.Signature))
	if err != nil {
		return fmt.Errorf("no valid signature by %s: %w", b.cfg.Verifier.Name(), err)
	}
	want := *opened
	want.StatementSHA256 = Digest(opened.Statement)
	want.Status, want.Decider, want.Reason, want.DecidedAt = got.Status, got.Decider, got.Reason, got.DecidedAt
	if !bytes.Equal(text, DecisionText(&want)) {
		return errors.New("the signed decision is for another request or says something else")
	}
	return nil
}

// refuseForged ends a request whose decision is not the API's: it is
// denied in the bucket (best effort: a forger may write again) and in the
// ledger, naming what was claimed, and the held command never runs.
func (b *Broker) refuseForged(ctx context.Context, opened, got *Request, rev uint64, why error) (*Request, error) {
	claimed := string(got.Status)
	if got.Decider != nil {
		claimed += " by " + got.Decider.Issuer + " " + got.Decider.Subject
	}
	b.cfg.Logger.Error("forged approval decision refused", "approval_id", opened.ID, "claimed", claimed, "err", why)
	r := *opened
	r.StatementSHA256 = Digest(opened.Statement)
	r.Status, r.Decider, r.DecidedAt, r.Signature = Denied, &system, time.Now().UTC(), ""
	r.Reason = fmt.Sprintf("refused a decision not signed by the API (claimed: %s): %v", claimed, why)
	if len(r.Reason) > 256 {
		r.Reason = r.Reason[:256]
	}
	if err := b.swap(ctx, &r, rev); err != nil {
		b.cfg.Logger.Warn("could not mark the forged approval as denied in the bucket", "approval_id", r.ID, "err", err)
	}
	return &r, b.record(ctx, &r)
}

// removed ends a request deleted or purged from the bucket before a
// decision: the held statement never runs, and the end is recorded as a
// denial by the system, since nobody's decision can be checked. The
// bucket does not say who removed it (anyone with producer credentials
// may), so the reason says that too. The bucket is left as it is: writing
// the request back would keep its statement in working state again.
func (b *Broker) removed(ctx context.Context, opened, cur *Request, op jetstream.KeyValueOp) (*Request, error) {
	r := *opened
	if cur != nil {
		r = *cur
	}
	r.StatementSHA256 = Digest(opened.Statement)
	r.Status, r.Decider, r.DecidedAt, r.Signature = Denied, &system, time.Now().UTC(), ""
	what := "deleted"
	if op == jetstream.KeyValuePurge {
		what = "purged"
	}
	r.Reason = "approval request removed from the bus (" + what + " from " + Bucket + ") before a decision; who removed it is not known"
	b.cfg.Logger.Error("pending approval request removed from the bus before a decision: denying the held statement", "approval_id", r.ID, "operation", what)
	return &r, b.record(ctx, &r)
}

func (b *Broker) expire(ctx context.Context, r *Request, rev uint64, reason string) error {
	next := *r
	next.Status, next.Reason, next.DecidedAt = Expired, reason, time.Now().UTC()
	if err := b.swap(ctx, &next, rev); err != nil {
		return err
	}
	*r = next
	return nil
}

// record stores the decision event. Its id is the same whoever records
// it, so the API's and the proxy's copies are one event in the ledger.
func (b *Broker) record(ctx context.Context, r *Request) error {
	ev, err := DecisionEvent(r, b.cfg.Source)
	if err != nil {
		return err
	}
	res, _ := b.cfg.Emitter.EmitAlone(ctx, ev) // the other party's copy is dropped by id
	if err := res.Stored(false); err != nil {
		return fmt.Errorf("approval %s: recording %s: %w", r.ID, ev.Type, err)
	}
	return nil
}

// system is the actor of an expiry, which nobody decided.
var system = events.Actor{Issuer: "auditledger", Subject: "approvals", Kind: events.Machine}

// DecisionEvent is the event recording how r ended.
func DecisionEvent(r *Request, src events.Source) (*events.Event, error) {
	var t events.Type
	actor := system
	switch r.Status {
	case Granted:
		t = events.ApprovalGranted
	case Denied:
		t = events.ApprovalDenied
	case Expired:
		t = events.ApprovalExpired
	default:
		return nil, fmt.Errorf("approval %s is %s, not decided", r.ID, r.Status)
	}
	if r.Decider != nil {
		actor = *r.Decider
	}
	payload, err := json.Marshal(map[string]any{
		"approval_id": r.ID, "rule": r.Rule, "statement_sha256": r.StatementSHA256,
		"requester":    map[string]string{"issuer": r.Requester.Issuer, "subject": r.Requester.Subject},
		"requested_at": r.RequestedAt, "reason": r.Reason, "session_id": r.SessionID,
	})
	if err != nil {
		return nil, err
	}
	target := r.Target
	return &events.Event{
		Version: events.Version, ID: "approval/" + r.ID + "/decision", Type: t, Time: r.DecidedAt,
		Tenant: r.Tenant, Source: src, Actor: actor, Target: &target, Payload: payload,
	}, nil
}

// maxStatement bounds the statement text in an approval.requested event
// (the PostgreSQL proxy refuses longer statements anyway).
const maxStatement = 32 << 10

// RequestedPayload is the payload of approval.requested for r.
func RequestedPayload(r *Request) map[string]any {
	p := map[string]any{
		"approval_id": r.ID, "rule": r.Rule, "statement": r.Statement,
		"statement_sha256": Digest(r.Statement), "expires_at": r.ExpiresAt,
	}
	if len(r.Statement) > maxStatement {
		// The digest binds the whole text; the event keeps its start.
		p["statement"] = strings.ToValidUTF8(r.Statement[:maxStatement], "")
		p["statement_bytes"] = len(r.Statement)
		p["statement_truncated"] = true
	}
	return p
}
