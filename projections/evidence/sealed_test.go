package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections"
)

// A bundle built after an erasure names the erased sealed fields, shows
// sealed values in its CSVs as (sealed) or (erased), never their bytes, and
// verifies; a manifest naming a field erased that the events do not seal
// under that pseudonym fails, even re-signed.
func TestBundleShowsErasedFields(t *testing.T) {
	ctx := t.Context()
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := ledger.GenerateKey(nil, "evidence.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	t0 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := strings.Repeat("a1", 16), strings.Repeat("b2", 16)
	tok := func(p string) string { return "pii1." + p + "." + strings.Repeat("Q", 40) }
	ev := func(id, subject, email string) []byte {
		return fmt.Appendf(nil, `{"version":1,"id":%q,"type":"session.started","time":"2026-07-01T00:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp","subject":%q,"email":%q,"kind":"human"},"session_id":"s","session_seq":1,"payload":{}}`, id, subject, email)
	}
	erasure := fmt.Appendf(nil, `{"version":1,"id":"erasure/x/performed","type":"erasure.performed","time":"2026-07-01T02:00:00Z","tenant":"acme","source":{"kind":"cli","instance":"auditledger-admin"},"actor":{"issuer":"auditledger-admin","subject":"ops@host","kind":"human"},"payload":{"pseudonym":%q,"fields":["actor.email"],"reason":"request 42","by":"ops@host"}}`, p1)
	for i, batch := range [][][]byte{
		{ev("e1", "jane", tok(p1)), ev("e2", "jane", tok(p1)), ev("e3", "joe", tok(p2))},
		{erasure},
	} {
		now = t0.Add(time.Duration(i) * 2 * time.Hour)
		var es []ledger.Entry
		for _, e := range batch {
			es = append(es, ledger.Entry{Event: e})
		}
		if _, err := l.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	db, err := pgxpool.New(ctx, pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := projections.Rebuild(ctx, projections.Config{DB: db, Store: store, Verifier: signer.Verifier()}, nil); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ss, _ := ssh.NewSignerFromKey(priv)
	r := &run{db: db, signer: ss, vkey: vkey, t0: t0, verifer: signer.Verifier()}
	// The period holds the sealed events only; the erasure came after it.
	r.build(t, "acme", t0.Add(-time.Minute), t0.Add(time.Hour))
	sf := r.m.SealedFields
	if sf == nil || sf.Count != 3 || len(sf.Erased) != 2 || sf.Erased[0].Pseudonym != p1 || sf.Erased[0].Index != 0 || sf.Erased[1].Index != 1 || sf.Erased[0].ErasedBy != 3 {
		t.Fatalf("sealed fields %+v", sf)
	}
	rep, err := r.verify(r.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sealed != 3 || rep.Erased != 2 {
		t.Errorf("verify: %d sealed, %d erased; want 3 and 2", rep.Sealed, rep.Erased)
	}
	files := zipFiles(t, r.bundle)
	csv := string(files["controls/5.16/identities.csv"])
	if !strings.Contains(csv, "jane,(erased)") || !strings.Contains(csv, "joe,(sealed)") || strings.Contains(csv, "pii1.") {
		t.Errorf("identities.csv shows sealed values as:\n%s", csv)
	}
	if !strings.Contains(string(files["index.html"]), "2 erased") {
		t.Errorf("index.html does not say the fields are erased")
	}
	// An erased field the events do not hold, re-signed with the key.
	f := map[string][]byte{}
	for k, v := range files {
		f[k] = bytes.Clone(v)
	}
	f["manifest.json"] = bytes.Replace(f["manifest.json"], []byte(`"index": 1,`), []byte(`"index": 2,`), 1)
	resign(t, f, ss)
	if _, err := r.verify(rezip(t, f)); err == nil || !strings.Contains(err.Error(), "holds no such sealed field") {
		t.Errorf("a manifest naming a field erased that is not: %v", err)
	}
}
