package pgproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// command is a recorded statement waiting for its result.
type command struct {
	id     string // event id of its command.executed
	simple bool   // simple protocol: one Query may yield several results
	// refusal, when set, is why the statement was not sent: the server
	// got refusedSQL in its place, and its error is replaced with this
	// message. Such a command gets no digest.
	refusal string
	rows    int64
	bytes   int64
	// sum is the keyed digest of the result (gateway.ResponseLabel); nil
	// without the tenant's key, or for a refused command.
	sum     *gateway.KeyedSum
	columns []column        // of the current result
	masked  map[maskKey]int // values masked in the current result
	// copyIn digests the COPY data a client sends for this statement.
	copyIn copyDigest
	// maskRef is the mask rule of a column the statement refers to
	// anywhere (withhold.go); nil when it refers to none.
	maskRef *MaskRule
	// stored delivers the outcome of storing the command's record, in
	// before-response mode; nil when it was stored before forwarding.
	stored <-chan error
	// An Execute's columns are looked up when its first row arrives: by
	// then the server has answered every Describe sent before it, in a
	// pipeline too, and not yet any sent after it.
	lazy          bool
	stmt, portal  string
	resultFormats []int16
	// sent is when the statement was written to the server (unix
	// nanoseconds), while Config.Stages times statements; the first
	// answer takes it.
	sent atomic.Int64
}

// copyDigest counts and digests COPY FROM STDIN data; the client's side
// writes it, the upstream's side reads it when the COPY completes. The
// digest is keyed (gateway.CopyLabel), as the data may hold personal
// data: none without the tenant's key.
type copyDigest struct {
	mu      sync.Mutex
	started bool
	n       int64
	bytes   int64
	sum     *gateway.KeyedSum
}

// add counts b; newSum starts the digest at the first message.
func (d *copyDigest) add(b []byte, newSum func() *gateway.KeyedSum) {
	d.mu.Lock()
	if !d.started {
		d.started, d.sum = true, newSum()
	}
	d.n++
	d.bytes += int64(len(b))
	d.sum.Write(b)
	d.mu.Unlock()
}

// take returns what was counted and resets it; ok is false if nothing
// was. sum is empty without the key.
func (d *copyDigest) take() (n, bytes int64, sum string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		return 0, 0, "", false
	}
	n, bytes, sum = d.n, d.bytes, d.sum.Digest()
	d.n, d.bytes, d.sum, d.started = 0, 0, nil, false
	return n, bytes, sum, true
}

// column is a result column and the mask rule its name matches.
type column struct {
	name   string
	text   bool // a text-like type: masked values stay valid in either format
	oid    uint32
	format int16 // 0 text, 1 binary
	rule   *MaskRule
}

type maskKey struct {
	rule   *MaskRule
	column string
}

// textTypes are the OIDs of text-like types (text, varchar, bpchar, name,
// unknown), whose binary and text encodings are the same bytes.
var textTypes = map[uint32]bool{25: true, 1043: true, 1042: true, 19: true, 705: true}

const blockedStatement = "\x00blocked"

// sqlPrepared tracks statements prepared in SQL (PREPARE name AS …) by
// the text of the query that prepared them, so an EXECUTE is judged by
// what it runs. Entries are made when the PREPARE passed the policy and
// forgotten at DEALLOCATE; an EXECUTE of a name not here is refused.
type sqlPrepared struct {
	mu sync.Mutex
	m  map[string]string
}

func (p *sqlPrepared) note(sql string, a *analysis) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]string{}
	}
	if a.deallocAll {
		clear(p.m)
	}
	for _, n := range a.deallocates {
		delete(p.m, n)
	}
	for _, n := range a.prepares {
		p.m[n] = sql
	}
}

