package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections/evidence"
)

// carolsSession is, per segment, a session of carol (not dba) under the
// README's version-1 policy, which holds DDL for dba only: her CREATE runs
// unheld, a deny rule's refusal names a blank rule, a read returns e-mails unmasked, and 30
// refusals name their rule (a population to sample).
func carolsSession(seg int) [][]byte {
	sess := fmt.Sprintf("sess-carol-%d", seg)
	seq := 0
	as := func(subject, kind, id, typ, payload string) []byte {
		seq++
		return fmt.Appendf(nil, `{"version":1,"tenant":"acme","source":{"kind":"postgres-proxy","instance":"pgproxy-1","version":"0.1.0"},"actor":{"issuer":"https://idp.example.com","subject":%q,"groups":["dev"],"kind":%q},"target":{"kind":"postgres","name":"orders"},"id":"x%d-%s","type":%q,"time":"2026-11-26T10:00:%02dZ","session_id":%q,"session_seq":%d,"payload":%s}`,
			subject, kind, seg, id, typ, seq%60, sess, seq, payload)
	}
	ev := func(id, typ, payload string) []byte { return as("u-3000", "human", id, typ, payload) }
	cc := strings.Repeat("c", 64)
	out := [][]byte{
		// the directory lists carol with group dev; from the second
		// segment on, it lists her inactive
		as("directory", "machine", "dir", "identity.snapshot", fmt.Sprintf(`{"snapshot":"snap-%d","part":1,"parts":1,"source":"scim","issuer":"https://idp.example.com","users":1,"active":1,"listing_sha256":"%s","members":[{"subject":"u-3000","active":%t,"kind":"human","groups":["dev"]}],"groups":[]}`, seg, strings.Repeat("e", 64), seg < 2)),
		ev("start", "session.started", `{"client_addr":"10.0.4.18:50000","tls":true}`),
		ev("create", "command.executed", `{"statement":"CREATE TABLE notes (id int)","statement_sha256":"`+strings.Repeat("b", 64)+`","kind":"CREATE"}`),
		ev("blank", "command.blocked", `{"statement":"COPY customers TO PROGRAM 'x'","rule":"","reason":"refused"}`),
		ev("read", "command.executed", `{"statement":"SELECT email FROM customers","kind":"SELECT"}`),
		ev("digest", "response.digest", fmt.Sprintf(`{"command_id":"x%d-read","command_tag":"SELECT 2","rows":2,"bytes":80}`, seg)),
		// carol approves her own ALTER; a request of hers expires
		ev("req-1", "approval.requested", fmt.Sprintf(`{"approval_id":"apr-x%d-1","statement_sha256":%q,"rule":"ddl"}`, seg, cc)),
		ev("grant-1", "approval.granted", fmt.Sprintf(`{"approval_id":"apr-x%d-1","statement_sha256":%q,"session_id":%q,"requester":{"issuer":"https://idp.example.com","subject":"u-3000"}}`, seg, cc, sess)),
		ev("alter", "command.executed", `{"statement":"ALTER TABLE notes ADD c int","statement_sha256":"`+cc+`","kind":"ALTER"}`),
		ev("req-2", "approval.requested", fmt.Sprintf(`{"approval_id":"apr-x%d-2","statement_sha256":%q,"rule":"ddl"}`, seg, strings.Repeat("d", 64))),
		as("approvals", "machine", "expired-2", "approval.expired", fmt.Sprintf(`{"approval_id":"apr-x%d-2","statement_sha256":%q}`, seg, strings.Repeat("d", 64))),
	}
	for i := range 30 {
		out = append(out, ev(fmt.Sprintf("deny-%d", i), "command.blocked", fmt.Sprintf(`{"statement":"DROP TABLE t%d","rule":"no-drop","reason":"no"}`, i)))
	}
	// a person reads the audit data: a review, timed when the segment is
	// sealed (assertionRun's), as 8.16 compares it with the period's edges
	read := as("u-4000", "human", "audit-read", "audit.accessed", `{"resource":"events","method":"GET","path":"/v1/events"}`)
	out = append(out, bytes.Replace(read, []byte(`"time":"2026-11-26T10:00:`), fmt.Appendf(nil, `"time":"2026-07-01T%02d:00:`, seg), 1))
	out = append(out, as("u-4000", "human", "review", "access.reviewed", `{"from":"2026-11-01T00:00:00Z","to":"2026-12-01T00:00:00Z","grants":2,"break_glass":0,"listing_sha256":"`+strings.Repeat("f", 64)+`"}`))
	return append(out, ev("end", "session.ended", `{"duration_ms":1000}`))
}

