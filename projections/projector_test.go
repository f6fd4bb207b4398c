package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/test/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// event i; event 0's payload holds \u0000, which jsonb cannot.
func event(i int) []byte {
	odd := ""
	if i == 0 {
		odd = `,"odd":"\u0000"`
	}
	return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-11-26T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"session_id":"s1","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT %d"%s}}`, i, i+1, i, odd)
}

type fixture struct {
	log   *ledger.Log
	store *file.Store
	cfg   projections.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	skey, _, _ := ledger.GenerateKey(nil, "test.auditledger.local/log")
	signer, _ := ledger.NewNoteSigner(skey)
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{log: l, store: store, cfg: projections.Config{DB: pool(t), Store: store, Verifier: signer.Verifier(), Poll: 20 * time.Millisecond}}
}

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func (f *fixture) append(t *testing.T, n int) {
	t.Helper()
	var es []ledger.Entry
	for i := range n {
		es = append(es, ledger.Entry{Event: event(int(f.log.Size()) + i)})
	}
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
}

// project brings the projection up to the log: its schema, then every
// segment sealed so far.
func (f *fixture) project(t *testing.T) {
	t.Helper()
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(t.Context(), f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			return
		}
	}
}

// rows is every row of the projection's tables, in order, as text.
func rows(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT idx, encode(leaf, 'hex'), sealed_at, source, id, type, time, tenant, source_kind, source_instance, actor_issuer, actor_subject,
		        coalesce(actor_email, '-'), actor_kind, dev_identity, coalesce(session_id, '-'), coalesce(session_seq, -1),
		        coalesce(target_kind, '-'), coalesce(target_name, '-'), coalesce(payload::text, '-'), event FROM events ORDER BY idx`,
		`SELECT first, size, name, encode(sha256, 'hex'), encode(root, 'hex'), checkpoint FROM segments ORDER BY first`,
		`SELECT name, size, encode(position, 'hex') FROM projection_cursor ORDER BY name`,
		`SELECT first_stored, encode(hashes, 'hex') FROM tree_hashes ORDER BY first_stored`,
		`SELECT idx, tenant, digest, path, detector FROM event_matches ORDER BY idx, path, detector, digest`,
		`SELECT * FROM session_list ORDER BY tenant, session_id`,
	} {
		rs, err := db.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			vals, _ := rs.Values()
			cols := make([]string, len(vals))
			for i, v := range vals {
				cols[i] = fmt.Sprint(v)
			}
			out = append(out, strings.Join(cols, " | "))
		}
		rs.Close()
	}
	return out
}