// effective returns what the policy judges sql by: sql itself and, for
// each statement it EXECUTEs, the query that prepared it; the text an
// approval of it is bound to; or why it is refused.
func (p *sqlPrepared) effective(sql string) (judged []string, held, why string) {
	a := analyze(sql)
	if a.err != nil || len(a.executes) == 0 {
		return []string{sql}, sql, ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	judged, held = []string{sql}, sql
	for _, n := range a.executes {
		prep, ok := p.m[n]
		if !ok {
			return nil, "", fmt.Sprintf("EXECUTE of %q refused: the audit proxy has not seen it prepared in this session", n)
		}
		judged = append(judged, prep)
		held += "\n-- " + n + " prepared as: " + prep
	}
	return judged, held, ""
}

// denied and needsApproval apply the policy to every text in judged.
func (s *session) denied(judged []string) *DenyRule {
	for _, t := range judged {
		if r := s.pol.Denied(t); r != nil {
			return r
		}
		if r := s.sideEffects(t); r != nil {
			return r
		}
	}
	return nil
}

func (s *session) needsApproval(judged []string) *ApprovalRule {
	for _, t := range judged {
		if r := s.pol.NeedsApproval(t); r != nil {
			return r
		}
	}
	return nil
}

// heldText is what an approval of one execution of p is bound to: the
// statement and the digest of its parameters (and their values, when the
// policy records them), so a grant covers this execution only.
func (p portal) heldText() string {
	t := p.sql + "\n-- parameters: " + strconv.Itoa(p.nparams) + ", " + p.paramsDigest
	if p.params != nil {
		if b, err := json.Marshal(p.params); err == nil {
			t += "\n-- values: " + string(b)
		}
	}
	return t
}

// withFormats sets the result format of each column from Bind's codes: a
// statement's RowDescription says text for all, as formats are chosen at
// Bind (none: all text; one: all that one; else one per column).
func withFormats(cols []column, codes []int16) []column {
	if len(codes) == 0 || cols == nil {
		return cols
	}
	out := slices.Clone(cols)
	for i := range out {
		switch {
		case len(codes) == 1:
			out[i].format = codes[0]
		case i < len(codes):
			out[i].format = codes[i]
		}
	}
	return out
}

// stmtTable tracks the session's prepared statements as the server
// confirms them, so what is recorded for an Execute is the text the server
// will run. A Parse is pending until its ParseComplete; a Parse the server
// refused (a duplicate name, a syntax error) never becomes confirmed and
// is forgotten at the next ReadyForQuery, so it cannot stand in for the
// statement the server keeps under that name.
type stmtTable struct {
	mu        sync.Mutex
	confirmed map[string]string
	pending   []pendingParse
}

type pendingParse struct{ name, query string }

func newStmtTable() *stmtTable { return &stmtTable{confirmed: map[string]string{}} }

// parse notes a Parse sent to the server.
func (t *stmtTable) parse(name, query string) {
	t.mu.Lock()
	t.pending = append(t.pending, pendingParse{name, query})
	t.mu.Unlock()
}

// lookup returns the text a Bind of name will run: the latest pending
// Parse of that name in this pipeline (if it fails, the server skips the
// Bind too), else the confirmed one.
func (t *stmtTable) lookup(name string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.pending) - 1; i >= 0; i-- {
		if t.pending[i].name == name {
			return t.pending[i].query, true
		}
	}
	q, ok := t.confirmed[name]
	return q, ok
}

// parseComplete confirms the oldest pending Parse.
func (t *stmtTable) parseComplete() (name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) > 0 {
		p := t.pending[0]
		t.pending = t.pending[1:]
		t.confirmed[p.name] = p.query
		return p.name
	}
	return ""
}

// sync forgets Parses that got no ParseComplete before ReadyForQuery:
// the server refused or skipped them.
func (t *stmtTable) sync() {
	t.mu.Lock()
	t.pending = nil
	t.mu.Unlock()
}

// forget drops name (Close), or every statement (DEALLOCATE, whose
// target the proxy does not parse: later Binds to a statement it forgot
// are refused, never recorded wrongly).
func (t *stmtTable) forget(name string, all bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if all {
		clear(t.confirmed)
		return
	}
	delete(t.confirmed, name)
}

// unknownStatement is the name a refused Bind is sent with: no client
// can prepare it (it holds a NUL-free but unusual prefix), so the server
// answers "does not exist" and skips the pipeline, and the proxy replaces
// that error with the refusal.
const unknownStatement = "auditledger refused bind"

// inflight is the queue of recorded statements whose results have not all
// arrived, in the order the upstream answers them.
type inflight struct {
	mu sync.Mutex
	q  []*command
}

func (f *inflight) push(c *command) { f.mu.Lock(); f.q = append(f.q, c); f.mu.Unlock() }

func (f *inflight) empty() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.q) == 0 }

func (f *inflight) head() *command {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.q) == 0 {
		return nil
	}
	return f.q[0]
}

