package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/projections/evidence"
)

// sealVerification seals v as the writer does (a ledger.verification
// system record, source 0) in a segment of its own at time at, projects
// it, and returns its index.
func (r *run) sealVerification(t *testing.T, at time.Time, v ledger.Verification) uint64 {
	t.Helper()
	idx := r.log.Size()
	e, err := ledger.VerificationEntry(r.log.Origin(), idx, v, at)
	if err != nil {
		t.Fatal(err)
	}
	r.appendProjected(t, at, e)
	return idx
}

func (r *run) appendProjected(t *testing.T, at time.Time, e ledger.Entry) {
	t.Helper()
	*r.now = at
	if _, err := r.log.Append(t.Context(), []ledger.Entry{e}); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(t.Context(), r.pcfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			return
		}
	}
}

// assertionRows is a control's assertion.csv without its header.
func assertionRows(t *testing.T, r *run, control string) []string {
	t.Helper()
	f := zipFiles(t, r.bundle)
	lines := strings.Split(strings.TrimSuffix(string(f["controls/"+control+"/assertion.csv"]), "\n"), "\n")
	return lines[1:]
}

// 5.33 and 8.15 rest on the writer's sealed verification records, shipped
// with inclusion proofs: a period a full verification covered after its
// end passes both; one without is an exception of 5.33 (8.15 not
// observed); a verification that recorded a finding among the period's
// records is an exception of both naming its record. Each bundle verifies,
// and FORMAT's reading (rederive.py) agrees byte for byte. A record the
// writer did not seal is not shipped, and one forced into the bundle with
// a stolen evidence key — or a shipped one edited — is refused.
func TestBundleVerificationsDerived(t *testing.T) {
	ctx := t.Context()
	from, to := func(r *run) time.Time { return r.t0.Add(90 * time.Minute) }, func(r *run) time.Time { return r.t0.Add(150 * time.Minute) }

	t.Run("none recorded", func(t *testing.T) {
		r := newRun(t)
		if r.m.Verifications == nil || r.m.Verifications.Records != 0 {
			t.Fatalf("verifications %+v, want none", r.m.Verifications)
		}
		if a := control(r.m, "5.33").Assertion; a == nil || a.Result != compliance.Exceptions || a.Population != 1 {
			t.Fatalf("5.33 %+v", a)
		}
		if rows := assertionRows(t, r, "5.33"); len(rows) != 1 || rows[0] != ",,,,no verification of size >= 48,,"+compliance.ExNoVerification {
			t.Errorf("5.33 rows %q", rows)
		}
		if a := control(r.m, "8.15").Assertion; a == nil || a.Result != compliance.NotObserved {
			t.Errorf("8.15 %+v", a)
		}
		if !slices.Contains(r.m.Warnings, evidence.WarnNotVerified) {
			t.Errorf("warnings %q", r.m.Warnings)
		}
		if _, err := r.verify(r.bundle); err != nil {
			t.Fatal(err)
		}
		specAgrees(t, r)
	})

	t.Run("a full verification after the period", func(t *testing.T) {
		r := newRun(t)
		// One of fewer records than the range's end (begun before it)
		// is shipped and does not cover the range.
		r.sealVerification(t, r.t0.Add(4*time.Hour), ledger.Verification{Started: r.t0.Add(139 * time.Minute), Finished: r.t0.Add(140 * time.Minute), Size: 32, Root: "x", OK: true})
		v, ok := ledger.VerifyWhole(ctx, r.pcfg.Store, r.verifer, r.log.Size())
		if !ok || !v.OK {
			t.Fatalf("the writer's verification of the log: %+v", v)
		}
		idx := r.sealVerification(t, r.t0.Add(4*time.Hour), v)
		r.build(t, "acme", from(r), to(r))
		if r.m.Verifications == nil || r.m.Verifications.Records != 2 {
			t.Fatalf("verifications %+v: want both sealed after the range", r.m.Verifications)
		}
		for _, c := range []string{"5.33", "8.15"} {
			a := control(r.m, c).Assertion
			if a == nil || a.Result != compliance.Effective || a.Population != 1 {
				t.Errorf("%s: %+v", c, a)
			}
			if rows := assertionRows(t, r, c); len(rows) != 1 || !strings.HasPrefix(rows[0], fmt.Sprintf("%d,ledger.verification,,,size=%d ok=true started=", idx, v.Size)) {
				t.Errorf("%s rows %q", c, rows)
			}
		}
		if slices.Contains(r.m.Warnings, evidence.WarnNotVerified) {
			t.Errorf("warnings %q", r.m.Warnings)
		}
		rep, err := r.verify(r.bundle)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Vouched) != 0 || rep.Rederived != 11 {
			t.Errorf("vouched %q, re-derived %d", rep.Vouched, rep.Rederived)
		}
		f := zipFiles(t, r.bundle)
		if !strings.Contains(string(f["controls/5.33/verification.csv"]), fmt.Sprintf("\n%d,", idx)) || strings.Count(string(f["controls/8.15/findings.csv"]), "\n") != 1 {
			t.Errorf("tables:\n%s\n%s", f["controls/5.33/verification.csv"], f["controls/8.15/findings.csv"])
		}
		specAgrees(t, r)

		attacker, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(make([]byte, 32)))
		stolen := func(b []byte) error {
			_, err := evidence.Verify(bytes.NewReader(b), int64(len(b)), evidence.VerifyOptions{LogVerifier: r.verifer,
				AllowedSigners: []ssh.PublicKey{attacker.PublicKey()}, GrantVerifier: grantSigner.Verifier(), AllowUnlocked: true})
			return err
		}
		// The record edited (a failed verification passed off as ok): it
		// no longer matches what the log committed to.
		f = zipFiles(t, r.bundle)
		var line struct {
			Index  uint64   `json:"index"`
			Record string   `json:"record"`
			Proof  []string `json:"proof"`
		}
		lines := bytes.SplitAfter(f[evidence.VerificationsFile], []byte("\n"))
		json.Unmarshal(lines[1], &line)
		rec, _ := base64.StdEncoding.DecodeString(line.Record)
		rec = bytes.Replace(rec, []byte(`"ok":true`), []byte(`"ok":fals`), 1)
		line.Record = base64.StdEncoding.EncodeToString(rec)
		f[evidence.VerificationsFile] = append(append(lines[0], must(json.Marshal(&line))...), '\n')
		resign(t, f, attacker)
		if err := stolen(rezip(t, f)); err == nil || !strings.Contains(err.Error(), evidence.VerificationsFile+": index "+fmt.Sprint(idx)) {
			t.Errorf("an edited verification record: %v", err)
		}
		// The record dropped, the count in the manifest too: the context
		// and the assertions no longer agree.
		f = zipFiles(t, r.bundle)
		f[evidence.VerificationsFile] = bytes.SplitAfter(f[evidence.VerificationsFile], []byte("\n"))[0]
		editManifest(t, f, func(m *evidence.Manifest) { m.Verifications.Records = 1 })
		resign(t, f, attacker)
		if err := stolen(rezip(t, f)); err == nil || !strings.Contains(err.Error(), evidence.VerificationsContextFile) {
			t.Errorf("a verification record dropped: %v", err)
		}
	})

	t.Run("a finding recorded", func(t *testing.T) {
		r := newRun(t)
		v := ledger.Verification{Started: r.t0.Add(4 * time.Hour), Finished: r.t0.Add(4*time.Hour + time.Second), Size: r.log.Size(),
			Gaps: []ledger.VerifiedGap{{Index: 40, FirstSeq: 7, LastSeq: 8}}}
		idx := r.sealVerification(t, r.t0.Add(4*time.Hour+time.Second), v)
		r.build(t, "acme", from(r), to(r))
		for c, ex := range map[string]string{"5.33": compliance.ExLogNotWhole + ": gap records 40", "8.15": compliance.ExRangeNotWhole + ": gap records 40"} {
			a := control(r.m, c).Assertion
			rows := assertionRows(t, r, c)
			if a == nil || a.Result != compliance.Exceptions || len(rows) != 1 || !strings.HasPrefix(rows[0], fmt.Sprintf("%d,ledger.verification,", idx)) || !strings.HasSuffix(rows[0], ","+ex) {
				t.Errorf("%s: %+v %q, want the exception naming record %d", c, a, rows, idx)
			}
		}
		f := zipFiles(t, r.bundle)
		if want := fmt.Sprintf("%d,gap,40,stream sequences 7..8 missing\n", idx); !strings.HasSuffix(string(f["controls/8.15/findings.csv"]), want) {
			t.Errorf("findings.csv:\n%s", f["controls/8.15/findings.csv"])
		}
		if _, err := r.verify(r.bundle); err != nil {
			t.Fatal(err)
		}
		specAgrees(t, r)
	})

	t.Run("a record the writer did not seal", func(t *testing.T) {
		r := newRun(t)
		// A ledger.verification of the log's tenant appended by someone
		// other than the writer (a producer's form: version first, its own
		// source and actor): it says ok, it covers the range, and it does
		// not count.
		payload, _ := json.Marshal(ledger.Verification{Started: r.t0.Add(4 * time.Hour), Finished: r.t0.Add(4 * time.Hour), Size: 1000, Root: "x", OK: true, Gaps: []ledger.VerifiedGap{}})
		ev := must(json.Marshal(&events.Event{Version: events.Version, ID: "forged-verification", Type: events.LedgerVerification, Time: r.t0.Add(4 * time.Hour),
			Tenant: ledger.SystemTenant, Source: events.Source{Kind: "ledger", Instance: "evil"}, Actor: events.Actor{Issuer: "auditledger", Subject: "ledger", Kind: events.Machine}, Payload: payload}))
		idx := r.log.Size()
		r.appendProjected(t, r.t0.Add(4*time.Hour), ledger.Entry{Event: ev})
		r.build(t, "acme", from(r), to(r))
		if r.m.Verifications.Records != 0 || control(r.m, "5.33").Assertion.Result != compliance.Exceptions {
			t.Fatalf("a record the writer did not seal was shipped or counted: %+v %+v", r.m.Verifications, control(r.m, "5.33").Assertion)
		}
		// Forced into the bundle with its true inclusion proof and a
		// stolen evidence key: refused as not the writer's.
		err := forceVerification(t, r, idx)
		if err == nil || !strings.Contains(err.Error(), evidence.VerificationsFile) || !strings.Contains(err.Error(), "the writer") {
			t.Errorf("a record the writer did not seal, forced in: %v", err)
		}
	})
}