// The live projector applies segments as they are sealed, each exactly
// once with its cursor; a rebuild from the store alone ends in the same
// rows.
func TestProjectorFollowsTheLogAndRebuildAgrees(t *testing.T) {
	f := newFixture(t)
	f.append(t, 3)
	f.append(t, 5)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	applied := make(chan ledger.Position, 100)
	cfg := f.cfg
	cfg.Applied = func(p ledger.Position) { applied <- p }
	cfg.VerifyEvery = time.Hour // once, at start
	go func() { done <- projections.Run(ctx, cfg) }()
	waitFor := func(size uint64) {
		t.Helper()
		for {
			select {
			case p := <-applied:
				if p.Size == size {
					return
				}
			case err := <-done:
				t.Fatalf("projector stopped: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatalf("projector did not reach size %d", size)
			}
		}
	}
	waitFor(8)
	f.append(t, 4) // sealed while it runs
	waitFor(12)
	// The verification Run makes at start runs beside the projector and
	// may still be under way (busy CPUs): wait for its record before
	// stopping Run, which would cancel it.
	var v *projections.Verification
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if v, err = projections.LatestVerification(t.Context(), f.cfg.DB); err != nil {
			t.Fatal(err)
		}
		if v != nil || time.Now().After(deadline) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v == nil || !v.OK || v.Size < 8 {
		t.Errorf("the verification at start: %+v", v)
	}
	live := rows(t, f.cfg.DB)
	if len(live) != 12+3+1+3+1 {
		t.Fatalf("%d rows, want 12 events, 3 segments, the cursor, 3 blobs of tree hashes and the one session", len(live))
	}
	// A \u0000 in a payload: the event keeps it, the jsonb column is NULL.
	if !strings.Contains(live[0], " | orders | - | {") || strings.Contains(live[1], " | orders | - | {") {
		t.Errorf("only a payload with \\u0000 leaves the jsonb column NULL:\n%s\n%s", live[0], live[1])
	}
	var statement string
	if err := f.cfg.DB.QueryRow(t.Context(), `SELECT statement FROM commands WHERE idx = 11`).Scan(&statement); err != nil || statement != "SELECT 11" {
		t.Errorf("commands view: %q %v", statement, err)
	}

	// The checkpoints: one per segment, the newest the store's own.
	var n, size int
	var note string
	if err := f.cfg.DB.QueryRow(t.Context(), `SELECT count(*), max(size), (SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1) FROM checkpoints`).Scan(&n, &size, &note); err != nil {
		t.Fatal(err)
	}
	if latest := f.log.Checkpoint(); n != 3 || size != 12 || note != string(latest.Signed) {
		t.Errorf("checkpoints: %d up to size %d, newest\n%s\nwant 3 up to 12, newest\n%s", n, size, note, latest.Signed)
	}

	// Applying a segment again is refused: the cursor has moved on.
	if applied, err := projections.Step(t.Context(), f.cfg); err != nil || applied {
		t.Fatalf("a step with nothing new: applied %v, %v", applied, err)
	}

	rebuilt := f.cfg
	rebuilt.DB = pool(t)
	var last [2]uint64
	if err := projections.Rebuild(t.Context(), rebuilt, func(done, total uint64) { last = [2]uint64{done, total} }); err != nil {
		t.Fatal(err)
	}
	if last != [2]uint64{12, 12} {
		t.Errorf("rebuild progress ended at %v, want 12 of 12", last)
	}
	if got := rows(t, rebuilt.DB); strings.Join(got, "\n") != strings.Join(live, "\n") {
		t.Errorf("rebuild differs from the live projector:\n%s\n---\n%s", strings.Join(got, "\n"), strings.Join(live, "\n"))
	}
	// Rebuilding again over existing rows gives them again.
	if err := projections.Rebuild(t.Context(), rebuilt, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, rebuilt.DB); len(got) != len(live) {
		t.Errorf("a second rebuild left %d rows, want %d", len(got), len(live))
	}
}

// A forged record in the store stops the projector at it: nothing of that
// segment is applied.
func TestProjectorStopsAtAStoreThatDoesNotVerify(t *testing.T) {
	f := newFixture(t)
	f.append(t, 2)
	if _, err := f.log.Append(t.Context(), []ledger.Entry{{Event: []byte(`{"not":"an event"}`)}}); err != nil {
		t.Fatal(err)
	}
	err := projections.Run(t.Context(), f.cfg)
	var ve *ledger.VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "not a valid event") {
		t.Fatalf("Run = %v, want it stopped at the forged record", err)
	}
	var n int
	f.cfg.DB.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&n)
	if n != 2 {
		t.Errorf("%d events applied, want the 2 before the forged segment", n)
	}
}

