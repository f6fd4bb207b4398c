package api_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bulk/bulktest"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// A session whose output turned bulk, of real parts: the pieces sealed
// by the key store on the bus, one stored by the writer (bulk/<name>),
// one still on AUDIT_BULK, both named by events sealed in a file store
// and projected into PostgreSQL. An auditor of the tenant gets the cast
// with the pieces opened and what the detectors find replaced, and
// POST /v1/sessions/{id}/pieces opens the objects a tool read itself the
// same way; an auditor of another tenant and an approver are refused
// (recorded); every opening is recorded with the pseudonym. Once the
// subject is erased the pieces play as erased; a damaged piece fails
// the cast, naming it.
func TestCastOpensBulkPieces(t *testing.T) {
	rg := newBulkRig(t)
	srv, tok, js, keys, store, seal := rg.srv, rg.tok, rg.js, rg.keys, rg.store, rg.seal

	// The session: text, a piece stored, a piece on the bus only (with a
	// card number), text.
	s := bulktest.New(t, keys, js, store, "acme", "ssh-bulk-1", 100, 30)
	raw := make([]byte, 380<<10)
	// Bytes of a fixed seed: random base64 now and then decodes, at one of
	// its alignments, to text the detectors find an address in, which a
	// chunk would record replaced too.
	mathrand.NewChaCha8([32]byte{'a', 'p', 'i'}).Read(raw)
	big := base64.StdEncoding.EncodeToString(raw)
	s.Text("stdout", []byte("$ cat dump\n"))
	s.Piece("stdout", []byte(big), bulktest.InStore)
	second, secondObject := s.Piece("stdout", []byte("\npaid with 4111 1111 1111 1111 today\n"), bulktest.OnBus)
	s.Text("stdout", []byte("$ "))
	s.End()
	seal(s.Events)

	castPath := "/v1/sessions/" + s.ID + "/cast?tenant=acme"
	code, body := callAPI(t, srv, "GET", castPath, tok["carol"], "")
	if code != 200 {
		t.Fatalf("cast: %d %s", code, body)
	}
	played := castOutput(t, body)
	if want := "$ cat dump\n" + big + "\npaid with [REDACTED:credit_card] today\n$ "; played != want {
		t.Fatalf("the cast plays %d bytes, want %d (%q…)", len(played), len(want), played[max(0, len(played)-80):])
	}
	pseudonym := mustPiece(t, second).Pseudonym
	checkAccessed(t, js, "session cast", 1, pseudonym)

	// The pieces endpoint, with the object as a tool read it: the piece
	// is played beside the one before it, which the API reads itself.
	req := api.PiecesRequest{Pieces: []api.PieceObject{
		{Stream: "stdout", Offset: mustPiece(t, second).Offset, Bytes: mustPiece(t, second).Bytes, Ref: mustPiece(t, second).Ref, Content: secondObject},
	}}
	rb, _ := json.Marshal(req)
	piecesPath := "/v1/sessions/" + s.ID + "/pieces?tenant=acme"
	code, body = callAPI(t, srv, "POST", piecesPath, tok["carol"], string(rb))
	var res api.PiecesResult
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || len(res.Data) != 1 ||
		string(res.Data[0]) != "\npaid with [REDACTED:credit_card] today\n" {
		t.Fatalf("pieces as carol: %d %.300s", code, body)
	}
	checkAccessed(t, js, "session pieces", 2, pseudonym)
	for user, path := range map[string]string{"olga": piecesPath, "rita": piecesPath} {
		if code, body := callAPI(t, srv, "POST", path, tok[user], string(rb)); code != 403 || strings.Contains(body, "today") {
			t.Errorf("pieces as %s: %d %.200s, want 403", user, code, body)
		}
	}
	// Another tenant's place: the tenant is in the caller's scope, but
	// the pieces were sealed at acme's.
	if code, body := callAPI(t, srv, "POST", "/v1/sessions/"+s.ID+"/pieces?tenant=globex", tok["olga"], string(rb)); code != 409 || strings.Contains(body, "today") {
		t.Errorf("acme's pieces at globex's place: %d %.200s, want 409", code, body)
	}
	refused := 0
	for _, st := range natstest.Events(t, js, "") {
		if st.Event.Type == events.CommandBlocked && st.Event.Actor.Subject == "olga" && strings.Contains(string(st.Event.Payload), "acme") {
			refused++
		}
	}
	if refused == 0 {
		t.Error("the refusal of olga is not recorded")
	}

	// A damaged piece: another object under the second piece's name on
	// the bus (the writer's copy not made yet).
	bad := []byte(strings.Repeat("x", len(secondObject)))
	if _, err := js.Publish(t.Context(), bus.BulkSubject("gw-1", mustPiece(t, second).Object), bad); err != nil {
		t.Fatal(err)
	}
	if code, body := callAPI(t, srv, "GET", castPath, tok["carol"], ""); code != 409 || !strings.Contains(body, mustPiece(t, second).Object) || !strings.Contains(body, second.ID) {
		t.Errorf("cast with a damaged piece: %d %.300s, want 409 naming the object and event", code, body)
	}
	// The writer's copy: the store's is read first.
	if err := store.Create(t.Context(), bulk.Name(mustPiece(t, second).Object), secondObject, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if code, body := callAPI(t, srv, "GET", castPath, tok["carol"], ""); code != 200 || !strings.Contains(castOutput(t, body), "[REDACTED:credit_card] today") {
		t.Errorf("cast from the store's copy: %d %.300s", code, body)
	}

	if _, err := keys.Erase(t.Context(), "acme", s.Issuer, s.Subject); err != nil {
		t.Fatal(err)
	}
	code, body = callAPI(t, srv, "GET", castPath, tok["carol"], "")
	if want := "$ cat dump\n" + sshproxy.ErasedPiece + sshproxy.ErasedPiece + "$ "; code != 200 || castOutput(t, body) != want {
		t.Errorf("cast after erasure: %d %q, want %q", code, castOutput(t, body), want)
	}
}

// POST /v1/sessions/{id}/pieces plays each piece as the session's cast
// does, whatever the request leaves out: a card number split between two
// pieces, asked for one at a time, is replaced in each (the API reads
// the other from the store, the session's events saying it joins), and
// a piece's part of a value the next text chunk replaced (its
// bulk_before) is not shown. A piece the projection holds no event for,
// or whose next chunk it does not hold while the session goes on, is
// 409, naming that; a request with the members the API no longer takes
// from callers (cut, context) is refused.
func TestPiecesPlayAsTheCast(t *testing.T) {
	rg := newBulkRig(t)
	s := bulktest.New(t, rg.keys, rg.js, rg.store, "acme", "ssh-bulk-2", 100, 30)
	a, b := []byte("report line\ncard 4111 1111"), []byte(" 1111 1111 ok\nmore\n")
	c := []byte(strings.Repeat("log line\n", 50) + "card 4111 1111 11")
	s.Text("stdout", []byte("$ cat report\n"))
	ea, oa := s.Piece("stdout", a, bulktest.InStore)
	eb, ob := s.Piece("stdout", b, bulktest.InStore)
	s.Text("stdout", []byte("$ cat log\n"))
	ec, oc := s.Piece("stdout", c, bulktest.InStore)
	s.TextWith("stdout", []byte("[REDACTED:credit_card] ok\n"), len(" 11 1111")+4, map[string]any{"bulk_before": len("4111 1111 11")})
	rg.seal(s.Events[:len(s.Events)-1]) // the last chunk not yet projected
	path := "/v1/sessions/" + s.ID + "/pieces?tenant=acme"
	ask := func(e *events.Event, object []byte) (int, string, [][]byte) {
		t.Helper()
		p := mustPiece(t, e)
		rb, _ := json.Marshal(api.PiecesRequest{Pieces: []api.PieceObject{{Stream: p.Stream, Offset: p.Offset, Bytes: p.Bytes, Ref: p.Ref, Content: object}}})
		code, body := callAPI(t, rg.srv, "POST", path, rg.tok["carol"], string(rb))
		var res api.PiecesResult
		json.Unmarshal([]byte(body), &res)
		return code, body, res.Data
	}
	// The text chunk after the last piece is not projected, and the
	// session has not ended: that piece is not played.
	if code, body, _ := ask(ec, oc); code != 409 || !strings.Contains(body, mustPiece(t, ec).Object) || !strings.Contains(body, "not projected yet") {
		t.Errorf("a piece whose next chunk is not projected: %d %.300s, want 409 naming it", code, body)
	}
	rg.seal(s.Events[len(s.Events)-1:])
	for _, c := range []struct {
		e      *events.Event
		object []byte
		want   string
	}{
		{ea, oa, "report line\ncard [REDACTED:credit_card]"},
		{eb, ob, "[REDACTED:credit_card] ok\nmore\n"},
		{eb, nil, "[REDACTED:credit_card] ok\nmore\n"}, // read by the API
		{ec, oc, strings.Repeat("log line\n", 50) + "card "},
	} {
		code, body, data := ask(c.e, c.object)
		if code != 200 || len(data) != 1 || string(data[0]) != c.want {
			t.Errorf("piece of %s alone: %d %.300s, want %q", c.e.ID, code, body, c.want)
		}
	}
	// Another session's piece, or one named at another place.
	p := mustPiece(t, eb)
	for _, q := range []api.PieceObject{
		{Stream: "stdout", Offset: p.Offset + 1, Bytes: p.Bytes, Ref: p.Ref},
		{Stream: "stderr", Offset: p.Offset, Bytes: p.Bytes, Ref: p.Ref},
		{Stream: "stdout", Offset: p.Offset, Bytes: p.Bytes, Ref: bulk.Ref{Object: strings.Repeat("ab", 32), Pseudonym: p.Pseudonym, Size: p.Size}},
	} {
		rb, _ := json.Marshal(api.PiecesRequest{Pieces: []api.PieceObject{q}})
		if code, body := callAPI(t, rg.srv, "POST", path, rg.tok["carol"], string(rb)); code != 409 || strings.Contains(body, "more") {
			t.Errorf("%+v: %d %.300s, want 409", q, code, body)
		}
	}
	// The request's content must be the object its name says.
	if code, body, _ := ask(eb, oa); code != 409 || !strings.Contains(body, p.Object) {
		t.Errorf("another object as the piece's content: %d %.300s, want 409 naming the piece", code, body)
	}
	for _, extra := range []string{`"cut":0`, `"context":true`, `"rows":24`} {
		body := `{"pieces":[{"stream":"stdout","offset":` + fmt.Sprint(p.Offset) + `,"bytes":` + fmt.Sprint(p.Bytes) + `,"object":"` + p.Object + `","pseudonym":"` + p.Pseudonym + `","size":` + fmt.Sprint(p.Size) + `,` + extra + `}]}`
		if code, res := callAPI(t, rg.srv, "POST", path, rg.tok["carol"], body); code != 400 {
			t.Errorf("a request with %s: %d %.200s, want 400", extra, code, res)
		}
	}
}

// castOutput is the output frames of an asciicast v2 file, joined.
func castOutput(t *testing.T, cast string) string {
	t.Helper()
	var b strings.Builder
	lines := strings.Split(strings.TrimSpace(cast), "\n")
	for _, l := range lines[1:] {
		var f []any
		if err := json.Unmarshal([]byte(l), &f); err != nil || len(f) != 3 {
			t.Fatalf("cast line %q: %v", l, err)
		}
		if f[1] == "o" {
			b.WriteString(f[2].(string))
		}
	}
	return b.String()
}

func mustPiece(t *testing.T, e *events.Event) bulk.Piece {
	t.Helper()
	p, ok, err := bulk.Of(e)
	if !ok || err != nil {
		t.Fatalf("event %s names no piece: %v", e.ID, err)
	}
	return p
}

// checkAccessed checks that the last audit.accessed of resource
// records pieces opened under pseudonym.
func checkAccessed(t *testing.T, js jetstream.JetStream, resource string, pieces int, pseudonym string) {
	t.Helper()
	var last *events.Event
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, st := range natstest.Events(t, js, "") {
			if st.Event.Type == events.AuditAccessed && strings.Contains(string(st.Event.Payload), `"resource":"`+resource+`"`) {
				last = st.Event
			}
		}
		if last == nil {
			return errors.New("not recorded yet")
		}
		return nil
	})
	var p struct {
		Pieces     int      `json:"pieces"`
		Pseudonyms []string `json:"pseudonyms"`
	}
	json.Unmarshal(last.Payload, &p)
	if p.Pieces < pieces || len(p.Pseudonyms) != 1 || p.Pseudonyms[0] != pseudonym {
		t.Errorf("%s recorded as %s, want %d pieces of pseudonym %s", resource, last.Payload, pieces, pseudonym)
	}
}

