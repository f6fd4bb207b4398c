package api_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/telemetry"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// readFixture: a log of 40 events in segments of odd sizes, projected into
// a real PostgreSQL, behind the API with a development OpenID provider.
type readFixture struct {
	srv      *httptest.Server
	tokens   map[string]string
	vkey     string
	db       *pgxpool.Pool
	stream   func() []natstest.Stored
	cfg      projections.Config
	otherTok string // from another issuer
	audTok   string // for another audience
	shortTok string // expires in a second
	// evidenceKey checks the bundles' signatures.
	evidenceKey ssh.PublicKey
	js          jetstream.JetStream
	approvals   *approvals.Broker
	// log appends more records (project them with projections.Step);
	// keys is the API's personal-data key store.
	log  *ledger.Log
	keys *piikeys.Store
	// apiCfg is the API's configuration, for a second API process on
	// the same evidence directory (a restart).
	apiCfg api.Config
}

// newReadFixture builds the fixture; more, if given, is sealed as one
// more segment after the 40 events of tenant acme.
func newReadFixture(t *testing.T, more ...ledger.Entry) *readFixture {
	t.Helper()
	pg := pgtest.StartT(t)
	db, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	signer := ledgertest.Signer(t, "api.test/log")
	store, _ := file.New(t.TempDir())
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, size := range []int{3, 7, 1, 13, 16} {
		var es []ledger.Entry
		for range size {
			actor := "alice"
			if n%4 == 3 {
				actor = "dave"
			}
			seq := n%10 + 1
			if n == 25 {
				seq = 7 // session s2 lacks seq 6
			}
			es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-11-26T12:00:%02dZ","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"%s","kind":"human"},"session_id":"s%d","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT %d FROM t WHERE a < b"}}`, n, n, actor, n/10, seq, n)})
			n++
		}
		if _, err := l.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	if len(more) > 0 {
		if _, err := l.Append(t.Context(), more); err != nil {
			t.Fatal(err)
		}
	}
	pcfg := projections.Config{DB: db, Store: store, Verifier: signer.Verifier()}
	if err := projections.Rebuild(t.Context(), pcfg, nil); err != nil {
		t.Fatal(err)
	}

	users := []oidcdev.User{{Name: "alice", Secret: "a", Groups: []string{"dba", "tenant:acme"}}, {Name: "carol", Secret: "c", Groups: []string{"auditor", "tenant:acme"}},
		// olga audits every tenant; uma holds the role but no tenant; gina
		// audits globex, milo acme and globex (and reviews their approvals).
		{Name: "olga", Secret: "o", Groups: []string{"auditor", "tenant:*"}}, {Name: "uma", Secret: "u", Groups: []string{"auditor"}},
		{Name: "gina", Secret: "g", Groups: []string{"auditor", "tenant:globex"}},
		{Name: "milo", Secret: "m", Groups: []string{"auditor", "tenant:acme", "tenant:globex", "target:*"}}}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	other, _ := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	t.Cleanup(func() { other.Close() })
	elsewhere, _ := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "another-service", Users: users})
	t.Cleanup(func() { elsewhere.Close() })
	short, _ := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users, TokenLifetime: time.Second})
	t.Cleanup(func() { short.Close() })
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, _ := emitter.New(emitter.Config{JetStream: js, Timeout: 2 * time.Second})
	t.Cleanup(func() { em.Close() })
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	_, epriv, _ := ed25519.GenerateKey(rand.Reader)
	esigner, _ := ssh.NewSignerFromKey(epriv)
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	acfg := api.Config{Auth: v, Approvals: b, Emitter: em, DB: db, Tenant: "ops", // the API's own tenant: none of the data's
		Evidence: &api.EvidenceConfig{Dir: t.TempDir(), Signer: esigner, LogVKey: signer.Verifier().String(), Generator: "test"}, Keys: keys}
	h, err := api.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &readFixture{srv: httptest.NewServer(h), apiCfg: acfg, tokens: map[string]string{}, vkey: signer.Verifier().String(), db: db, cfg: pcfg, evidenceKey: esigner.PublicKey(), js: js, approvals: b,
		log: l, keys: keys,
		stream: func() []natstest.Stored { return natstest.Events(t, js, bus.EventsStream) }}
	t.Cleanup(f.srv.Close)
	for _, u := range users {
		if f.tokens[u.Name], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u.Name, u.Secret); err != nil {
			t.Fatal(err)
		}
	}
	f.otherTok, _ = identity.ClientCredentialsToken(t.Context(), other.Issuer, "carol", "c")
	f.audTok, _ = identity.ClientCredentialsToken(t.Context(), elsewhere.Issuer, "carol", "c")
	f.shortTok, _ = identity.ClientCredentialsToken(t.Context(), short.Issuer, "carol", "c")
	return f
}

func (f *readFixture) get(t *testing.T, path, token string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func TestReadPath(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	accessed := func() int {
		n := 0
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed {
				n++
			}
		}
		return n
	}

	// Keyset pagination over a filter: dave's 10 events, 4 per page.
	var got []api.EventResult
	after := ""
	for pages := 0; ; pages++ {
		code, _, body := f.get(t, "/v1/events?actor=dave&limit=4"+after, carol)
		if code != 200 {
			t.Fatalf("events: %d %s", code, body)
		}
		var page api.EventPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Events...)
		if page.Next == nil {
			break
		}
		after = fmt.Sprintf("&after=%d", *page.Next)
	}
	if len(got) != 10 || got[0].Index != 3 || got[9].Index != 39 {
		t.Fatalf("dave's events: %d, first %d, last %d; want 10 from 3 to 39", len(got), got[0].Index, got[len(got)-1].Index)
	}
	if n := accessed(); n != 3 {
		t.Errorf("%d audit.accessed events after three pages, want 3", n)
	}

	// One of them, proven with independent code: the record's bytes hash
	// to its leaf, the checkpoint's signature checks with x/mod's note,
	// the path with transparency-dev/merkle.
	ev := got[5]
	record, _ := base64.StdEncoding.DecodeString(ev.Record)
	// A bound record (FORMAT §2.4, version 3): the leaf covers the 25-byte
	// header, the tenant hash and the event's digest; the event follows.
	if record[0] != 3 || len(record) < 89 {
		t.Fatalf("record of index %d: version %d, %d bytes; want a bound record", ev.Index, record[0], len(record))
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(record[:89])
	digest := sha256.Sum256(record[89:])
	tenant := sha256.Sum256([]byte("auditledger tenant\x00acme"))
	if hex.EncodeToString(leaf) != ev.Leaf || !bytes.Equal(digest[:], record[57:89]) || !bytes.Equal(tenant[:], record[25:57]) ||
		!strings.Contains(string(record), "WHERE a < b") {
		t.Fatalf("record of index %d does not hash to its leaf, is not bound to its event and tenant, or lost its bytes", ev.Index)
	}
	code, ctype, body := f.get(t, fmt.Sprintf("/v1/proofs/inclusion?event_id=ev-%d", ev.Index), carol)
	if code != 200 || !strings.HasPrefix(ctype, "text/plain") {
		t.Fatalf("inclusion proof: %d %s %s", code, ctype, body)
	}
	p, err := ledger.ParseInclusionProof([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	nv, _ := note.NewVerifier(f.vkey)
	n, err := note.Open(p.Checkpoint, note.VerifierList(nv))
	if err != nil {
		t.Fatalf("the proof's checkpoint does not verify with x/mod's note: %v", err)
	}
	cp, _ := ledger.ParseCheckpointBody([]byte(n.Text))
	path := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		path[i] = p.Hashes[i][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, leaf, path, cp.Root[:]); err != nil || p.Index != ev.Index || cp.Size != 40 {
		t.Fatalf("inclusion of %d in %d: %v", p.Index, cp.Size, err)
	}
	// Consistency between two signed sizes, and the latest checkpoint.
	code, _, body = f.get(t, "/v1/proofs/consistency?from=11&to=24", carol)
	if code != 200 || !strings.HasPrefix(body, "auditledger.dev/tlog-consistency@v1\nold 11\nnew 24\n") {
		t.Fatalf("consistency: %d %s", code, body)
	}
	if code, _, body = f.get(t, "/v1/checkpoints/latest", carol); code != 200 || !strings.Contains(body, "\n40\n") {
		t.Fatalf("latest checkpoint: %d %s", code, body)
	}

	// Refusals: status and a problem document.
	time.Sleep(1100 * time.Millisecond) // the short-lived token expires
	for _, c := range []struct {
		name, path, token string
		code              int
		param             string
	}{
		{"no token", "/v1/events", "", 401, ""},
		{"expired token", "/v1/events", f.shortTok, 401, ""},
		{"another issuer", "/v1/events", f.otherTok, 401, ""},
		{"another audience", "/v1/events", f.audTok, 401, ""},
		{"no role", "/v1/events", f.tokens["alice"], 403, ""},
		{"unknown parameter", "/v1/events?colour=red", carol, 400, "colour"},
		{"limit", "/v1/events?limit=0", carol, 400, "limit"},
		{"since", "/v1/events?since=yesterday", carol, 400, "since"},
		{"type", "/v1/events?type=command.executed,drop.table", carol, 400, "type"},
		{"after", "/v1/events?after=-1", carol, 400, "after"},
		{"tenant", "/v1/events?tenant=" + url.QueryEscape("acme' OR 1=1"), carol, 400, "tenant"},
		{"index and event_id", "/v1/proofs/inclusion?index=1&event_id=ev-1", carol, 400, "index"},
		{"unsigned size", "/v1/proofs/inclusion?index=1&size=5", carol, 400, "size"},
		{"from beyond to", "/v1/proofs/consistency?from=40&to=24", carol, 400, "from"},
		{"unknown event", "/v1/proofs/inclusion?event_id=nope", carol, 404, ""},
	} {
		code, ctype, body := f.get(t, c.path, c.token)
		var prob api.Problem
		json.Unmarshal([]byte(body), &prob)
		if code != c.code || ctype != "application/problem+json" || prob.Status != c.code || prob.Detail == "" || prob.Param != c.param {
			t.Errorf("%s: %d %s %s; want %d with a problem document naming %q", c.name, code, ctype, body, c.code, c.param)
		}
	}

	// Injection attempts in every free-text filter are values, nothing more.
	for _, param := range []string{"actor", "email", "session", "target", "q"} {
		// (A LIKE wildcard that were not escaped, % in q, would match all.
		// Every event holds a literal "_", so it is left out for q.)
		for _, attack := range []string{"x' OR '1'='1", "'; DROP TABLE events; --", `%`, `%_%`, `\`} {
			code, _, body := f.get(t, "/v1/events?"+param+"="+url.QueryEscape(attack), carol)
			var page api.EventPage
			json.Unmarshal([]byte(body), &page)
			if code != 200 || len(page.Events) != 0 {
				t.Errorf("%s=%q: %d, %d events; want 200 and none", param, attack, code, len(page.Events))
			}
		}
	}
	var count int
	if err := f.db.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&count); err != nil || count != 40 {
		t.Fatalf("events table after the attempts: %d %v", count, err)
	}
	// q is a literal substring, case-insensitive.
	code, _, body = f.get(t, "/v1/events?q="+url.QueryEscape("select 17 from"), carol)
	var page api.EventPage
	json.Unmarshal([]byte(body), &page)
	if code != 200 || len(page.Events) != 1 || page.Events[0].Index != 17 {
		t.Errorf("q: %d %s", code, body)
	}
	// A search for a card number is recorded, with the number replaced:
	// the writer would refuse a record holding it.
	if code, _, body := f.get(t, "/v1/events?q="+url.QueryEscape("4111 1111 1111 1111"), carol); code != 200 {
		t.Fatalf("q with a card number: %d %s", code, body)
	}
	var rec []byte
	for _, s := range f.stream() {
		if s.Event.Type == events.AuditAccessed && bytes.Contains(s.Event.Payload, []byte("REDACTED:credit_card")) {
			rec = s.Event.Payload
		}
	}
	if rec == nil || bytes.Contains(rec, []byte("4111")) {
		t.Errorf("the search for a card number is recorded as %s; want it recorded with the number replaced", rec)
	}
}

// httpTiles is golang.org/x/mod/sumdb/tlog's TileReader over the API's
// C2SP tile paths: an independent client of the tiles.
type httpTiles struct {
	t     *testing.T
	f     *readFixture
	token string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		// x/mod's path carries the height: tile/8/L/N → C2SP's tile/L/N.
		p := strings.Replace(strings.TrimPrefix(tile.Path(), "tile/8/"), "data/", "entries/", 1)
		code, _, body := h.f.get(h.t, "/v1/log/tile/"+p, h.token)
		if code != 200 {
			return nil, fmt.Errorf("GET tile/%s: %d %s", p, code, body)
		}
		out[i] = []byte(body)
	}
	return out, nil
}

func (httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// The log as C2SP tiles, read by x/mod/sumdb/tlog's tile client: it
// checks every tile it reads against the signed root, then proves
// inclusion and consistency with them; the entry bundle's records hash to
// the leaves.
func TestTiles(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	code, _, body := f.get(t, "/v1/log/checkpoint", carol)
	if code != 200 {
		t.Fatalf("checkpoint: %d %s", code, body)
	}
	nv, _ := note.NewVerifier(f.vkey)
	n, err := note.Open([]byte(body), note.VerifierList(nv))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
	thr := tlog.TileHashReader(tree, httpTiles{t, f, carol})
	if h, err := tlog.TreeHash(tree.N, thr); err != nil || h != tree.Hash {
		t.Fatalf("tree hash from tiles: %v %v", h, err)
	}
	for i := int64(0); i < tree.N; i++ {
		p, err := tlog.ProveRecord(tree.N, i, thr)
		if err != nil {
			t.Fatalf("prove %d: %v", i, err)
		}
		leaf, err := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, leaf[0]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	old, err := tlog.TreeHash(24, thr)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tlog.ProveTree(tree.N, 24, thr)
	if err != nil || tlog.CheckTree(tp, tree.N, tree.Hash, 24, old) != nil {
		t.Fatalf("consistency 24→%d from tiles: %v", tree.N, err)
	}
	// The entry bundle: 40 records, each hashing to its leaf.
	code, _, bundle := f.get(t, "/v1/log/tile/entries/000.p/40", carol)
	if code != 200 {
		t.Fatalf("entries: %d %s", code, bundle)
	}
	b := []byte(bundle)
	for i := int64(0); i < 40; i++ {
		if len(b) < 2 {
			t.Fatalf("entry bundle ends at entry %d", i)
		}
		l := int(b[0])<<8 | int(b[1])
		rec := b[2 : 2+l]
		b = b[2+l:]
		leaf, _ := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if tlog.RecordHash(rec) != leaf[0] {
			t.Fatalf("entry %d does not hash to its leaf", i)
		}
	}
	if len(b) != 0 {
		t.Fatal("bytes after the last entry")
	}
	// Beyond the signed tree, and a malformed path.
	if code, _, _ := f.get(t, "/v1/log/tile/0/000.p/41", carol); code != 404 {
		t.Errorf("a tile beyond the tree: %d, want 404", code)
	}
	if code, _, _ := f.get(t, "/v1/log/tile/63/x999/x999/x999/x999/x999/999", carol); code != 404 {
		t.Errorf("a tile far beyond the tree: %d, want 404", code)
	}
	if code, _, _ := f.get(t, "/v1/log/tile/0/12", carol); code != 400 {
		t.Errorf("a malformed tile path: %d, want 400", code)
	}
	if code, _, _ := f.get(t, "/v1/log/tile/0/000.p/40", ""); code != 401 {
		t.Errorf("a tile without a token: %d, want 401", code)
	}
}

// Sessions: the list says which have gaps in session_seq; a timeline
// lists the events in sequence order and the missing numbers.
func TestSessions(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	code, _, body := f.get(t, "/v1/sessions?tenant=acme", carol)
	var list []api.SessionSummary
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 4 {
		t.Fatalf("sessions: %d %s", code, body)
	}
	for _, s := range list {
		if s.HasGaps != (s.SessionID == "s2") || s.Events != 10 {
			t.Errorf("session %s: %d events, has_gaps %v", s.SessionID, s.Events, s.HasGaps)
		}
	}
	// The verification status: none yet, then the projector's.
	if code, _, _ := f.get(t, "/v1/verify/status", carol); code != 404 {
		t.Errorf("verify status before any verification: %d, want 404", code)
	}
	if _, err := projections.VerifyNow(t.Context(), f.cfg); err != nil {
		t.Fatal(err)
	}
	code, _, body = f.get(t, "/v1/verify/status", carol)
	var v projections.Verification
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || !v.OK || v.Size != 40 || v.Root == "" {
		t.Errorf("verify status: %d %s", code, body)
	}
	if code, ctype, body := f.get(t, "/v1/openapi.json", f.tokens["alice"]); code != 200 || ctype != "application/json" || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Errorf("openapi.json with any valid token: %d %s", code, ctype)
	}
	if code, _, _ := f.get(t, "/v1/openapi.json", ""); code != 401 {
		t.Errorf("openapi.json without a token: %d, want 401", code)
	}
	code, _, body = f.get(t, "/v1/sessions/s2?tenant=acme", carol)
	var tl api.Timeline
	if err := json.Unmarshal([]byte(body), &tl); code != 200 || err != nil {
		t.Fatalf("timeline: %d %s", code, body)
	}
	if len(tl.Events) != 10 || len(tl.Gaps) != 1 || tl.Gaps[0] != (api.Gap{From: 6, To: 6}) {
		t.Errorf("timeline of s2: %d events, gaps %v; want 10 and seq 6 missing", len(tl.Events), tl.Gaps)
	}
	// A reader in this process (the console) gets the same answer without
	// the indentation.
	req := httptest.NewRequest("GET", "/v1/sessions/s2?tenant=acme", nil)
	req.Header.Set("Authorization", "Bearer "+carol)
	rec := compactRecorder{httptest.NewRecorder()}
	f.srv.Config.Handler.ServeHTTP(rec, req)
	var want bytes.Buffer
	if err := json.Compact(&want, []byte(body)); err != nil || rec.Code != 200 || rec.Body.String() != want.String()+"\n" {
		t.Errorf("compact timeline: %d\n%.300s\nwant\n%.300s", rec.Code, rec.Body.String(), want.String())
	}
	// The same through the metrics' wrapper, as the api role serves it;
	// and a reader that takes the value gets the same answer as a value.
	cfg := f.apiCfg
	cfg.Metrics = telemetry.NewHTTP(prometheus.NewRegistry(), "api")
	measured, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec = compactRecorder{httptest.NewRecorder()}
	measured.ServeHTTP(rec, req.Clone(t.Context()))
	if rec.Code != 200 || rec.Body.String() != want.String()+"\n" {
		t.Errorf("compact timeline through the metrics' writer: %d\n%.300s", rec.Code, rec.Body.String())
	}
	dr := &directRecorder{ResponseRecorder: httptest.NewRecorder()}
	measured.ServeHTTP(dr, req.Clone(t.Context()))
	taken, ok := dr.value.(api.Timeline)
	if !ok || dr.Code != 200 || dr.Body.Len() != 0 || dr.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("a reader taking the value: %d %T, body %.100q", dr.Code, dr.value, dr.Body.String())
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(taken); err != nil || b.String() != want.String()+"\n" {
		t.Errorf("the value taken, as JSON:\n%.300s\nwant\n%.300s", b.String(), want.String())
	}
	// Refusals stay problem documents.
	bad := httptest.NewRequest("GET", "/v1/sessions/s2?tenant=globex", nil)
	bad.Header.Set("Authorization", "Bearer "+carol)
	dr = &directRecorder{ResponseRecorder: httptest.NewRecorder()}
	measured.ServeHTTP(dr, bad)
	if dr.Code != 403 || dr.value != nil || !strings.Contains(dr.Body.String(), "outside your scope") {
		t.Errorf("a refusal to a reader taking values: %d %v %s", dr.Code, dr.value, dr.Body.String())
	}
	for _, c := range []struct {
		path  string
		code  int
		param string
	}{
		{"/v1/sessions/s2", 400, "tenant"},
		{"/v1/sessions/nope?tenant=acme", 404, ""},
		{"/v1/sessions?limit=5000", 400, "limit"},
		{"/v1/sessions?actor=" + url.QueryEscape("x' OR '1'='1"), 200, ""},
	} {
		code, _, body := f.get(t, c.path, carol)
		var p api.Problem
		json.Unmarshal([]byte(body), &p)
		if code != c.code || p.Param != c.param {
			t.Errorf("%s: %d %s; want %d naming %q", c.path, code, body, c.code, c.param)
		}
	}
}

// compactRecorder asks for compact JSON, as the console's in-process
// calls do.
type compactRecorder struct{ *httptest.ResponseRecorder }

func (compactRecorder) CompactJSON() bool { return true }

// directRecorder takes the API's answers as values, as the console's
// in-process reads do.
type directRecorder struct {
	*httptest.ResponseRecorder
	value any
}

func (d *directRecorder) TakeJSON(v any) bool { d.value = v; return true }

// A NUL byte or invalid UTF-8 in any query parameter, cursor or path
// segment is a bad request naming the parameter, never a database error.
func TestReadPathRefusesBytesPostgreSQLCannotStore(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	for _, c := range []struct{ path, param string }{
		{"/v1/events?actor=a%00b", "actor"},
		{"/v1/events?q=%ff%fe", "q"},
		{"/v1/events?session=s1%00", "session"},
		{"/v1/events?target=%c3%28", "target"},
		{"/v1/events?email=%00", "email"},
		{"/v1/sessions?after=s%00", "after"},
		{"/v1/sessions?actor=%ff", "actor"},
		{"/v1/sessions/s1%00?tenant=acme", "path"},
		{"/v1/sessions/%ff?tenant=acme", "path"},
		{"/v1/proofs/inclusion?event_id=ev-1%00", "event_id"},
		{"/v1/proofs/inclusion?event_id=%ff", "event_id"},
		{"/v1/events?%ff=1", "%FF"},
		{"/v1/approvals?status=%00", "status"},
	} {
		code, ctype, body := f.get(t, c.path, carol)
		var p api.Problem
		json.Unmarshal([]byte(body), &p)
		if code != 400 || ctype != "application/problem+json" || p.Param != c.param {
			t.Errorf("%s: %d %s; want 400 naming %q", c.path, code, body, c.param)
		}
	}
}