// The approvals view pairs each request with its decision: requester,
// approver, the statement's digest, and how long it waited.
func TestApprovalsView(t *testing.T) {
	f := newFixture(t)
	ev := func(id, typ, actor, at, payload string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"%s","type":"%s","time":"%s","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"%s","kind":"human"},"payload":%s}`, id, typ, at, actor, payload)}
	}
	if _, err := f.log.Append(t.Context(), []ledger.Entry{
		ev("r1", "approval.requested", "alice", "2026-11-27T10:00:00Z", `{"approval_id":"apr-1","rule":"ddl","statement":"DROP TABLE t","statement_sha256":"abc","expires_at":"2026-11-27T10:05:00Z"}`),
		ev("r2", "approval.requested", "alice", "2026-11-27T10:01:00Z", `{"approval_id":"apr-2","rule":"ddl","statement":"DROP TABLE u","statement_sha256":"def","expires_at":"2026-11-27T10:06:00Z"}`),
		ev("d1", "approval.granted", "bob", "2026-11-27T10:02:30Z", `{"approval_id":"apr-1","rule":"ddl","statement_sha256":"abc","reason":"CHG-1"}`),
	}); err != nil {
		t.Fatal(err)
	}
	if err := projections.Rebuild(t.Context(), f.cfg, nil); err != nil {
		t.Fatal(err)
	}
	var requester, approver, decision, waited string
	err := f.cfg.DB.QueryRow(t.Context(), `SELECT requester, approver, decision, waited::text FROM approvals WHERE approval_id = 'apr-1'`).Scan(&requester, &approver, &decision, &waited)
	if err != nil || requester != "alice" || approver != "bob" || decision != "granted" || waited != "00:02:30" {
		t.Errorf("apr-1: %s %s %s %s %v", requester, approver, decision, waited, err)
	}
	var pending bool
	if err := f.cfg.DB.QueryRow(t.Context(), `SELECT decision IS NULL FROM approvals WHERE approval_id = 'apr-2'`).Scan(&pending); err != nil || !pending {
		t.Errorf("apr-2 should be undecided: %v %v", pending, err)
	}
}

// An empty store is a log not yet begun while nothing has been projected
// from it; once records have been, an empty store is a log that vanished.
func TestVerificationOfAnEmptyStore(t *testing.T) {
	f := newFixture(t)
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	if v, err := projections.VerifyNow(t.Context(), f.cfg); err != nil || !v.OK || v.Size != 0 || v.Error != "" {
		t.Fatalf("an empty log: %+v %v, want OK at size 0", v, err)
	}
	f.append(t, 3)
	if _, err := projections.Step(t.Context(), f.cfg); err != nil {
		t.Fatal(err)
	}
	empty, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.Store = empty
	v, err := projections.VerifyNow(t.Context(), cfg)
	if err != nil || v.OK || !strings.Contains(v.Error, "holds no segments") {
		t.Fatalf("a store emptied under a projection of 3 records: %+v %v, want not OK", v, err)
	}
}

// The projector verifies a store its writer is still sealing: a segment
// stored a moment before the checkpoint signed at its end is one being
// sealed, not a store that does not verify (a dev started on an existing
// store logged "the store does not verify" for such a moment, and the
// console showed it). The verification covers the log up to the newest
// checkpoint there is; `auditledger verify`'s own rule (every segment
// ends at a checkpoint) still fails on that store.
func TestVerificationDuringASeal(t *testing.T) {
	f := newFixture(t)
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	f.append(t, 3)
	f.append(t, 2)
	// The second seal caught between its segment and its checkpoint.
	if err := f.store.Delete(t.Context(), ledger.CheckpointName(5)); err != nil {
		t.Fatal(err)
	}
	v, err := projections.VerifyNow(t.Context(), f.cfg)
	if err != nil || !v.OK || v.Size != 3 || v.Error != "" {
		t.Fatalf("a seal under way: %+v %v, want OK up to size 3", v, err)
	}
	if _, err := ledger.Verify(t.Context(), f.store, ledger.VerifyOptions{Verifier: f.cfg.Verifier}); err == nil || !strings.Contains(err.Error(), "no checkpoint at the segment's end") {
		t.Fatalf("the whole store, as verify reads it: %v, want the missing checkpoint named", err)
	}
	// Once a later seal's checkpoint stands, the segment without its own
	// is below it: a checkpoint gone, which the verification reports.
	f.append(t, 1)
	v, err = projections.VerifyNow(t.Context(), f.cfg)
	if err != nil || v.OK || !strings.Contains(v.Error, "no checkpoint at the segment's end (size 5)") {
		t.Fatalf("a checkpoint gone below the newest: %+v %v, want not OK, naming it", v, err)
	}
}

// Processes that start together migrate one fresh database one after the
// other: each Migrate here has a pool of its own, as separate processes
// would, and every one succeeds (unlocked, two ran the same migration and
// one failed with "partial migration").
func TestConcurrentMigrations(t *testing.T) {
	dsn := pg.DSN(pg.NewDatabase(t))
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			p, err := pgxpool.New(t.Context(), dsn)
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			errs <- projections.Migrate(t.Context(), p)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