// A bundle as built before verification records were carried (manifest
// without verifications, expectations of version 3, mapping version 3
// with 5.33's verification and 8.15's findings queried on the
// projection) still verifies: its assertions are re-derived by version
// 3's rules, the two tables are listed as vouched, and its warning of no
// verification is the one derived from the queried table.
func TestBundleBeforeVerificationRecords(t *testing.T) {
	r := newRun(t)
	f := zipFiles(t, r.bundle)
	f["expectations.yaml"] = olderExpectations(f["expectations.yaml"], 3)
	delete(f, evidence.VerificationsFile)
	delete(f, evidence.VerificationsContextFile)
	f["controls/5.33/verification.csv"] = []byte("started,finished,ok,size,gaps,error\n")
	f["controls/8.15/findings.csv"] = []byte("type,records\n")
	editManifest(t, f, func(m *evidence.Manifest) {
		withoutVersion4Assertions(m)
		m.Verifications = nil
		sum := sha256.Sum256(f["expectations.yaml"])
		m.Expectations.SHA256 = hex.EncodeToString(sum[:])
		m.Framework.MappingVersion = 3
		m.Files = slices.DeleteFunc(m.Files, func(x evidence.File) bool {
			return x.Path == evidence.VerificationsFile || x.Path == evidence.VerificationsContextFile
		})
		for i := range m.Controls {
			c := &m.Controls[i]
			if c.ID == "5.33" || c.ID == "8.15" {
				c.Derived = slices.DeleteFunc(c.Derived, func(n string) bool { return n == "verification" || n == "findings" })
				if c.ID == "5.33" {
					c.Counts["verification"] = 0
				} else {
					c.Counts["findings"] = 0
				}
			}
		}
		m.Warnings = slices.DeleteFunc(m.Warnings, func(w string) bool { return w == evidence.WarnNotVerified })
		m.Warnings = append(m.Warnings, evidence.WarnNoVerification)
	})
	resign(t, f, r.signer)
	rep, err := r.verify(rezip(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Vouched, []string{"controls/5.33/verification.csv", "controls/8.15/findings.csv"}) || rep.Tables != 27 {
		t.Errorf("vouched %q, %d tables re-derived", rep.Vouched, rep.Tables)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "no verification records") }) {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

// A verification record's payload has FORMAT's members by their exact
// names (§2.1): one that says "OK" or "Gaps" — which encoding/json alone
// would read as "ok" and "gaps" — is not the writer's: not shipped, and
// refused when forced into a bundle, naming the member.
func TestVerificationMembersExact(t *testing.T) {
	for old, bad := range map[string]string{`"ok":true`: `"OK":true`, `"gaps":[]`: `"Gaps":[]`} {
		t.Run(bad, func(t *testing.T) {
			r := newRun(t)
			v := ledger.Verification{Started: r.t0.Add(4 * time.Hour), Finished: r.t0.Add(4 * time.Hour), Size: 1000, Root: "x", OK: true}
			idx := r.log.Size()
			e, err := ledger.VerificationEntry(r.log.Origin(), idx, v, r.t0.Add(4*time.Hour))
			if err != nil || !bytes.Contains(e.Event, []byte(old)) {
				t.Fatalf("%v %s", err, e.Event)
			}
			e.Event = bytes.Replace(e.Event, []byte(old), []byte(bad), 1)
			r.appendProjected(t, r.t0.Add(4*time.Hour), e)
			r.build(t, "acme", r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute))
			if r.m.Verifications.Records != 0 {
				t.Fatalf("a payload with %s was shipped: %+v", bad, r.m.Verifications)
			}
			err = forceVerification(t, r, idx)
			name := bad[1 : strings.Index(bad[1:], `"`)+1]
			if err == nil || !strings.Contains(err.Error(), evidence.VerificationsFile) || !strings.Contains(err.Error(), fmt.Sprintf("member %q", name)) {
				t.Errorf("a payload with %s, forced in: %v", bad, err)
			}
		})
	}
}

