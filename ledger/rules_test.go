package ledger_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// The vectors of docs/FORMAT.md §10, in testdata/rules: each edge case a
// verifier written from the document must decide the same way. They are
// written by `go test ./ledger -run FormatRules -update` and checked here
// as committed.
const rulesDir = "testdata/rules"

// writeRuleVectors builds every vector from the golden log (7 records,
// segments at 0 and 3, the golden key).
func writeRuleVectors(t *testing.T) {
	ctx := context.Background()
	s := goldenKey(t)
	golden := func(name string) (*ledger.Log, *file.Store) {
		dir := filepath.Join(rulesDir, name)
		os.RemoveAll(dir)
		l, st := newLog(t, dir, s)
		if _, err := l.Append(ctx, entries(0, 3)); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, entries(3, 4)); err != nil {
			t.Fatal(err)
		}
		return l, st
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(rulesDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(rulesDir, 0o755)

	// An empty store (a directory holding only a file outside the
	// log's prefixes, so that git keeps it).
	os.RemoveAll(filepath.Join(rulesDir, "store-empty"))
	os.MkdirAll(filepath.Join(rulesDir, "store-empty"), 0o755)
	write("store-empty/README", []byte("An empty store: verify must fail (docs/FORMAT.md §10).\n"))

	// A record whose body is not an event, correctly chained, rooted and
	// signed with the log key.
	dir := filepath.Join(rulesDir, "store-not-an-event")
	os.RemoveAll(dir)
	l, _ := newLog(t, dir, s)
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0)}, {Event: []byte("xx")}}); err != nil {
		t.Fatal(err)
	}

	// A bound record (§2.4) whose tenant hash is another tenant's than
	// its event's, chained, rooted and signed with the log key.
	dir = filepath.Join(rulesDir, "store-bound-other-tenant")
	os.RemoveAll(dir)
	l, _ = newLog(t, dir, s)
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0)}, {Event: event(1), Tenant: "other"}}); err != nil {
		t.Fatal(err)
	}

	// The legacy form: an event outside a session with "session_seq":0
	// and no session_id, as releases before wrote it (§1).
	dir = filepath.Join(rulesDir, "store-legacy-session-seq-zero")
	os.RemoveAll(dir)
	l, _ = newLog(t, dir, s)
	legacy := []byte(`{"version":1,"id":"export-1","type":"evidence.exported","time":"2026-11-26T12:00:01Z","tenant":"acme","source":{"kind":"api","instance":"api-1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human","dev_identity":false},"session_seq":0,"payload":{"bundle_id":"b-1"}}`)
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0), Source: 1}, {Event: legacy, Source: 2}}); err != nil {
		t.Fatal(err)
	}

	// A rejection record whose seq (5) is not its record's source (2):
	// it would account for stream sequence 2 with another's rejection.
	dir = filepath.Join(rulesDir, "store-rejected-other-seq")
	os.RemoveAll(dir)
	l, _ = newLog(t, dir, s)
	ledger.UncheckedSources(l)
	rej, err := ledger.RejectedEntry("golden.auditledger.dev/log", ledger.Rejection{Seq: 5, Subject: "audit.events.acme.command.executed.p1", Reason: "x", SHA256: strings.Repeat("0", 64), Bytes: 1}, time.Date(2026, 11, 26, 12, 0, 2, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	rej.Source = 2
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0), Source: 1}, rej}); err != nil {
		t.Fatal(err)
	}

	// A ledger.segment.sealed record (reserved: no writer records it),
	// standing for no stream sequence.
	dir = filepath.Join(rulesDir, "store-segment-sealed")
	os.RemoveAll(dir)
	l, _ = newLog(t, dir, s)
	sealed := []byte(`{"type":"ledger.segment.sealed","version":1,"id":"ledger/segment/1","time":"2026-11-26T12:00:02Z","tenant":"_ledger","source":{"kind":"ledger","instance":"golden.auditledger.dev/log"},"actor":{"issuer":"auditledger","subject":"ledger","kind":"machine"},"payload":{}}`)
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0), Source: 1}, {Event: sealed}}); err != nil {
		t.Fatal(err)
	}

	// The writer's clock status (§2.1), between two events.
	dir = filepath.Join(rulesDir, "store-clock-status")
	os.RemoveAll(dir)
	l, _ = newLog(t, dir, s)
	clock, err := ledger.ClockEntry("golden.auditledger.dev/log", 1, ledger.ClockStatus{Synchronised: true, MaxErrorMicros: 8500, EstErrorMicros: 120, Status: 0x2001, Source: "chrony: time.example.com", Host: "ledger-0"},
		time.Date(2026, 11, 26, 12, 0, 2, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0), Source: 1}, clock, {Event: event(1), Source: 2}}); err != nil {
		t.Fatal(err)
	}

	// The writer's full verification (§2.1), between two events: it found
	// a gap record and a failed check (what it found is its payload; the
	// record itself verifies).
	dir = filepath.Join(rulesDir, "store-verification")
	os.RemoveAll(dir)
	l, _ = newLog(t, dir, s)
	at := uint64(40)
	verif, err := ledger.VerificationEntry("golden.auditledger.dev/log", 1, ledger.Verification{
		Started: time.Date(2026, 11, 26, 12, 0, 1, 0, time.UTC), Finished: time.Date(2026, 11, 26, 12, 0, 1, 500000000, time.UTC), Size: 41,
		Gaps:    []ledger.VerifiedGap{{Index: 12, FirstSeq: 10, LastSeq: 11}},
		Failure: &ledger.VerificationFailure{Object: "segments/00000000000000000040.seg", Index: &at, Error: "index 40: record hash chain broken"}},
		time.Date(2026, 11, 26, 12, 0, 2, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0), Source: 1}, verif, {Event: event(1), Source: 2}}); err != nil {
		t.Fatal(err)
	}

	// Bulk pieces (§1.7): the piece of §1.7's vector named by a
	// session.output between two events, stored as bulk/<name>; and the
	// same log with the piece's last byte changed, without the piece,
	// with a stray object under bulk/, and with a bulk event beside data.
	const bulkObject = "0101010101010101010101011e84e5dbff93cc6ca4b8b72b2c4141c4e07472ad1fad831bf822628d"
	const bulkName = "fac599f3d1ee50750652aea80fcdf49451a422881d593b4cb1a21748bfe885f0"
	object, _ := hex.DecodeString(bulkObject)
	bulkEvent := func(extra string) []byte {
		return []byte(`{"version":1,"id":"ssh-1.1","type":"session.output","time":"2026-11-26T12:00:01Z","tenant":"acme","source":{"kind":"ssh-gateway","instance":"ssh-1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"session_id":"ssh-1","session_seq":1,` +
			`"payload":{"stream":"stdout","offset":524288,"bytes":12,"bulk":{"object":"` + bulkName + `","pseudonym":"0123456789abcdef0123456789abcdef","size":40}` + extra + `}}`)
	}
	// Also: an object under bulk/ no record names (a warning), and the
	// bulk member spelled "Bulk" (refused: a reader matching names
	// without case would play it).
	for _, v := range []struct {
		name, extra string
		store       []byte // the object stored as bulk/<name>, if any
		stray       bool
		unnamed     []byte // an object stored under its own name, which no record names
		member      string // the bulk member's name, if not bulk
	}{
		{"store-bulk", "", object, false, nil, ""},
		{"store-bulk-changed", "", append(bytes.Clone(object[:len(object)-1]), object[len(object)-1]^1), false, nil, ""},
		{"store-bulk-missing", "", nil, false, nil, ""},
		{"store-bulk-stray", "", object, true, nil, ""},
		{"store-bulk-beside-data", `,"data":"aGVsbG8sIGJ1bGsK"`, object, false, nil, ""},
		{"store-bulk-unnamed", "", object, false, []byte("Jane Doe, card 4111 1111 1111 1111\n"), ""},
		{"store-bulk-case", "", object, false, nil, "Bulk"},
	} {
		dir = filepath.Join(rulesDir, v.name)
		os.RemoveAll(dir)
		l, st := newLog(t, dir, s)
		ev := bulkEvent(v.extra)
		if v.member != "" {
			ev = bytes.Replace(ev, []byte(`"bulk":`), []byte(`"`+v.member+`":`), 1)
		}
		if _, err := l.Append(ctx, []ledger.Entry{{Event: event(0), Source: 1}, {Event: ev, Source: 2}, {Event: event(1), Source: 3}}); err != nil {
			t.Fatal(err)
		}
		if v.unnamed != nil {
			if err := st.Create(ctx, ledger.BulkObjectName(hex.EncodeToString(sum256(v.unnamed))), v.unnamed, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		if v.store != nil {
			if err := st.Create(ctx, ledger.BulkObjectName(bulkName), v.store, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		if v.stray {
			if err := st.Create(ctx, ledger.BulkPrefix+"README", []byte("not a bulk piece\n"), time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Checkpoints at sizes that are not segment ends: 0 and 5.
	l, st := golden("store-checkpoints-between-segments")
	for _, size := range []uint64{0, 5} {
		root, _ := l.Tree().Root(size)
		cp, err := ledger.SignCheckpoint(s, size, root)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Create(ctx, ledger.CheckpointName(size), cp.Signed, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}

	// Stray objects: one under segments/ that is not named as a segment,
	// one outside the two prefixes.
	golden("store-stray-in-segments")
	write("store-stray-in-segments/segments/README", []byte("not a segment\n"))
	golden("store-stray-outside")
	os.MkdirAll(filepath.Join(rulesDir, "store-stray-outside", "notes"), 0o755)
	write("store-stray-outside/notes/operator.txt", []byte("not part of the log\n"))

	// Checkpoint encodings.
	l, st = golden("store-golden")
	root, _ := l.Tree().Root(7)
	cp, _ := ledger.SignCheckpoint(s, 7, root)
	b, sg, _ := strings.Cut(string(cp.Signed), "\n\n")
	body, sigs := b, []byte(sg)
	write("checkpoint-repeated-signature", []byte(b+"\n\n"+sg+sg))
	write("checkpoint-noncanonical-signature", []byte(b+"\n\n"+string(nonCanonical(sigs))))
	text := []byte(strings.Replace(string(body)+"\n", root.Base64(), nonCanonicalB64(root.Base64()), 1))
	signed, err := s.SignNote(text)
	if err != nil {
		t.Fatal(err)
	}
	write("checkpoint-noncanonical-root", signed)

	// Record 4 of the golden log redacted: its leaf input alone.
	seg, err := st.Get(ctx, ledger.SegmentName(3))
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := ledger.ParseSegment(seg)
	redacted, err := ledger.Redact(parsed.Records[1])
	if err != nil {
		t.Fatal(err)
	}
	write("record4-redacted", redacted)
	// Record 4 with a byte of its event changed: the leaf does not cover
	// the event, so only the digest tells; the record is malformed and no
	// proof holds for it.
	changed := bytes.Clone(parsed.Records[1])
	changed[len(changed)-3] ^= 0x01
	write("record4-event-changed", changed)

	// Proofs: an inclusion proof with an extra line; consistency from
	// the empty tree and between equal sizes.
	incl, _ := l.Tree().InclusionProof(4, 7)
	write("index4-size7-extra.tlog-proof", (&ledger.InclusionProofText{Extra: []byte("application data"), Index: 4, Hashes: incl, Checkpoint: cp.Signed}).Marshal())
	write("consistency-0-7.txt", (&ledger.ConsistencyProofText{Old: 0, New: 7}).Marshal())
	write("consistency-7-7.txt", (&ledger.ConsistencyProofText{Old: 7, New: 7}).Marshal())
	// A verifier key file: the base64 holds '+', and a newline ends it.
	write("golden.vkey", []byte(s.Verifier().String()+"\n"))
}

// nonCanonical changes the last base64 character of the signature line so
// that it decodes, leniently, to the same bytes (its padding bits set).
func nonCanonical(sigLine []byte) []byte {
	line := strings.TrimSuffix(string(sigLine), "\n")
	i := strings.LastIndexByte(line, ' ')
	return []byte(line[:i+1] + nonCanonicalB64(line[i+1:]) + "\n")
}

func nonCanonicalB64(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	end := strings.TrimRight(s, "=")
	last := strings.IndexByte(alphabet, end[len(end)-1])
	return end[:len(end)-1] + string(alphabet[last|1]) + s[len(end):]
}

func TestFormatRules(t *testing.T) {
	if *update {
		writeRuleVectors(t)
	}
	ctx := context.Background()
	vkey, err := os.ReadFile(filepath.Join(rulesDir, "golden.vkey"))
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	// Verifier keys split at the first two '+': the base64 may hold more.
	if strings.Count(string(vkey), "+") < 3 || !strings.HasSuffix(string(vkey), "\n") {
		t.Fatalf("golden.vkey should hold a '+' in its base64 and end in a newline: %q", vkey)
	}
	v, err := ledger.NewNoteVerifier(string(vkey))
	if err != nil {
		t.Fatalf("golden.vkey: %v", err)
	}
	if _, err := note.NewVerifier(strings.TrimSpace(string(vkey))); err != nil {
		t.Fatalf("golden.vkey, read by golang.org/x/mod/sumdb/note: %v", err)
	}

	stores := []struct {
		dir, fails  string // fails: "" if verify must pass
		checkpoints int
	}{
		{"store-empty", "holds no segments and no checkpoints", 0},
		{"store-not-an-event", "record body is not a valid event", 0},
		{"store-checkpoints-between-segments", "", 4},
		{"store-stray-in-segments", "unexpected object among segments", 0},
		{"store-stray-outside", "", 2},
		{"store-golden", "", 2},
		{"store-version1", "", 2},
		{"store-bound-other-tenant", "record is bound to another tenant than its event's", 0},
		{"store-legacy-session-seq-zero", "", 1},
		{"store-rejected-other-seq", "rejection record is not tied to its source", 0},
		{"store-segment-sealed", "system record type with source 0", 0},
		{"store-clock-status", "", 1},
		{"store-verification", "", 1},
		{"store-bulk", "", 1},
		{"store-bulk-changed", "index 1: bulk/fac599f3d1ee50750652aea80fcdf49451a422881d593b4cb1a21748bfe885f0: bulk piece SHA-256", 0},
		{"store-bulk-missing", "index 1: bulk/fac599f3d1ee50750652aea80fcdf49451a422881d593b4cb1a21748bfe885f0: bulk piece the event names is not in the store", 0},
		{"store-bulk-stray", "unexpected object among bulk pieces", 0},
		{"store-bulk-beside-data", "payload.data: not allowed beside bulk", 0},
		{"store-bulk-unnamed", "", 1},
		{"store-bulk-case", "payload.Bulk: bulk in another case", 0},
	}
	for _, c := range stores {
		t.Run(c.dir, func(t *testing.T) {
			st, err := file.Open(filepath.Join(rulesDir, c.dir))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: v})
			switch {
			case c.fails == "" && err != nil:
				t.Fatalf("verify: %v, want it to pass", err)
			case c.fails == "" && rep.Checkpoints != c.checkpoints:
				t.Fatalf("verify read %d checkpoints, want %d", rep.Checkpoints, c.checkpoints)
			case c.fails != "" && (err == nil || !strings.Contains(err.Error(), c.fails)):
				t.Fatalf("verify: %v, want a failure saying %q", err, c.fails)
			}
			if unnamed := c.dir == "store-bulk-unnamed"; c.fails == "" && (len(rep.UnnamedBulk) == 1) != unnamed {
				t.Errorf("verify lists %q under bulk/ as named by no record, want %v", rep.UnnamedBulk, unnamed)
			} else if unnamed && !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, rep.UnnamedBulk[0]) }) {
				t.Errorf("verify warns %q, want a warning naming %s", rep.Warnings, rep.UnnamedBulk[0])
			}
			legacy := 0
			if c.dir == "store-legacy-session-seq-zero" {
				legacy = 1
			}
			if c.fails == "" && rep.Legacy[events.LegacySessionSeqZero] != legacy {
				t.Errorf("verify counted %v records in a legacy form, want %d of %q", rep.Legacy, legacy, events.LegacySessionSeqZero)
			}
		})
	}

	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(rulesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// One signature line per key; canonical base64 only.
	for name, want := range map[string]string{
		"checkpoint-repeated-signature":     "more than one signature line",
		"checkpoint-noncanonical-signature": "bad base64",
		"checkpoint-noncanonical-root":      "checkpoint root",
	} {
		if _, err := ledger.OpenCheckpoint(read(name), v); !errors.Is(err, ledger.ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it refused as malformed (%s)", name, err, want)
		}
	}
	// Why: x/mod's lenient decoder accepts the non-canonical signature,
	// so the rule is stated rather than left to each implementation.
	nv, _ := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if _, err := note.Open(read("checkpoint-noncanonical-signature"), note.VerifierList(nv)); err != nil {
		t.Logf("golang.org/x/mod/sumdb/note now refuses the non-canonical signature too: %v", err)
	}

	// tlog-proof with an extra line: carried, unauthenticated, ignored.
	seg, err := ledger.ParseSegment(read("store-golden/segments/" + filepath.Base(ledger.SegmentName(3))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.VerifyInclusionProof(read("index4-size7-extra.tlog-proof"), seg.Records[1], v); err != nil {
		t.Errorf("inclusion proof with an extra line: %v", err)
	}
	// A redacted bound record: the same leaf, so the same proof holds; its
	// event is gone.
	redacted := read("record4-redacted")
	if r, err := ledger.ParseRecord(redacted); err != nil || !r.Redacted() || r.Index != 4 {
		t.Errorf("record4-redacted: %+v %v, want record 4 without its event", r, err)
	}
	if _, err := ledger.VerifyInclusionProof(read("index4-size7-extra.tlog-proof"), redacted, v); err != nil {
		t.Errorf("the redacted record 4 against the golden proof: %v", err)
	}
	changed := read("record4-event-changed")
	if _, err := ledger.ParseRecord(changed); !errors.Is(err, ledger.ErrMalformed) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("record4-event-changed: %v, want it refused as malformed (its event does not match the digest)", err)
	}
	if _, err := ledger.VerifyInclusionProof(read("index4-size7-extra.tlog-proof"), changed, v); err == nil {
		t.Errorf("the golden proof holds for record 4 with its event changed")
	}
	if len(redacted) >= len(seg.Records[1]) || !bytes.HasPrefix(seg.Records[1], redacted) {
		t.Errorf("record4-redacted is not the record's leaf input (%d of %d bytes)", len(redacted), len(seg.Records[1]))
	}
	// Consistency from the empty tree and between equal sizes: empty
	// proofs, checked by our verifier and transparency-dev/merkle alike.
	root7 := seg.Root
	empty := sha256.Sum256(nil)
	for name, m := range map[string]uint64{"consistency-0-7.txt": 0, "consistency-7-7.txt": 7} {
		p, err := ledger.ParseConsistencyProof(read(name))
		if err != nil || p.Old != m || p.New != 7 || len(p.Hashes) != 0 {
			t.Fatalf("%s: %+v %v", name, p, err)
		}
		old := root7
		if m == 0 {
			old = empty
		}
		if err := ledger.VerifyConsistency(m, 7, nil, old, root7); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, 7, nil, old[:], root7[:]); err != nil {
			t.Errorf("%s, transparency-dev/merkle: %v", name, err)
		}
	}
}

func sum256(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