func assertionRun(t *testing.T) *run {
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newRunWith(t, store, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), 0, carolsSession)
	r.build(t, "acme", r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute))
	return r
}

func control(m *evidence.Manifest, id string) evidence.Control {
	for _, c := range m.Controls {
		if c.ID == id {
			return c
		}
	}
	return evidence.Control{}
}

// The bundle tests each control's expectation: carol's unheld DDL is an
// exception under 8.32 and 8.2, as is her self-approved ALTER under 8.32
// and 5.3, the blank rule under 8.3, the unmasked read under 8.11; index.html opens with them; the verifier re-derives
// every assertion, summary, the OSCAL results and the report.
func TestBundleAssertionsFlagExceptions(t *testing.T) {
	r := assertionRun(t)
	want := map[string][3]any{ // population, exceptions, result
		"5.3":  {3, 1, compliance.Exceptions},
		"8.2":  {1, 1, compliance.Exceptions},
		"8.3":  {32, 1, compliance.Exceptions},
		"8.11": {1, 1, compliance.Exceptions},
		"8.32": {2, 2, compliance.Exceptions},
		// a session with no directory listing before it, and carol's,
		// whom the listing in force shows inactive; one audit read; no
		// clock reading in the period
		"5.15": {2, 2, compliance.Exceptions},
		"5.18": {2, 2, compliance.Exceptions},
		"8.16": {1, 0, compliance.Effective},
		"8.17": {0, 0, compliance.NotObserved},
		// no full verification was recorded after the period: 5.33's
		// row of no record, and nothing for 8.15 to test
		"5.33": {1, 1, compliance.Exceptions},
		"8.15": {0, 0, compliance.NotObserved},
	}
	for id, w := range want {
		a := control(r.m, id).Assertion
		if a == nil || a.Population != w[0] || a.Exceptions != w[1] || a.Result != w[2] {
			t.Errorf("control %s: assertion %+v, want population %v, exceptions %v, %v", id, a, w[0], w[1], w[2])
		}
	}
	if c := control(r.m, "8.5"); c.Assertion != nil || c.Result() != "observed, not assessed" {
		t.Errorf("8.5 declares no expectation: %+v %q", c.Assertion, c.Result())
	}
	if r.m.Expectations == nil || r.m.Expectations.Source != "default" || len(r.m.Expectations.SHA256) != 64 {
		t.Errorf("manifest expectations %+v", r.m.Expectations)
	}
	rep, err := r.verify(r.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rederived != 11 {
		t.Errorf("re-derived %d assertions, want 11; warnings %q", rep.Rederived, rep.Warnings)
	}
	files := zipFiles(t, r.bundle)
	csv832 := string(files["controls/8.32/assertion.csv"])
	if !strings.Contains(csv832, ",command.executed,sess-carol-2,u-3000,CREATE TABLE notes (id int),,"+compliance.ExNoApproval) {
		t.Errorf("8.32's exception does not name the event, session and actor:\n%s", csv832)
	}
	html := string(files["index.html"])
	ex, ctl := strings.Index(html, "<h2>Exceptions (11)</h2>"), strings.Index(html, "<h2>Controls</h2>")
	if ex < 0 || ctl < ex || !strings.Contains(html[ex:ctl], "ran without a second person&#39;s approval") || !strings.Contains(html[ex:ctl], "u-3000") ||
		!strings.Contains(html, evidence.WarnNotWriteOnce) || !strings.Contains(html, "No full verification") {
		t.Errorf("index.html does not open with the 4 exceptions and the warnings:\n%.3000s", html)
	}
	var oscal struct {
		AR struct {
			ImportAP struct{ Href string } `json:"import-ap"`
			Results  []struct {
				Findings []struct {
					Target struct {
						TargetID string `json:"target-id"`
						Status   struct{ State, Reason string }
					}
				}
			}
			BackMatter struct {
				Resources []struct{ UUID string }
			} `json:"back-matter"`
		} `json:"assessment-results"`
	}
	if err := json.Unmarshal(files["oscal/assessment-results.json"], &oscal); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, f := range oscal.AR.Results[0].Findings {
		states[f.Target.TargetID] = f.Target.Status.State + "/" + f.Target.Status.Reason
	}
	if states["a.8.32_obj"] != "not-satisfied/fail" || states["a.5.3_obj"] != "not-satisfied/fail" || states["a.8.5_obj"] != "not-satisfied/other" {
		t.Errorf("OSCAL findings %v", states)
	}
	if !slices.ContainsFunc(oscal.AR.BackMatter.Resources, func(r struct{ UUID string }) bool { return "#"+r.UUID == oscal.AR.ImportAP.Href }) {
		t.Errorf("import-ap %q names no back-matter resource", oscal.AR.ImportAP.Href)
	}
	if !strings.Contains(string(files["oscal/assessment-results.json"]), `"value": "nist-800-53r5 AU-8`) {
		t.Errorf("the OSCAL results do not carry the NIST crosswalk")
	}
}

// A derived table changed, with the manifest and SHA256SUMS re-signed by
// an attacker: with the operator's evidence key the signature fails; with
// the attacker's key accepted (a stolen evidence key) and the operator's
// log key, the re-derivation fails, naming the file.
func TestDerivedTablesRederived(t *testing.T) {
	r := assertionRun(t)
	files := zipFiles(t, r.bundle)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	attacker, _ := ssh.NewSignerFromKey(priv)
	manifest := func(f map[string][]byte, edit func(m *evidence.Manifest)) {
		var m evidence.Manifest
		if err := json.Unmarshal(f["manifest.json"], &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		f["manifest.json"] = must(json.MarshalIndent(&m, "", "  "))
	}
	setAssertion := func(m *evidence.Manifest, id string, exceptions int, result string) {
		for i := range m.Controls {
			if m.Controls[i].ID == id {
				m.Controls[i].Assertion.Exceptions, m.Controls[i].Assertion.Result = exceptions, result
			}
		}
	}
	cases := []struct {
		name   string
		change func(map[string][]byte)
		want   string
	}{
		{"a row added to a control's assertion.csv", func(f map[string][]byte) {
			f["controls/8.3/assertion.csv"] = append(f["controls/8.3/assertion.csv"], lastLine(f["controls/8.3/assertion.csv"])...)
			manifest(f, func(m *evidence.Manifest) {
				for i := range m.Controls {
					if m.Controls[i].ID == "8.3" {
						m.Controls[i].Assertion.Population++
					}
				}
			})
		}, "controls/8.3/assertion.csv: line 34"},
		{"a row removed from a control's assertion.csv", func(f map[string][]byte) {
			f["controls/8.32/assertion.csv"] = dropLine(f["controls/8.32/assertion.csv"], 1)
			manifest(f, func(m *evidence.Manifest) {
				for i := range m.Controls {
					if m.Controls[i].ID == "8.32" {
						m.Controls[i].Assertion.Population, m.Controls[i].Assertion.Exceptions = 1, 1
					}
				}
			})
		}, "controls/8.32/assertion.csv: line 2"},
		{"an exception blanked and the result made effective", func(f map[string][]byte) {
			f["controls/8.11/assertion.csv"] = bytes.Replace(f["controls/8.11/assertion.csv"], []byte(compliance.ExUnmasked), nil, 1)
			manifest(f, func(m *evidence.Manifest) { setAssertion(m, "8.11", 0, compliance.Effective) })
		}, "controls/8.11/assertion.csv: line 2"},
		{"only the manifest's result changed", func(f map[string][]byte) {
			manifest(f, func(m *evidence.Manifest) { setAssertion(m, "8.2", 0, compliance.Effective) })
		}, "manifest.json: control 8.2: assertion"},
		{"a warning dropped", func(f map[string][]byte) {
			manifest(f, func(m *evidence.Manifest) { m.Warnings = m.Warnings[1:] })
		}, "manifest.json: warnings"},
		{"a summary rewritten", func(f map[string][]byte) {
			f["controls/8.32/summary.md"] = bytes.Replace(f["controls/8.32/summary.md"], []byte("exceptions found"), []byte("effective"), 1)
		}, "controls/8.32/summary.md: line 5"},
		{"the exceptions cut from index.html", func(f map[string][]byte) {
			f["index.html"] = bytes.Replace(f["index.html"], []byte("Exceptions (11)"), []byte("Exceptions (0)"), 1)
		}, "index.html: line"},
		{"a row added to a derived table, its count in the manifest too", func(f map[string][]byte) {
			f["controls/8.3/blocked_sample.csv"] = append(f["controls/8.3/blocked_sample.csv"], lastLine(f["controls/8.3/blocked_sample.csv"])...)
			manifest(f, func(m *evidence.Manifest) {
				for i := range m.Controls {
					if m.Controls[i].ID == "8.3" {
						m.Controls[i].Counts["blocked_sample"]++
					}
				}
			})
		}, "controls/8.3/blocked_sample.csv: line 27"},
		{"a row removed from a derived table", func(f map[string][]byte) {
			f["controls/5.15/blocked.csv"] = dropLine(f["controls/5.15/blocked.csv"], 1)
		}, "controls/5.15/blocked.csv: line 2"},
		{"a count edited in a derived table", func(f map[string][]byte) {
			f["controls/8.15/events_by_type.csv"] = bytes.Replace(f["controls/8.15/events_by_type.csv"], []byte("command.blocked,"), []byte("command.blocked,1"), 1)
		}, "controls/8.15/events_by_type.csv: line"},
		{"a derived table passed off as queried, then edited", func(f map[string][]byte) {
			f["controls/5.17/authentication.csv"] = dropLine(f["controls/5.17/authentication.csv"], 1)
			manifest(f, func(m *evidence.Manifest) {
				for i := range m.Controls {
					if m.Controls[i].ID == "5.17" {
						m.Controls[i].Derived = nil
					}
				}
			})
		}, "manifest.json: control 5.17: derived tables"},
		{"an OSCAL finding satisfied", func(f map[string][]byte) {
			f["oscal/assessment-results.json"] = bytes.Replace(f["oscal/assessment-results.json"], []byte(`"reason": "fail"`), []byte(`"reason": "pass"`), 1)
		}, "oscal/assessment-results.json: line"},
		{"the expectations swapped, its digest in the manifest too", func(f map[string][]byte) {
			f["expectations.yaml"] = bytes.Replace(f["expectations.yaml"], []byte("columns: [email]"), []byte("columns: [phone]"), 1)
			manifest(f, func(m *evidence.Manifest) {
				m.Expectations.SHA256 = fmt.Sprintf("%x", sha256.Sum256(f["expectations.yaml"]))
			})
		}, "controls/8.11/assertion.csv: line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := map[string][]byte{}
			for k, v := range files {
				f[k] = bytes.Clone(v)
			}
			c.change(f)
			resign(t, f, attacker)
			bundle := rezip(t, f)
			_, err := r.verify(bundle)
			if err == nil || !strings.Contains(err.Error(), "which the allowed signers do not hold") {
				t.Errorf("with the operator's keys: %v, want the signature refused", err)
			}
			_, err = evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: r.verifer,
				AllowedSigners: []ssh.PublicKey{attacker.PublicKey()}, AllowUnlocked: true})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("with a stolen evidence key and the operator's log key: %v, want a failure saying %q", err, c.want)
			}
		})
	}
	// Untouched, re-signed by the attacker and given their key: verifies
	// (the signature is all that changed), so the failures above are the
	// re-derivation's.
	f := map[string][]byte{}
	for k, v := range files {
		f[k] = bytes.Clone(v)
	}
	resign(t, f, attacker)
	bundle := rezip(t, f)
	if _, err := evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: r.verifer,
		AllowedSigners: []ssh.PublicKey{attacker.PublicKey()}, AllowUnlocked: true}); err != nil {
		t.Errorf("re-signed unchanged: %v", err)
	}
}