// context/verifications.json writes times as Go's encoding/json does
// (FORMAT §12): the fraction without trailing zeros, absent when zero,
// Z. Vectors: a time whose fraction ends in zeros (.12), one with none
// (the sealing time, a whole second), one to the nanosecond; the Go
// verifier and FORMAT's reading (rederive.py) both re-derive the file
// byte for byte.
func TestVerificationTimesVectors(t *testing.T) {
	r := newRun(t)
	sealed := r.t0.Add(4 * time.Hour) // a whole second
	v := ledger.Verification{Started: sealed.Add(-time.Second + 120*time.Millisecond), Finished: sealed.Add(-time.Second + 123456789), Size: r.log.Size(), Root: "x", OK: true}
	idx := r.sealVerification(t, sealed, v)
	// And one that failed, its failure's strings escaped as Go writes
	// them (HTML-safe).
	at := uint64(3)
	r.sealVerification(t, sealed.Add(time.Hour), ledger.Verification{Started: sealed, Finished: sealed.Add(time.Minute), Size: r.log.Size(),
		Failure: &ledger.VerificationFailure{Object: "segments/<x>&y", Index: &at, Error: `chain "broken" <here>`}})
	r.build(t, "acme", r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute))
	got := string(zipFiles(t, r.bundle)[evidence.VerificationsContextFile])
	ts := func(t time.Time, frac string) string { return t.Format("2006-01-02T15:04:05") + frac + "Z" }
	for _, want := range []string{
		fmt.Sprintf(`"index": %d,`, idx),
		`"sealed_at": "` + ts(sealed, "") + `",`,
		`"started": "` + ts(v.Started, ".12") + `",`,
		`"finished": "` + ts(v.Finished, ".123456789") + `",`,
		`"object": "segments/\u003cx\u003e\u0026y",`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %s:\n%s", evidence.VerificationsContextFile, want, got)
		}
	}
	if _, err := r.verify(r.bundle); err != nil {
		t.Fatal(err)
	}
	specAgrees(t, r)
}

