package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/projections/evidence"
)

// newRetentionRun seals, on S3 with Object Lock, two segments an hour
// apart under one retention of 24h and no retention record; then a
// writer configured with acme at 72h records the change (the default's
// record and acme's, in a segment of their own at t0+90m) and seals three
// more segments at t0+2h, +3h and +4h, each locked for the longest
// retention among its tenants.
func newRetentionRun(t *testing.T) *run {
	t.Helper()
	ctx := t.Context()
	store := lockedStore(t)
	t0 := time.Now().Add(-6 * time.Hour).Truncate(time.Second)
	skey, vkey, _ := ledger.GenerateKey(nil, "evidence.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	now := t0
	clock := func() time.Time { return now }
	sample := sampleEvents(t)
	seal := func(l *ledger.Log, seg int) {
		var es []ledger.Entry
		for i, ev := range sample {
			acme := bytes.Replace(ev, []byte(`"id":"sample-`), fmt.Appendf(nil, `"id":"s%d-sample-`, seg), 1)
			es = append(es, ledger.Entry{Event: acme})
			if i%3 == 0 {
				globex := bytes.Replace(acme, []byte(`"tenant":"acme"`), []byte(`"tenant":"globex"`), 1)
				globex = bytes.Replace(globex, []byte(`"id":"s`), []byte(`"id":"g`), 1)
				es = append(es, ledger.Entry{Event: globex})
			}
		}
		if _, err := l.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Retention: 24 * time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for seg := range 2 {
		now = t0.Add(time.Duration(seg)*time.Hour + 123456789)
		seal(l, seg)
	}
	// The writer taking the log with acme's own retention, as
	// ledger/writer does.
	now = t0.Add(90*time.Minute + 123456789)
	cfg := ledger.Retention{Default: 24 * time.Hour, Tenants: map[string]time.Duration{"acme": 72 * time.Hour}}
	l, err = ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Retention: cfg.Default, TenantRetention: cfg.Tenants, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	had, _ := l.RecordedRetention()
	recs, err := ledger.RetentionEntries(l.Origin(), l.Size(), cfg.Changes(had, "test configuration"), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d retention records, want the default's and acme's", len(recs))
	}
	if _, err := l.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for seg := 2; seg < 5; seg++ {
		now = t0.Add(time.Duration(seg)*time.Hour + 123456789)
		seal(l, seg)
	}
	// The log itself verifies against what it records.
	if _, err := ledger.Verify(ctx, store, ledger.VerifyOptions{Verifier: signer.Verifier()}); err != nil {
		t.Fatal(err)
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
	return &run{db: db, signer: ss, vkey: vkey, t0: t0, verifer: signer.Verifier()}
}

func (r *run) verifyLocked(bundle []byte, retention time.Duration) (*evidence.Report, error) {
	return evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: r.verifer,
		AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}, Retention: retention})
}