// A sample is the members with the smallest keys as FORMAT §12.2 gives
// them (computed here from the spec, not the package), the same for the
// same seed, and each item's record is proven in the end checkpoint.
func TestSampleReproducibleWithProofs(t *testing.T) {
	r := assertionRun(t)
	opts := evidence.VerifyOptions{LogVerifier: r.verifer, AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}, AllowUnlocked: true}
	draw := func(seed uint64) *evidence.Sample {
		s, _, err := evidence.DrawSample(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts, "8.3", seed, 25)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := draw(7), draw(7), draw(8)
	if !bytes.Equal(must(json.Marshal(a)), must(json.Marshal(b))) {
		t.Error("the same seed drew different samples")
	}
	indexes := func(s *evidence.Sample) []uint64 {
		var out []uint64
		for _, it := range s.Items {
			out = append(out, it.Index)
		}
		return out
	}
	if len(a.Items) != 25 || a.Population != 32 || slices.Equal(indexes(a), indexes(c)) {
		t.Errorf("seed 7 drew %v of %d, seed 8 %v", indexes(a), a.Population, indexes(c))
	}
	// The spec's algorithm, written out.
	rows := must(csv.NewReader(bytes.NewReader(zipFiles(t, r.bundle)["controls/8.3/assertion.csv"])).ReadAll())[1:]
	type keyed struct {
		key [32]byte
		idx uint64
	}
	var all []keyed
	for _, row := range rows {
		idx := must(strconv.ParseUint(row[0], 10, 64))
		all = append(all, keyed{sha256.Sum256([]byte("auditledger sample v1\x00" + "7" + "\x00" + "8.3" + "\x00" + row[0])), idx})
	}
	slices.SortFunc(all, func(x, y keyed) int { return bytes.Compare(x.key[:], y.key[:]) })
	var want []uint64
	for _, k := range all[:25] {
		want = append(want, k.idx)
	}
	slices.Sort(want)
	if !slices.Equal(indexes(a), want) {
		t.Errorf("sample %v, the spec gives %v", indexes(a), want)
	}
	cp, err := ledger.OpenCheckpoint([]byte(a.Checkpoint), r.verifer)
	if err != nil || cp.Size != a.TreeSize {
		t.Fatalf("the sample's checkpoint: %v (size %d, tree size %d)", err, cp.Size, a.TreeSize)
	}
	for _, it := range a.Items {
		rec := must(base64.StdEncoding.DecodeString(it.Record))
		var proof []ledger.Hash
		for _, p := range it.Proof {
			proof = append(proof, ledger.Hash(must(base64.StdEncoding.DecodeString(p))))
		}
		if err := ledger.VerifyInclusion(ledger.LeafHash(rec), it.Index, a.TreeSize, proof, cp.Root); err != nil {
			t.Errorf("item %d: %v", it.Index, err)
		}
		if pr, err := ledger.ParseRecord(rec); err != nil || pr.Index != it.Index || !bytes.Contains(pr.Event, []byte(`"type":"command.blocked"`)) {
			t.Errorf("item %d: record %v %+v", it.Index, err, pr.Index)
		}
	}
	if _, _, err := evidence.DrawSample(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts, "8.5", 1, 5); err == nil || !strings.Contains(err.Error(), "no assertion") {
		t.Errorf("a control without an assertion: %v", err)
	}
}