func (f *inflight) pop() *command {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.q) == 0 {
		return nil
	}
	c := f.q[0]
	f.q = f.q[1:]
	return c
}

// relay runs both directions until either side closes.
func (s *session) relay(ctx context.Context, client net.Conn, up *pgconn.HijackedConn) error {
	var q inflight
	s.descs = &describeQueue{}
	s.shapes = &shapes{byStmt: map[string][]column{}, byPortal: map[string][]column{}}
	s.stmts = newStmtTable()
	s.binds = &nameQueue{}
	errc := make(chan error, 2)
	go func() { errc <- s.fromClient(ctx, up, &q) }()
	go func() { errc <- s.fromUpstream(ctx, up, &q) }()
	err := <-errc
	client.Close()
	up.Conn.Close()
	<-errc
	// Statements that reached the server but whose results did not come
	// back complete (the session or the proxy stopped) still get a digest
	// of what was relayed, marked interrupted: every command.executed has
	// its response.digest.
	for c := q.head(); c != nil; c = q.head() {
		c.simple = false // both goroutines are done: this one leaves the queue
		s.digest(context.WithoutCancel(ctx), &q, map[string]any{"command_tag": "", "interrupted": "the session ended before the result was complete"})
	}
	s.recordOwed(ctx)
	return err
}

type portal struct {
	formats      []int16 // result format codes from Bind
	paramsDigest string  // over the bound parameters' lengths and bytes (paramsDigest)
	sql          string
	params       []any               // as recorded, per the policy's parameters setting
	paramsFound  []gateway.Redaction // what the detectors found in them, as search digests
	nparams      int
	stmt         string // the prepared statement it was bound from
}

// ParamsLabel is the label of the keyed digest of one execution's
// parameters that its approval is bound to (gateway.KeyedDigest).
const ParamsLabel = "auditledger params v1\n"

// paramsDigest is what an approval of one execution is bound to, over
// the parameters' lengths and bytes: "hmac:<hex>", keyed under the
// tenant's search key, so that it cannot be used to guess a value back.
// Without the key there is no digest: an unkeyed one of a card number
// bound as a binary int8, or split across two parameters, which no
// detector sees, could be guessed back. The grant runs the very
// parameters held in the session, so the binding holds without it.
func paramsDigest(params [][]byte, keyed func(label string, b []byte) string) string {
	if keyed == nil {
		return NoKeyParams
	}
	var b []byte
	for _, p := range params {
		b = append(strconv.AppendInt(b, int64(len(p)), 10), ':')
		b = append(b, p...)
	}
	return keyed(ParamsLabel, b)
}

// NoKeyParams stands for the parameters' digest in an approval text
// made without the tenant's search key.
const NoKeyParams = "not digested (no key)"