// TestBundleTenantRetention: a bundle carries its tenant's and the
// default's retention records — those before the range with their
// inclusion proofs, those in it whole in records.bin — and verify, given
// no --retention, requires each segment holding the tenant's records to
// be locked for the tenant's retention in force when it was sealed.
func TestBundleTenantRetention(t *testing.T) {
	r := newRetentionRun(t)
	segs := func(b []byte) []evidence.Segment {
		var s []evidence.Segment
		if err := json.Unmarshal(zipFiles(t, b)["log/segments.json"], &s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	// The change inside the range: segment 1 (before it), the retention
	// records' segment, and segment 2.
	r.build(t, "acme", r.t0.Add(30*time.Minute), r.t0.Add(150*time.Minute))
	if n := len(zipFiles(t, r.bundle)["log/retention.jsonl"]); n != 0 {
		t.Errorf("log/retention.jsonl holds %d bytes: no retention record precedes the range", n)
	}
	rep, err := r.verifyLocked(r.bundle, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rep.Retention); got != "[{32 * 1d 24h0m0s} {33 acme 3d 72h0m0s}]" {
		t.Errorf("retention folded: %s", got)
	}
	if got := fmt.Sprint(rep.Required); got != "[0s 72h0m0s 72h0m0s]" {
		t.Errorf("retention required per segment: %s, want none before the change, then acme's 72h", got)
	}
	if len(rep.Warnings) != 1 || !strings.HasPrefix(rep.Warnings[0], "1 segment(s) holding the tenant's records were sealed before the log recorded any retention") {
		t.Errorf("warnings %q: want one, for the segment sealed before any retention record", rep.Warnings)
	}

	// The retention records' own segment recorded as locked for the
	// default's 24h only: acme's record in it requires 72h.
	f := zipFiles(t, r.bundle)
	s := segs(r.bundle)
	short := s[1].Sealed.Add(24 * time.Hour).Truncate(time.Second).Add(time.Second)
	s[1].RetainUntil = &short
	f["log/segments.json"] = must(json.MarshalIndent(s, "", "  "))
	resign(t, f, r.signer)
	if _, err := r.verifyLocked(rezip(t, f), 0); err == nil || !strings.Contains(err.Error(), s[1].Name+" is locked until") ||
		!strings.Contains(err.Error(), "tenant acme's retention in force when it was sealed (72h0m0s, retention record 33)") {
		t.Errorf("the retention records' segment locked for 24h: %v", err)
	}

	// The change before the range: carried in log/retention.jsonl.
	r.build(t, "acme", r.t0.Add(150*time.Minute), r.t0.Add(270*time.Minute))
	files := zipFiles(t, r.bundle)
	if n := bytes.Count(files["log/retention.jsonl"], []byte("\n")); n != 2 {
		t.Fatalf("log/retention.jsonl holds %d lines, want the default's and acme's records", n)
	}
	rep, err = r.verifyLocked(r.bundle, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rep.Required); got != "[72h0m0s 72h0m0s]" || len(rep.Warnings) != 0 {
		t.Errorf("retention required per segment: %s, warnings %q", got, rep.Warnings)
	}
	// --retention stays a minimum the auditor can demand beyond it.
	if _, err := r.verifyLocked(r.bundle, 96*time.Hour); err == nil || !strings.Contains(err.Error(), "less than the retention (96h0m0s") {
		t.Errorf("--retention 96h over 72h locks: %v", err)
	}

	// globex has the default: its segments need 24h, which they have.
	globex := *r
	globex.build(t, "globex", r.t0.Add(150*time.Minute), r.t0.Add(270*time.Minute))
	rep, err = globex.verifyLocked(globex.bundle, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rep.Retention); got != "[{32 * 1d 24h0m0s}]" {
		t.Errorf("globex's bundle folded %s, want the default's record alone", got)
	}

	cases := []struct {
		name   string
		change func(map[string][]byte)
		want   []string
	}{
		{"a segment's lock recorded shorter than acme's retention", func(f map[string][]byte) {
			s := segs(r.bundle)
			short := s[1].Sealed.Add(48 * time.Hour).Truncate(time.Second)
			s[1].RetainUntil = &short
			f["log/segments.json"] = must(json.MarshalIndent(s, "", "  "))
		}, []string{"log/segments.json: " + segs(r.bundle)[1].Name + " is locked until ",
			"less than tenant acme's retention in force when it was sealed (72h0m0s, retention record 33)"}},
		{"a retention line moved to another index", func(f map[string][]byte) {
			f["log/retention.jsonl"] = bytes.Replace(f["log/retention.jsonl"], []byte(`"index":33`), []byte(`"index":34`), 1)
		}, []string{"log/retention.jsonl: line 2 (index 34): the line says index 34, its record is 33"}},
		{"a proof hash changed", func(f map[string][]byte) {
			lines := bytes.SplitAfter(f["log/retention.jsonl"], []byte("\n"))
			var l evidence.RetentionLine
			if err := json.Unmarshal(lines[0], &l); err != nil {
				t.Fatal(err)
			}
			h := must(base64.StdEncoding.DecodeString(l.Proof[0]))
			h[0] ^= 1
			l.Proof[0] = base64.StdEncoding.EncodeToString(h)
			lines[0] = append(must(json.Marshal(&l)), '\n')
			f["log/retention.jsonl"] = bytes.Join(lines, nil)
		}, []string{"log/retention.jsonl: line 1 (index 32): not in the tree at the start checkpoint"}},
		{"the file removed", func(f map[string][]byte) {
			delete(f, "log/retention.jsonl")
		}, []string{"log/retention.jsonl: missing from the bundle"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := zipFiles(t, r.bundle)
			c.change(f)
			if _, ok := f["log/retention.jsonl"]; !ok {
				// Removed from the manifest too, as one holding the
				// evidence key would.
				var m evidence.Manifest
				if err := json.Unmarshal(f["manifest.json"], &m); err != nil {
					t.Fatal(err)
				}
				for i, file := range m.Files {
					if file.Path == "log/retention.jsonl" {
						m.Files = append(m.Files[:i], m.Files[i+1:]...)
						break
					}
				}
				f["manifest.json"] = must(json.MarshalIndent(&m, "", "  "))
			}
			resign(t, f, r.signer)
			_, err := r.verifyLocked(rezip(t, f), 0)
			if err == nil {
				t.Fatalf("verify passed, want a failure saying %q", c.want)
			}
			for _, part := range c.want {
				if !strings.Contains(err.Error(), part) {
					t.Fatalf("verify: %v, want a failure saying %q", err, c.want)
				}
			}
		})
	}
}
