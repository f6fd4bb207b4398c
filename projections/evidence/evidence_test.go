package evidence_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/s3"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/projections/evidence"
	"github.com/auditledger/auditledger/test/pgtest"
	"github.com/auditledger/auditledger/test/versitygw"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// run is a log of two tenants sealed in four segments an hour apart, its
// projection, and a bundle built for acme over the middle two hours.
type run struct {
	db      *pgxpool.Pool
	signer  ssh.Signer
	vkey    string
	bundle  []byte
	m       *evidence.Manifest
	t0      time.Time
	verifer *ledger.NoteVerifier
	// The log as sealed, its clock and the projection's config, for
	// tests that seal more; buildStore, when set, is read by build.
	log        *ledger.Log
	now        *time.Time
	pcfg       projections.Config
	buildStore ledger.SegmentStore
	// grantVKey, when set, is the grant key build gives instead of
	// grantSigner's ("-": none)
	grantVKey string
}

func sampleEvents(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../../ledger/testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		out = append(out, []byte(l))
	}
	return out
}

func newRun(t *testing.T) *run {
	t.Helper()
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newRunOn(t, store, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), 0)
	r.build(t, "acme", r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute))
	return r
}

// newRunOn seals the log into store, its segments an hour apart from t0,
// each locked for retention when the store locks.
func newRunOn(t *testing.T, store ledger.SegmentStore, t0 time.Time, retention time.Duration) *run {
	t.Helper()
	return newRunWith(t, store, t0, retention, nil)
}

// newRunWith is newRunOn with more of acme's events sealed after the
// sample's in each segment: extra(seg) gives them, their ids unique per
// segment.
func newRunWith(t *testing.T, store ledger.SegmentStore, t0 time.Time, retention time.Duration, extra func(seg int) [][]byte) *run {
	t.Helper()
	ctx := t.Context()
	skey, vkey, _ := ledger.GenerateKey(nil, "evidence.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	now := t0
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Retention: retention, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sample := sampleEvents(t)
	for seg := range 4 {
		now = t0.Add(time.Duration(seg)*time.Hour + 123456789) // nanoseconds, which PostgreSQL's timestamps do not keep
		var es []ledger.Entry
		for i, ev := range sample {
			acme := bytes.Replace(ev, []byte(`"id":"sample-`), fmt.Appendf(nil, `"id":"s%d-sample-`, seg), 1)
			es = append(es, ledger.Entry{Event: acme})
			if i%3 == 0 { // another tenant's events between acme's
				globex := bytes.Replace(acme, []byte(`"tenant":"acme"`), []byte(`"tenant":"globex"`), 1)
				globex = bytes.Replace(globex, []byte(`"id":"s`), []byte(`"id":"g`), 1)
				es = append(es, ledger.Entry{Event: globex})
			}
		}
		if extra != nil {
			for _, ev := range extra(seg) {
				es = append(es, ledger.Entry{Event: ev})
			}
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
	cfg := projections.Config{DB: db, Store: store, Verifier: signer.Verifier()}
	if err := projections.Rebuild(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ss, _ := ssh.NewSignerFromKey(priv)
	return &run{db: db, signer: ss, vkey: vkey, t0: t0, verifer: signer.Verifier(), log: l, now: &now, pcfg: cfg}
}

// On S3 with Object Lock the segments are locked in COMPLIANCE mode and
// the bundle verifies without --allow-unlocked; a retention longer than
// the locks is refused.
func TestBundleOnObjectLock(t *testing.T) {
	store := lockedStore(t)
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	r := newRunOn(t, store, t0, 24*time.Hour)
	r.build(t, "acme", t0.Add(90*time.Minute), t0.Add(150*time.Minute))
	opts := evidence.VerifyOptions{LogVerifier: r.verifer, AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}, Retention: 24 * time.Hour}
	rep, err := evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Segments) != 1 || rep.Segments[0].LockMode != "COMPLIANCE" || rep.Segments[0].Version == "" || len(rep.Warnings) != 0 {
		t.Fatalf("segments %+v, warnings %q: want one COMPLIANCE-locked version, no warning", rep.Segments, rep.Warnings)
	}
	opts.Retention = 48 * time.Hour
	if _, err := evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts); err == nil || !strings.Contains(err.Error(), "less than the retention") {
		t.Errorf("a retention longer than the locks: %v", err)
	}
}

// lockedStore is an S3 store with Object Lock on a versitygw of its own.
func lockedStore(t *testing.T) *s3.Store {
	t.Helper()
	srv := versitygw.Start(t)
	store, err := s3.New(t.Context(), s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket(t), Prefix: "log", Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func (r *run) build(t *testing.T, tenant string, from, to time.Time) {
	t.Helper()
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var last [2]uint64
	grantVKey := grantSigner.Verifier().String()
	switch r.grantVKey {
	case "":
	case "-":
		grantVKey = ""
	default:
		grantVKey = r.grantVKey
	}
	r.m, err = evidence.Build(t.Context(), evidence.Config{DB: r.db, Framework: fw, Tenant: tenant, From: from, To: to,
		Signer: r.signer, LogVKey: r.vkey, GrantVKey: grantVKey, Generator: "auditledger test", RequestedBy: evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}, Progress: func(d, n uint64) { last = [2]uint64{d, n} }, Store: r.buildStore}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if last[0] != last[1] || last[1] != r.m.Range.End-r.m.Range.First {
		t.Errorf("progress ended at %v, range %d to %d", last, r.m.Range.First, r.m.Range.End)
	}
	r.bundle = buf.Bytes()
}

func (r *run) verify(bundle []byte) (*evidence.Report, error) {
	return evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: r.verifer,
		AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}, GrantVerifier: grantSigner.Verifier(), AllowUnlocked: true})
}