// bulkRig is an API over real parts for sessions with bulk pieces: the
// key store and AUDIT_BULK on a NATS server, a file store the writer
// seals to, and the projection in PostgreSQL; tok holds the tokens of
// carol (auditor of acme), olga (auditor of globex) and rita (approver
// of acme); seal seals events and projects them.
type bulkRig struct {
	srv   string
	tok   map[string]string
	js    jetstream.JetStream
	keys  *piikeys.Store
	store *file.Store
	seal  func(evs []*events.Event)
}

func newBulkRig(t *testing.T) *bulkRig {
	users := []oidcdev.User{
		{Name: "carol", Secret: "c", Groups: []string{"auditor", "tenant:acme"}},
		{Name: "olga", Secret: "o", Groups: []string{"auditor", "tenant:globex"}},
		{Name: "rita", Secret: "r", Groups: []string{"approver", "tenant:acme"}},
	}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{}
	for _, u := range users {
		if tok[u.Name], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u.Name, u.Secret); err != nil {
			t.Fatal(err)
		}
	}
	_, js := natstest.Start(t).Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	bulktest.EnsureStream(t, js)
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	broker, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := file.New(t.TempDir())
	logSigner := ledgertest.Signer(t, "api.test/log")
	lg, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: logSigner})
	if err != nil {
		t.Fatal(err)
	}
	pg := pgtest.StartT(t)
	db, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := projections.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Auth: auth, Approvals: broker, Emitter: em, DB: db, Tenant: "ops", Keys: keys, Bus: js, BulkStore: store})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	srv := hs.URL

	seal := func(evs []*events.Event) {
		t.Helper()
		var entries []ledger.Entry
		for _, e := range evs {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, ledger.Entry{Event: b})
		}
		if _, err := lg.Append(t.Context(), entries); err != nil {
			t.Fatal(err)
		}
		for {
			applied, err := projections.Step(t.Context(), projections.Config{DB: db, Store: store, Verifier: logSigner.Verifier()})
			if err != nil {
				t.Fatal(err)
			}
			if !applied {
				break
			}
		}
	}
	return &bulkRig{srv: srv, tok: tok, js: js, keys: keys, store: store, seal: seal}
}