// An independent reading of FORMAT §12.1 (testdata/rederive.py, Python's
// standard library only, written from the spec) derives the same
// assertion.csv, population, exceptions and result for every control.
func TestAssertionsFromTheSpecAlone(t *testing.T) {
	specAgrees(t, assertionRun(t))
}

// specAgrees runs rederive.py over r's bundle, given the grant key as the
// operator published it, and compares every assertion and table.
func specAgrees(t *testing.T, r *run) {
	t.Helper()
	dir := unzip(t, r.bundle)
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	xfile, out := filepath.Join(t.TempDir(), "expectations.json"), t.TempDir()
	if err := os.WriteFile(xfile, must(json.Marshal(fw.Expectations)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "testdata/rederive.py", dir, xfile, out, grantSigner.Verifier().String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("rederive.py: %v\n%s%s", err, got, stderr.Bytes())
	}
	var want strings.Builder
	for _, x := range fw.Expectations.Controls {
		a := control(r.m, x.Control).Assertion
		fmt.Fprintf(&want, "%s %d %d %s\n", x.Control, a.Population, a.Exceptions, a.Result)
		py := must(os.ReadFile(filepath.Join(out, x.Control, "assertion.csv")))
		if ours := must(os.ReadFile(filepath.Join(dir, "controls", x.Control, "assertion.csv"))); !bytes.Equal(py, ours) {
			t.Errorf("control %s: the spec's reading gives\n%s\nthe bundle holds\n%s", x.Control, py, ours)
		}
	}
	if string(got) != want.String() {
		t.Errorf("results from the spec:\n%s\nthe manifest's:\n%s", got, want.String())
	}
	// Every derived table (§12.3), byte for byte.
	n := 0
	for _, c := range r.m.Controls {
		for _, name := range c.Derived {
			path := filepath.Join("controls", c.ID, name+".csv")
			py, err := os.ReadFile(filepath.Join(out, c.ID, name+".csv"))
			if err != nil {
				t.Errorf("the spec's reading derives no %s: %v", path, err)
				continue
			}
			if ours := must(os.ReadFile(filepath.Join(dir, path))); !bytes.Equal(py, ours) {
				t.Errorf("%s: the spec's reading gives\n%s\nthe bundle holds\n%s", path, py, ours)
			}
			n++
		}
	}
	if n != 29 {
		t.Errorf("%d derived tables compared, want 29", n)
	}
}