// A bundle verifies, with our verifier and with ssh-keygen and sha256sum
// alone; it covers the period from segment boundaries and proves acme's
// events complete while showing none of globex's.
func TestBundleVerifies(t *testing.T) {
	r := newRun(t)
	m := r.m
	// Segments of 16 records (12 acme, 4 globex) sealed at 0h, 1h, 2h, 3h:
	// the period 1h30–2h30 is the segment at 2h, after the one at 1h.
	if m.Range.First != 32 || m.Range.End != 48 || m.Events != 12 || m.Range.Open {
		t.Fatalf("range %+v with %d events, want 32 to 48 with 12", m.Range, m.Events)
	}
	if m.RequestedBy == nil || *m.RequestedBy != (evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}) || m.Generator != "auditledger test" {
		t.Errorf("the manifest names requester %+v and generator %q, want who asked and the tool", m.RequestedBy, m.Generator)
	}
	rep, err := r.verify(r.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Segments) != 1 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "not locked") {
		t.Errorf("segments %+v, warnings %q: want one, reported unlocked (a local store)", rep.Segments, rep.Warnings)
	}
	if _, err := evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), evidence.VerifyOptions{LogVerifier: r.verifer,
		AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}}); err == nil || !strings.Contains(err.Error(), "not locked write-once") {
		t.Errorf("unlocked segments without --allow-unlocked: %v", err)
	}

	dir := unzip(t, r.bundle)
	keygen := exec.Command("ssh-keygen", "-Y", "verify", "-f", "keys/allowed_signers", "-I", m.Signer,
		"-n", evidence.Namespace, "-s", "manifest.json.sig")
	keygen.Dir = dir
	keygen.Stdin = bytes.NewReader(must(os.ReadFile(filepath.Join(dir, "manifest.json"))))
	if out, err := keygen.CombinedOutput(); err != nil || !strings.Contains(string(out), "Good") {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	sums := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	sums.Dir = dir
	if out, err := sums.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != len(m.Files)+2 {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}

	// No globex event in the bundle, in any file.
	for _, f := range m.Files {
		if b := must(os.ReadFile(filepath.Join(dir, f.Path))); bytes.Contains(b, []byte("globex")) || bytes.Contains(b, []byte(`"id":"g2-`)) {
			t.Errorf("%s shows another tenant's data", f.Path)
		}
	}
	// Every mapped control has rows or says plainly that nothing was seen.
	for _, c := range m.Controls {
		s := string(must(os.ReadFile(filepath.Join(dir, "controls", c.ID, "summary.md"))))
		if c.Observed == strings.Contains(s, "No evidence was observed in the period") {
			t.Errorf("control %s: observed %v, summary:\n%s", c.ID, c.Observed, s)
		}
	}
	for _, c := range []string{"5.3", "8.2", "8.11", "8.15"} {
		if !observed(m, c) {
			t.Errorf("control %s has no evidence from a run with approvals, masks and blocks", c)
		}
	}
	if html := string(must(os.ReadFile(filepath.Join(dir, "index.html")))); strings.Contains(html, "http://") || strings.Contains(html, "https://") || !strings.Contains(html, "8.11 Data masking") || !strings.Contains(html, "<td>observed, not assessed</td>") || strings.Contains(html, "<td>evidence</td>") {
		t.Errorf("index.html should be self-contained and list the controls:\n%s", html)
	}

	// OSCAL assessment results against NIST's schema.
	c := jsonschema.NewCompiler()
	schema := must(jsonschema.UnmarshalJSON(bytes.NewReader(must(os.ReadFile("../../compliance/testdata/oscal/oscal_assessment-results_schema.json")))))
	// One repair, see compliance/testdata/oscal/SOURCE.md: the schema
	// names its anchors with an $id beside a $ref, which draft-07 says to
	// ignore, so a strict validator finds none of them. Each such $ref
	// moves into an allOf beside the $id: what its authors meant, and
	// what validators that keep $ref's siblings do.
	if n := keepSiblingsOfRef(schema); n != 12 {
		t.Fatalf("repaired %d $ref objects: not the schema SOURCE.md describes", n)
	}
	const id = "http://csrc.nist.gov/ns/oscal/1.0.6/oscal-ar-schema.json" // its $id
	if err := c.AddResource(id, schema); err != nil {
		t.Fatal(err)
	}
	c.AssertFormat()
	s, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	doc := must(jsonschema.UnmarshalJSON(bytes.NewReader(must(os.ReadFile(filepath.Join(dir, "oscal", "assessment-results.json"))))))
	if err := s.Validate(doc); err != nil {
		t.Errorf("oscal/assessment-results.json against NIST's schema: %v", err)
	}
	// The schema does refuse: a control id that is not a token.
	bad := strings.Replace(string(must(os.ReadFile(filepath.Join(dir, "oscal", "assessment-results.json")))), `"control-id": "a.8.11"`, `"control-id": "8.11"`, 1)
	if err := s.Validate(must(jsonschema.UnmarshalJSON(strings.NewReader(bad)))); err == nil {
		t.Errorf("NIST's schema accepted a control id starting with a digit")
	}
}