// fromClient records each statement durably, then forwards it.
func (s *session) fromClient(ctx context.Context, up *pgconn.HijackedConn, q *inflight) error {
	fe := up.Frontend
	descs := s.descs
	stmts := s.stmts
	portals := map[string]portal{}
	st := s.p.cfg.Stages
	var fwd *command // a statement being forwarded, while st times it
	var fwdFrom time.Time
	for {
		msg, err := s.client.Receive()
		if err != nil {
			return errClosed
		}
		t0 := st.Now()
		flush := false
		switch m := msg.(type) {
		case *pgproto3.Query:
			s.clientTurn(t0)
			sql, unread := s.reading(m.String, q)
			if unread != "" && len(m.String) <= MaxStatement {
				if err := s.refused(ctx, q, m.String, nil, unread, true); err != nil {
					return err
				}
				msg = &pgproto3.Query{String: refusedSQL}
				flush = true
				break
			}
			if len(m.String) > MaxStatement {
				if err := s.refused(ctx, q, m.String, nil, tooLong(m.String), true); err != nil {
					return err
				}
				msg = &pgproto3.Query{String: refusedSQL}
				flush = true
				break
			}
			judged, held, why := []string{sql}, sql, ""
			if s.pol.rules() {
				judged, held, why = s.sqlPrep.effective(sql)
			}
			if why != "" {
				if err := s.refused(ctx, q, sql, nil, why, true); err != nil {
					return err
				}
				msg = &pgproto3.Query{String: refusedSQL}
				flush = true
				break
			}
			if rule := s.denied(judged); rule != nil {
				if err := s.refused(ctx, q, sql, rule, "", true); err != nil {
					return err
				}
				msg = &pgproto3.Query{String: refusedSQL}
				flush = true
				break
			}
			if rule := s.needsApproval(judged); rule != nil {
				ok, why, err := s.hold(ctx, held, rule)
				if err != nil {
					return s.fatal("58000", "statement not executed: "+err.Error()+"; the proxy fails closed")
				}
				if !ok {
					q.push(&command{simple: true, refusal: why})
					msg = &pgproto3.Query{String: refusedSQL}
					flush = true
					break
				}
			}
			if s.pol.rules() {
				s.sqlPrep.note(sql, analyze(sql))
			}
			st.Since(gateway.StageJudge, t0)
			id, stored, err := s.command(ctx, "simple", sql, 0, nil, nil)
			if err != nil {
				return s.fatal("58000", "statement not executed: the audit ledger did not store its record ("+err.Error()+"); the proxy fails closed")
			}
			c := &command{id: id, simple: true, sum: s.keyedSum(ctx, gateway.ResponseLabel), stored: stored, maskRef: s.pol.maskedReference(judged...)}
			if st != nil {
				fwd, fwdFrom = c, time.Now()
			}
			q.push(c)
			flush = true
		case *pgproto3.FunctionCall:
			// A function call by OID carries no SQL to police or to record
			// as what ran: it is refused, and the refusal recorded.
			const why = "function calls over the protocol (FunctionCall) are refused by the audit proxy: call the function in SQL"
			payload := map[string]any{"protocol": "function-call", "function_oid": m.Function, "arguments": len(m.Arguments), "reason": why}
			if _, err := s.gs.Record(ctx, events.CommandBlocked, payload); err != nil {
				return s.fatal("58000", "function call not executed: the audit ledger did not store its record; the proxy fails closed")
			}
			q.push(&command{simple: true, refusal: why})
			msg = &pgproto3.Query{String: refusedSQL}
			flush = true
		case *pgproto3.Parse:
			var rule *DenyRule
			sql, why := s.reading(m.Query, q)
			if len(m.Query) > MaxStatement {
				sql, why = m.Query, tooLong(m.Query)
			} else if why == "" {
				rule = s.denied([]string{sql})
			}
			if why == "" && rule == nil {
				stmts.parse(m.Name, sql) // as the server reads it
				break
			}
			if why != "" && sql == "" {
				sql = m.Query
			}
			if err := s.refused(ctx, q, sql, rule, why, false); err != nil {
				return err
			}
			// The server answers the replacement with a syntax error, in
			// pipeline order, and skips the rest until Sync.
			stmts.parse(m.Name, blockedStatement)
			msg = &pgproto3.Parse{Name: m.Name, Query: refusedSQL}
			// An approval rule holds each Execute, not the Parse: a grant
			// covers one execution with the parameters the approver saw.
		case *pgproto3.Bind:
			sql, known := stmts.lookup(m.PreparedStatement)
			if !known {
				// Prepared where the proxy could not see its text (SQL
				// PREPARE) or not at all: what would run is unknown, so it
				// does not run.
				why := fmt.Sprintf("bind to prepared statement %q refused: the audit proxy has not seen the server confirm its text (prepare it with the protocol's Parse, not SQL PREPARE)", m.PreparedStatement)
				payload := map[string]any{"protocol": "extended", "prepared_statement": gateway.Clip(m.PreparedStatement, 0), "reason": why}
				if _, err := s.gs.Record(ctx, events.CommandBlocked, payload); err != nil {
					return s.fatal("58000", "statement not executed: the audit ledger did not store its record; the proxy fails closed")
				}
				q.push(&command{refusal: why})
				portals[m.DestinationPortal] = portal{sql: blockedStatement}
				msg = &pgproto3.Bind{DestinationPortal: m.DestinationPortal, PreparedStatement: unknownStatement}
				break
			}
			// Parameters are recorded by keyed digest (docs/FORMAT.md
			// §1.5): an unkeyed one of a card number in a binary int8, or
			// split across two parameters, could be guessed back. Without
			// the key they are recorded without digests, and that is said.
			keyed, kerr := s.gs.Keyed(ctx)
			if kerr != nil {
				s.p.cfg.Logger.Warn("bind parameters recorded without digests: the tenant's search key is unavailable", "session_id", s.gs.ID(), "err", kerr)
			}
			// The whole policy: a requester exempt from a mask rule still does
			// not put the value into the ledger.
			values, formats := s.paramsRead(m.Parameters, m.ParameterFormatCodes, q)
			params, found := s.p.cfg.Policy.recordParams(sql, values, formats, keyed)
			// The values found become their search digests now: the
			// portal may wait a while before it runs.
			found, ferr := s.gs.Digest(ctx, found)
			if ferr != nil {
				s.p.cfg.Logger.Warn("bind parameters recorded without search digests: the tenant's search key is unavailable", "session_id", s.gs.ID(), "err", ferr)
			}
			s.binds.push(m.DestinationPortal)
			portals[m.DestinationPortal] = portal{sql: sql, nparams: len(m.Parameters), formats: slices.Clone(m.ResultFormatCodes),
				paramsDigest: paramsDigest(m.Parameters, keyed), params: params, paramsFound: found, stmt: m.PreparedStatement}
		case *pgproto3.Describe:
			// Remember what each RowDescription will describe, to mask
			// the rows of later executions by column name.
			descs.push(describeTarget(m, portals))
		case *pgproto3.Execute:
			s.clientTurn(t0)
			p := portals[m.Portal]
			if p.sql == blockedStatement {
				break // the server skips it after the policy error
			}
			judged, held, refusal := []string{p.sql}, p.sql, ""
			if s.pol.rules() {
				judged, held, refusal = s.sqlPrep.effective(p.sql)
			}
			if refusal != "" {
				if err := s.refused(ctx, q, p.sql, nil, refusal, false); err != nil {
					return err
				}
				msg = &pgproto3.Execute{Portal: unknownStatement}
				break
			}
			if rule := s.denied(judged[1:]); rule != nil {
				if err := s.refused(ctx, q, p.sql, rule, "", false); err != nil {
					return err
				}
				msg = &pgproto3.Execute{Portal: unknownStatement}
				break
			}
			if rule := s.needsApproval(judged); rule != nil {
				ok, why, err := s.hold(ctx, p.heldText()+held[len(p.sql):], rule)
				if err != nil {
					return s.fatal("58000", "statement not executed: "+err.Error()+"; the proxy fails closed")
				}
				if !ok {
					// Execute a portal that does not exist: the server
					// refuses it in pipeline order, and the proxy puts the
					// refusal in place of its error.
					q.push(&command{refusal: why})
					msg = &pgproto3.Execute{Portal: unknownStatement}
					break
				}
			}
			if s.pol.rules() {
				s.sqlPrep.note(p.sql, analyze(p.sql))
			}
			st.Since(gateway.StageJudge, t0)
			id, stored, err := s.command(ctx, "extended", p.sql, p.nparams, p.params, p.paramsFound)
			if err != nil {
				return s.fatal("58000", "statement not executed: the audit ledger did not store its record ("+err.Error()+"); the proxy fails closed")
			}
			c := &command{id: id, sum: s.keyedSum(ctx, gateway.ResponseLabel), lazy: true, stmt: p.stmt, portal: m.Portal, resultFormats: p.formats, stored: stored,
				maskRef: s.pol.maskedReference(judged...)}
			if st != nil {
				fwd, fwdFrom = c, time.Now()
			}
			q.push(c)
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				stmts.forget(m.Name, false)
			} else {
				delete(portals, m.Name)
			}
		case *pgproto3.CopyData:
			if c := q.head(); c != nil {
				c.copyIn.add(m.Data, func() *gateway.KeyedSum { return s.keyedSum(ctx, gateway.CopyLabel) })
			}
			flush = true
		case *pgproto3.Terminate:
			fe.Send(m)
			fe.Flush()
			return errClosed
		default:
			flush = true // Sync, Flush, COPY data and anything else
		}
		fe.Send(msg)
		if flush {
			if err := fe.Flush(); err != nil {
				return err
			}
			if fwd != nil {
				fwd.sent.Store(st.Since(gateway.StageForward, fwdFrom).UnixNano())
				fwd = nil
			}
		}
	}
}