// forceVerification puts the ledger.verification record at idx — the
// only one the log holds — into r's bundle with its true inclusion
// proof, counts it in the manifest, signs the bundle again with a key
// the verifier is told to trust (a stolen evidence key) and verifies it.
func forceVerification(t *testing.T, r *run, idx uint64) error {
	t.Helper()
	proof, err := projections.NewReader(r.db).InclusionProof(t.Context(), idx, r.m.LegalHolds.AsOf)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := projections.NewReader(r.db).Events(t.Context(), projections.EventFilter{Types: []events.Type{events.LedgerVerification}, Tenants: []string{ledger.SystemTenant}, Limit: 10})
	if err != nil || len(evs.Events) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	line := evidence.RetentionLine{Index: idx, Record: base64.StdEncoding.EncodeToString(evs.Events[0].Record())}
	for _, h := range proof {
		line.Proof = append(line.Proof, h.Base64())
	}
	f := zipFiles(t, r.bundle)
	f[evidence.VerificationsFile] = append(must(json.Marshal(&line)), '\n')
	editManifest(t, f, func(m *evidence.Manifest) { m.Verifications.Records = 1 })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	attacker, _ := ssh.NewSignerFromKey(priv)
	resign(t, f, attacker)
	b := rezip(t, f)
	_, err = evidence.Verify(bytes.NewReader(b), int64(len(b)), evidence.VerifyOptions{LogVerifier: r.verifer,
		AllowedSigners: []ssh.PublicKey{attacker.PublicKey()}, GrantVerifier: grantSigner.Verifier(), AllowUnlocked: true})
	return err
}