// keepSiblingsOfRef rewrites every object holding both "$id" and "$ref"
// so that the $ref sits in an allOf, and returns how many it rewrote.
func keepSiblingsOfRef(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"]; ok {
			if _, ok := v["$id"]; ok {
				delete(v, "$ref")
				v["allOf"] = []any{map[string]any{"$ref": ref}}
				n++
			}
		}
		for _, x := range v {
			n += keepSiblingsOfRef(x)
		}
	case []any:
		for _, x := range v {
			n += keepSiblingsOfRef(x)
		}
	}
	return n
}

func observed(m *evidence.Manifest, id string) bool {
	for _, c := range m.Controls {
		if c.ID == id {
			return c.Observed
		}
	}
	return false
}

// A period that starts before the log does and ends after its newest
// checkpoint: the range starts at the empty tree and is marked open.
func TestBundleFromTheStart(t *testing.T) {
	r := newRun(t)
	r.build(t, "globex", r.t0.Add(-time.Hour), r.t0.Add(10*time.Hour))
	if r.m.Range.First != 0 || r.m.Range.End != 64 || !r.m.Range.Open || r.m.Events != 16 {
		t.Fatalf("range %+v, %d events", r.m.Range, r.m.Events)
	}
	if _, err := r.verify(r.bundle); err != nil {
		t.Fatal(err)
	}
}

// A line of events.jsonl written otherwise than the builder writes it
// (spaces between its members) but saying the same is read member by
// member, and verifies.
func TestEventLinesReadMemberByMember(t *testing.T) {
	r := newRun(t)
	f := zipFiles(t, r.bundle)
	lines := bytes.ReplaceAll(f["events.jsonl"], []byte(`{"index":`), []byte(`{ "index" : `))
	if bytes.Equal(lines, f["events.jsonl"]) {
		t.Fatal("no line changed")
	}
	f["events.jsonl"] = lines
	resign(t, f, r.signer)
	if _, err := r.verify(rezip(t, f)); err != nil {
		t.Fatal(err)
	}
}

