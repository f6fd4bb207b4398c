package pgproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/emitter"
)

// command is a recorded statement waiting for its result.
type command struct {
	id     string // event id of its command.executed
	simple bool   // simple protocol: one Query may yield several results
	rows   int64
	bytes  int64
	sum    hash.Hash
}

// inflight is the queue of recorded statements whose results have not all
// arrived, in the order the upstream answers them.
type inflight struct {
	mu sync.Mutex
	q  []*command
}

func (f *inflight) push(c *command) { f.mu.Lock(); f.q = append(f.q, c); f.mu.Unlock() }

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
	errc := make(chan error, 2)
	go func() { errc <- s.fromClient(ctx, up, &q) }()
	go func() { errc <- s.fromUpstream(ctx, up, &q) }()
	err := <-errc
	client.Close()
	up.Conn.Close()
	<-errc
	return err
}

type portal struct {
	sql    string
	params int
}

// fromClient records each statement durably, then forwards it.
func (s *session) fromClient(ctx context.Context, up *pgconn.HijackedConn, q *inflight) error {
	fe := up.Frontend
	stmts := map[string]string{}
	portals := map[string]portal{}
	for {
		msg, err := s.client.Receive()
		if err != nil {
			return errClosed
		}
		flush := false
		switch m := msg.(type) {
		case *pgproto3.Query:
			id, err := s.command(ctx, "simple", m.String, 0)
			if err != nil {
				return fatal(s.client, "58000", "statement not executed: the audit ledger did not store its record ("+err.Error()+"); the proxy fails closed")
			}
			q.push(&command{id: id, simple: true, sum: sha256.New()})
			flush = true
		case *pgproto3.Parse:
			stmts[m.Name] = m.Query
		case *pgproto3.Bind:
			portals[m.DestinationPortal] = portal{sql: stmts[m.PreparedStatement], params: len(m.Parameters)}
		case *pgproto3.Execute:
			p := portals[m.Portal]
			id, err := s.command(ctx, "extended", p.sql, p.params)
			if err != nil {
				return fatal(s.client, "58000", "statement not executed: the audit ledger did not store its record ("+err.Error()+"); the proxy fails closed")
			}
			q.push(&command{id: id, sum: sha256.New()})
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(stmts, m.Name)
			} else {
				delete(portals, m.Name)
			}
		case *pgproto3.Terminate:
			fe.Send(m)
			fe.Flush()
			return errClosed
		case *pgproto3.Describe:
		default:
			flush = true // Sync, Flush, COPY data and anything else
		}
		fe.Send(msg)
		if flush {
			if err := fe.Flush(); err != nil {
				return err
			}
		}
	}
}

// command records one statement as command.executed and returns its id.
func (s *session) command(ctx context.Context, protocol, sql string, params int) (string, error) {
	s.cmds++
	payload := map[string]any{
		"protocol": protocol, "statement": sql, "statement_sha256": sha256Hex(sql),
		"kind": statementKind(sql),
	}
	if protocol == "extended" {
		payload["parameters"] = map[string]any{"count": params, "recorded": "omitted"}
	}
	return s.record(ctx, events.CommandExecuted, payload)
}

// fromUpstream forwards results and digests each one.
func (s *session) fromUpstream(ctx context.Context, up *pgconn.HijackedConn, q *inflight) error {
	var buf []byte
	n := 0
	for {
		msg, err := up.Frontend.Receive()
		if err != nil {
			return errClosed
		}
		flush := false
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if c := q.head(); c != nil {
				buf, _ = m.Encode(buf[:0])
				c.rows++
				c.bytes += int64(len(buf))
				c.sum.Write(buf)
			}
		case *pgproto3.CommandComplete:
			s.digest(ctx, q, map[string]any{"command_tag": string(m.CommandTag)})
		case *pgproto3.EmptyQueryResponse:
			s.digest(ctx, q, map[string]any{"command_tag": ""})
		case *pgproto3.PortalSuspended:
			s.digest(ctx, q, map[string]any{"command_tag": "", "suspended": true})
		case *pgproto3.ErrorResponse:
			s.digest(ctx, q, map[string]any{"error_code": m.Code, "error_message": m.Message})
			flush = true
		case *pgproto3.ReadyForQuery:
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
		case *pgproto3.CopyInResponse, *pgproto3.CopyOutResponse, *pgproto3.CopyBothResponse,
			*pgproto3.NotificationResponse, *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
			flush = true
		}
		s.client.Send(msg)
		n++
		if flush || n%256 == 0 {
			if err := s.client.Flush(); err != nil {
				return err
			}
		}
	}
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
	payload["command_id"] = c.id
	payload["rows"] = c.rows
	payload["bytes"] = c.bytes
	payload["sha256"] = hex.EncodeToString(c.sum.Sum(nil))
	c.rows, c.bytes = 0, 0
	c.sum.Reset()
	body, _ := json.Marshal(payload)
	ev := &events.Event{
		Version: events.Version, Type: events.ResponseDigest, Time: time.Now().UTC(), Tenant: s.p.cfg.Tenant,
		Source: events.Source{Kind: "postgres-proxy", Instance: s.p.cfg.Instance},
		Actor:  s.actor, Target: &s.target, Payload: body,
	}
	s.seq.Next(ev)
	ev.ID = fmt.Sprintf("%s.%d", s.id, ev.SessionSeq)
	raw, err := ev.Marshal()
	if err == nil {
		err = s.p.cfg.Emitter.EmitRaw(ctx, raw, func(r emitter.Result) {
			if r.Err != nil {
				s.p.cfg.Logger.Error("response digest not recorded", "event", r.ID, "err", r.Err)
			}
		})
	}
	if err != nil {
		s.p.cfg.Logger.Error("response digest not recorded", "event", ev.ID, "err", err)
	}
}