// clientTurn times the client's turn, from the last answer released to
// the statement read at t (Config.Stages).
func (s *session) clientTurn(t time.Time) {
	if r := s.released.Swap(0); r != 0 && !t.IsZero() {
		s.p.cfg.Stages.Add(gateway.StageClient, t.Sub(time.Unix(0, r)))
	}
}

// MaxStatement is the longest statement the proxy forwards: every
// statement that runs is recorded whole, and a record must fit in an event
// (64 KiB) with its digest, parameters and envelope. Longer ones are
// refused (and recorded as command.blocked by their start and digest).
const MaxStatement = 32 << 10

// tooLong is the refusal of a statement over MaxStatement.
func tooLong(sql string) string {
	return fmt.Sprintf("statement of %d bytes refused: the audit proxy forwards statements of at most %d bytes, so that each is recorded whole", len(sql), MaxStatement)
}

// statementFields describes a statement in an event: its text, digest and
// kind. What the detectors find in its literals and comments is replaced
// first (redactSQL), and the digest is over the text as recorded, so it
// cannot be used to guess a replaced value. Only a refused statement can
// be over MaxStatement; its record keeps the start of it, and says so.
func statementFields(sql string, pol *Policy) map[string]any {
	sql, red := redactSQL(sql, pol)
	// What the literal pass leaves (an identifier, a token it does not
	// delimit) passes the detectors over the whole text too, here rather
	// than in the core, so that the digest is over the text as recorded.
	// The core takes the text as judged (gateway.Judged) and does not
	// read it again.
	var found []gateway.Finding
	judged, counts := gateway.JudgeText(sql, &found)
	if counts != nil {
		red = append(red, gateway.Found("/statement", found)...)
	}
	sql = judged.String()
	f := map[string]any{"statement": judged, "statement_sha256": sha256Hex(sql), "kind": statementKind(sql)}
	gateway.AddRedactions(f, red...)
	if len(sql) > MaxStatement {
		// The cut can end a number short of the digits that made it no
		// value whole: the start is judged again.
		cut, _ := detect.Scrub(strings.ToValidUTF8(sql[:MaxStatement], ""))
		f["statement"] = cut
		f["statement_bytes"] = len(sql)
		f["statement_truncated"] = true
	}
	return f
}