// Tampering fails, naming the file or the event: without the evidence key
// (any byte changed), and with it (an attacker who re-signs the manifest:
// the log's proofs still catch every change).
func TestTamperedBundles(t *testing.T) {
	r := newRun(t)
	files := zipFiles(t, r.bundle)
	globexRecord := func() (uint64, []byte) {
		var idx int64
		var header []byte
		var ev string
		if err := r.db.QueryRow(context.Background(), `SELECT idx, header, event FROM events WHERE tenant = 'globex' AND idx >= 32 ORDER BY idx LIMIT 1`).Scan(&idx, &header, &ev); err != nil {
			t.Fatal(err)
		}
		return uint64(idx), append(header, ev...)
	}
	olderCheckpoint := func() []byte {
		var note string
		if err := r.db.QueryRow(context.Background(), `SELECT note FROM checkpoints WHERE size = 16`).Scan(&note); err != nil {
			t.Fatal(err)
		}
		return []byte(note)
	}
	cases := []struct {
		name   string
		resign bool
		change func(map[string][]byte)
		want   string
	}{
		{"a byte of events.jsonl", false, func(f map[string][]byte) { f["events.jsonl"][100] ^= 1 }, "events.jsonl: does not match the manifest"},
		{"a byte of a control's CSV", false, func(f map[string][]byte) { f["controls/8.11/masks_by_rule.csv"][10] ^= 1 }, "controls/8.11/masks_by_rule.csv: does not match"},
		{"a byte of the manifest", false, func(f map[string][]byte) { f["manifest.json"][20] ^= 1 }, "manifest.json"},
		{"an extra file", false, func(f map[string][]byte) { f["notes.txt"] = []byte("x") }, "notes.txt: in the zip but not in the manifest"},
		{"an event removed", true, func(f map[string][]byte) { f["events.jsonl"] = dropLine(f["events.jsonl"], 3) }, "events.jsonl"},
		{"an event added", true, func(f map[string][]byte) {
			f["events.jsonl"] = append(f["events.jsonl"], lastLine(f["events.jsonl"])...)
		}, "an event was added"},
		{"a record removed", true, func(f map[string][]byte) { f["log/records.bin"] = dropRecord(f["log/records.bin"], 5) }, "log/records.bin: index 37"},
		{"another tenant's event inserted", true, func(f map[string][]byte) {
			idx, rec := globexRecord()
			f["log/records.bin"] = replaceRecord(f["log/records.bin"], int(idx-32), rec)
		}, "an event of another tenant is in the bundle"},
		{"the end checkpoint swapped for an older one", true, func(f map[string][]byte) { f["log/checkpoint-end"] = olderCheckpoint() }, "log/checkpoint-end: a checkpoint of tree size 16, but the range says 48"},
		{"an event's sealing time changed", true, func(f map[string][]byte) {
			f["events.jsonl"] = bytes.Replace(f["events.jsonl"], []byte(`"sealed_at":"20`), []byte(`"sealed_at":"19`), 1)
		}, "sealed_at 19"},
		{"an event's leaf changed", true, func(f map[string][]byte) {
			f["events.jsonl"] = bytes.Replace(f["events.jsonl"], []byte(`"leaf":"`), []byte(`"leaf":"0`), 1)
		}, "events.jsonl: index 32: line 1: leaf 0"},
		{"an event's text changed", true, func(f map[string][]byte) {
			f["events.jsonl"] = bytes.Replace(f["events.jsonl"], []byte("UPDATE orders"), []byte("UPDATE 0rders"), 1)
		}, "the event differs from the sealed record's"},
		// The period and the sealing times the manifest and segments.json
		// state are bound to the records' own times (signed by the
		// checkpoints): moved by an attacker with the evidence key, caught.
		{"period.from moved after the first record", true, func(f map[string][]byte) {
			editManifest(t, f, func(m *evidence.Manifest) { m.Period.From = m.Range.FirstSealed.Add(time.Microsecond) })
		}, "outside the period"},
		{"period.to moved before the last record", true, func(f map[string][]byte) {
			editManifest(t, f, func(m *evidence.Manifest) { m.Period.To = *m.Range.LastSealed })
		}, "outside the period"},
		{"range.first_sealed changed", true, func(f map[string][]byte) {
			editManifest(t, f, func(m *evidence.Manifest) { ts := m.Range.FirstSealed.Add(time.Second); m.Range.FirstSealed = &ts })
		}, "range.first_sealed"},
		// The context is re-derived from the records: an edit re-signed
		// with the evidence key is caught.
		{"the context's policy count changed", true, func(f map[string][]byte) {
			f["context/policies.json"] = bytes.Replace(f["context/policies.json"], []byte(`"events": `), []byte(`"events": 1`), 1)
		}, "context/policies.json: differs from what the range's records give"},
		{"a clock reading added", true, func(f map[string][]byte) {
			f["context/clock.json"] = bytes.Replace(f["context/clock.json"], []byte(`"readings": []`), []byte(`"readings": [{"index":1,"synchronised":true}]`), 1)
		}, "context/clock.json: differs"},
		{"a segment's sealed time moved", true, func(f map[string][]byte) {
			var segs []map[string]any
			if err := json.Unmarshal(f["log/segments.json"], &segs); err != nil {
				t.Fatal(err)
			}
			segs[len(segs)-1]["sealed"] = "2020-01-01T00:00:00Z"
			f["log/segments.json"] = must(json.Marshal(segs))
		}, "the time its retention is counted from is not the log's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := map[string][]byte{}
			for k, v := range files {
				f[k] = bytes.Clone(v)
			}
			c.change(f)
			if c.resign {
				resign(t, f, r.signer)
			}
			_, err := r.verify(rezip(t, f))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("verify: %v, want a failure saying %q", err, c.want)
			}
		})
	}
}

// editManifest changes the manifest (resign then signs it again).
func editManifest(t *testing.T, f map[string][]byte, edit func(*evidence.Manifest)) {
	t.Helper()
	var m evidence.Manifest
	if err := json.Unmarshal(f["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	f["manifest.json"] = must(json.Marshal(&m))
}

// resign recomputes the manifest's hashes and SHA256SUMS and signs the
// manifest and SHA256SUMS again with the evidence key, as an attacker
// holding it would.
func resign(t *testing.T, f map[string][]byte, signer ssh.Signer) {
	t.Helper()
	var m evidence.Manifest
	if err := json.Unmarshal(f["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	for i, file := range m.Files {
		sum := sha256.Sum256(f[file.Path])
		m.Files[i].Size, m.Files[i].SHA256 = int64(len(f[file.Path])), hex.EncodeToString(sum[:])
	}
	manifest, _ := json.MarshalIndent(&m, "", "  ")
	f["manifest.json"] = append(manifest, '\n')
	var sums strings.Builder
	for _, file := range m.Files {
		fmt.Fprintf(&sums, "%s  %s\n", file.SHA256, file.Path)
	}
	ms := sha256.Sum256(f["manifest.json"])
	fmt.Fprintf(&sums, "%x  manifest.json\n", ms)
	sig, err := evidence.SSHSign(signer, evidence.Namespace, f["manifest.json"])
	if err != nil {
		t.Fatal(err)
	}
	f["manifest.json.sig"] = sig
	ss := sha256.Sum256(sig)
	fmt.Fprintf(&sums, "%x  manifest.json.sig\n", ss)
	f["SHA256SUMS"] = []byte(sums.String())
	f["SHA256SUMS.sig"] = must(evidence.SSHSign(signer, evidence.Namespace, f["SHA256SUMS"]))
}

func zipFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		out[f.Name] = must(io.ReadAll(rc))
		rc.Close()
	}
	return out
}

func rezip(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		w, _ := zw.Create(name)
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unzip(t *testing.T, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range zipFiles(t, b) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func dropLine(b []byte, n int) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	return bytes.Join(append(lines[:n:n], lines[n+1:]...), nil)
}

func lastLine(b []byte) []byte {
	lines := bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	return append(bytes.Clone(lines[len(lines)-1]), '\n')
}

// records splits records.bin into its framed records.
func records(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func frame(recs [][]byte) []byte {
	var out []byte
	for _, r := range recs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(r)))
		out = append(out, r...)
	}
	return out
}

func dropRecord(b []byte, i int) []byte {
	recs := records(b)
	return frame(append(recs[:i:i], recs[i+1:]...))
}

func replaceRecord(b []byte, i int, rec []byte) []byte {
	recs := records(b)
	recs[i] = rec
	return frame(recs)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