// command records one statement as command.executed and returns its id.
// In before-forward mode the record is stored when it returns; in
// before-response mode it is on its way, and stored reports the outcome.
func (s *session) command(ctx context.Context, protocol, sql string, nparams int, params []any, found []gateway.Redaction) (id string, stored <-chan error, err error) {
	s.cmds++
	t := s.p.cfg.Stages.Now()
	payload := statementFields(sql, s.p.cfg.Policy)
	payload["protocol"] = protocol
	if protocol == "extended" {
		pp := map[string]any{"count": nparams, "recorded": s.pol.paramMode()}
		if params != nil {
			pp["values"] = params
		}
		payload["parameters"] = pp
		gateway.AddRedactions(payload, found...)
	}
	s.p.cfg.Stages.Since(gateway.StageEvent, t)
	id, stored, err = s.gs.Command(ctx, payload)
	if err != nil && stored == nil && id != "" {
		// The record may have been stored although its answer never
		// came (the proxy is stopping): its digest says the statement
		// was not forwarded, so no command stands without one.
		s.notExecuted(ctx, id, err)
	}
	return id, stored, err
}

// refused records a statement the proxy will not forward — as refused by
// rule, or for why — and queues the refusal that replaces the server's
// answer to what is sent in its place (simple: a Query). The error, when
// the record could not be stored, ends the session: the proxy fails
// closed.
func (s *session) refused(ctx context.Context, q *inflight, sql string, rule *DenyRule, why string, simple bool) error {
	var err error
	if rule != nil {
		err, why = s.block(ctx, sql, rule), rule.refusal()
	} else {
		err = s.refuse(ctx, sql, why)
	}
	if err != nil {
		return s.fatal("58000", "statement not executed: the audit ledger did not store its record ("+err.Error()+"); the proxy fails closed")
	}
	q.push(&command{simple: simple, refusal: why})
	return nil
}

// notExecuted records the digest of a recorded statement that the proxy
// did not forward.
func (s *session) notExecuted(ctx context.Context, id string, why error) {
	s.gs.RecordAsync(ctx, events.ResponseDigest, map[string]any{"command_id": id, "rows": 0, "bytes": 0,
		"not_executed": "the proxy did not forward the statement: " + why.Error()})
}

// fromUpstream forwards results and digests each one.
func (s *session) fromUpstream(ctx context.Context, up *pgconn.HijackedConn, q *inflight) error {
	var buf []byte
	n := 0
	st := s.p.cfg.Stages
	var respondFrom time.Time // while st times statements
	for {
		msg, err := up.Frontend.Receive()
		if err != nil {
			return errClosed
		}
		c := q.head()
		var held time.Time
		if st != nil && c != nil {
			if sent := c.sent.Swap(0); sent != 0 {
				held = time.Now()
				st.Add(gateway.StageTarget, held.Sub(time.Unix(0, sent)))
			}
		}
		// Before-response: nothing of a statement's answer reaches the
		// client until its record is stored; if it cannot be, the
		// session ends.
		if c != nil && c.stored != nil {
			select {
			case err := <-c.stored:
				c.stored = nil
				if err != nil {
					return s.fatal("58000", "the record of a statement already sent to the database could not be stored ("+err.Error()+"); the session ends")
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !held.IsZero() {
			respondFrom = st.Since(gateway.StageHold, held)
		}
		flush := false
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			cols := s.columnsOf(ctx, m)
			if d, ok := s.descs.pop(); ok {
				s.shapes.put(d, cols) // an answer to Describe
			} else if c := q.head(); c != nil {
				c.columns = cols // a simple query's result
			}
		case *pgproto3.NoData:
			s.descs.pop()
		case *pgproto3.DataRow:
			if c := q.head(); c != nil {
				if c.lazy {
					c.columns, c.lazy = withFormats(s.shapes.get(c.stmt, c.portal), c.resultFormats), false
				}
				s.mask(c, m)
				buf, _ = m.Encode(buf[:0])
				c.rows++
				c.bytes += int64(len(buf))
				c.sum.Write(buf)
			}
		case *pgproto3.CopyData:
			// COPY TO STDOUT: what the client receives, one message per
			// row as PostgreSQL sends it.
			if c := q.head(); c != nil {
				buf, _ = m.Encode(buf[:0])
				c.rows++
				c.bytes += int64(len(buf))
				c.sum.Write(buf)
			}
		case *pgproto3.ParseComplete:
			// The statement's shape is what the next Describe of it says.
			s.shapes.forget(false, s.stmts.parseComplete())
		case *pgproto3.BindComplete:
			s.shapes.forget(true, s.binds.pop())
		case *pgproto3.CommandComplete:
			if tag := string(m.CommandTag); tag == "DEALLOCATE" || tag == "DEALLOCATE ALL" {
				s.stmts.forget("", true)
			}
			s.digest(ctx, q, map[string]any{"command_tag": string(m.CommandTag)})
		case *pgproto3.EmptyQueryResponse:
			s.digest(ctx, q, map[string]any{"command_tag": ""})
		case *pgproto3.PortalSuspended:
			s.digest(ctx, q, map[string]any{"command_tag": "", "suspended": true})
		case *pgproto3.ErrorResponse:
			// Error texts quote values ("invalid input syntax for type
			// integer: \"alice@example.com\""): the detectors mask them
			// before the client or the ledger sees them.
			s.errorRead(m)
			scrubbed, masked := s.pol.scrubError(*m)
			masked += withholdFromMasked(q.head(), &scrubbed)
			msg = &scrubbed
			if c := q.head(); c != nil && c.refusal != "" {
				msg = &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42501", Message: c.refusal}
			}
			payload := map[string]any{"error_code": m.Code, "error_message": scrubbed.Message}
			if masked > 0 {
				payload["error_values_masked"] = masked
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				s.errorWrite(e)
			}
			s.digest(ctx, q, payload)
			flush = true
		case *pgproto3.NoticeResponse:
			e := pgproto3.ErrorResponse(*m)
			s.errorRead(&e)
			scrubbed, _ := s.pol.scrubError(e)
			withholdFromMasked(q.head(), &scrubbed)
			s.errorWrite(&scrubbed)
			notice := pgproto3.NoticeResponse(scrubbed)
			msg = &notice
			flush = true
		case *pgproto3.ReadyForQuery:
			// Describes skipped after an error get no answer, and Parses
			// that got no ParseComplete were refused.
			s.descs.reset()
			s.stmts.sync()
			s.binds.reset()
			// A finished simple query leaves the queue here; statements
			// skipped after an error in a pipeline are closed as such.
			for c := q.head(); c != nil; c = q.head() {
				if c.simple {
					q.pop()
					break
				}
				s.digest(ctx, q, map[string]any{"skipped": "an earlier statement in the pipeline failed"})
			}
			flush = true
		case *pgproto3.NotificationResponse:
			// A payload is any text a statement chose, such as a masked
			// column read in WHERE (pg_notify('ch', name)), by this
			// session or any other, or by a trigger: while column rules
			// apply it is withheld. The channel is one the client listens
			// on, so it knows it already.
			if m.Payload != "" && s.pol.hasColumnRules() {
				msg = &pgproto3.NotificationResponse{PID: m.PID, Channel: m.Channel, Payload: detect.Placeholder(maskedColumn)}
			}
			flush = true
		case *pgproto3.ParameterStatus:
			s.setting(m.Name, m.Value)
			flush = true
		case *pgproto3.CopyInResponse, *pgproto3.CopyOutResponse, *pgproto3.CopyBothResponse:
			flush = true
		}
		s.out.Lock()
		s.client.Send(msg)
		n++
		if flush || n%256 == 0 {
			if err := s.client.Flush(); err != nil {
				s.out.Unlock()
				return err
			}
			flush = true
		}
		s.out.Unlock()
		if flush {
			// Built once the answer is on its way, not before.
			s.recordOwed(ctx)
		}
		if _, ready := msg.(*pgproto3.ReadyForQuery); ready && !respondFrom.IsZero() {
			s.released.Store(st.Since(gateway.StageRespond, respondFrom).UnixNano())
			respondFrom = time.Time{}
		}
	}
}

// keyedSum starts a keyed digest of content under the session tenant's
// search key (docs/FORMAT.md §1.5); nil without one. A key that cannot
// be read leaves the content without a digest, and that is logged: the
// statement's record is already stored, and a digest is never unkeyed.
// After a failure the session does not ask again for piikeys.CacheFor,
// so that a key store that does not answer (a proxy failing open while
// the bus is down) does not hold up every statement. Called from the
// client's side only.
func (s *session) keyedSum(ctx context.Context, label string) *gateway.KeyedSum {
	if !s.keyFailed.IsZero() && time.Since(s.keyFailed) < piikeys.CacheFor {
		return nil
	}
	sum, err := s.gs.KeyedSum(ctx, label)
	if err != nil {
		s.keyFailed = time.Now()
		s.p.cfg.Logger.Warn("result recorded without its digest: the tenant's search key is unavailable", "session_id", s.gs.ID(), "label", strings.TrimSpace(label), "err", err)
	}
	return sum
}

// digest records the result of the statement at the head of the queue.
// An extended-protocol statement has one result and leaves the queue; a
// simple query stays until ReadyForQuery, as it may hold several.
func (s *session) digest(ctx context.Context, q *inflight, payload map[string]any) {
	c := q.head()
	if c == nil {
		return // an error before any recorded statement (a failed Parse)
	}
	if !c.simple {
		q.pop()
	}
	if c.refusal != "" {
		return // recorded as command.blocked; the policy error is its result
	}
	s.maskEvents(ctx, c)
	payload["command_id"] = c.id
	payload["rows"] = c.rows
	payload["bytes"] = c.bytes
	if sum := c.sum.Digest(); sum != "" {
		payload["hmac"] = sum
	}
	if n, b, sum, ok := c.copyIn.take(); ok {
		in := map[string]any{"messages": n, "bytes": b}
		if sum != "" {
			in["hmac"] = sum
		}
		payload["copy_in"] = in
	}
	s.rows += c.rows
	s.bytes += c.bytes
	if _, failed := payload["error_code"]; failed {
		s.errors++
	}
	c.rows, c.bytes = 0, 0
	c.sum.Reset()
	// Recorded once what the client is owed is flushed to it (or the
	// relay ends), so that building it does not delay the answer.
	s.owed = append(s.owed, payload)
}

// recordOwed records the response digests owed so far. Not bounded by
// the session: a digest is owed for a statement that ran. Called from the
// upstream side, or once the relay has stopped.
func (s *session) recordOwed(ctx context.Context) {
	for _, payload := range s.owed {
		s.gs.RecordAsync(ctx, events.ResponseDigest, payload)
	}
	clear(s.owed)
	s.owed = s.owed[:0]
}
