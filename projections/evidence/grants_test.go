package evidence_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/csv"
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
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections/evidence"
)

// grantSigner is the access broker's grant key (approvals.key) of every
// test log; otherGrantSigner a key of the same name that is not it.
var grantSigner, otherGrantSigner = newGrantSigner(), newGrantSigner()

func newGrantSigner() *ledger.NoteSigner {
	skey, _, err := ledger.GenerateKey(rand.Reader, "approvals.test")
	if err != nil {
		panic(err)
	}
	s, err := ledger.NewNoteSigner(skey)
	if err != nil {
		panic(err)
	}
	return s
}

// grantSessions is, per segment, one privileged session (a DROP no one
// approved) under each kind of access.granted record: dave's the API's
// signed grant; frank's an unsigned record a producer (source emit)
// published; gina's published as the API but signed with another key;
// hal's a legacy SSH certificate's record naming a grant; ivan's the
// API's without a signature; jack's the API's signed note with its text
// changed to an earlier start, the record's window that start (only the
// Ed25519 signature tells it).
func grantSessions(seg int) [][]byte {
	seq := 0
	as := func(src, subject, id, typ, session, payload string) []byte {
		seq++
		sess := ""
		if session != "" {
			sess = fmt.Sprintf(`"session_id":%q,"session_seq":%d,`, session, seq)
		}
		return fmt.Appendf(nil, `{"version":1,"tenant":"acme","source":{"kind":%q,"instance":"%s-1","version":"0.1.0"},"actor":{"issuer":"https://idp.example.com","subject":%q,"groups":["dba"],"kind":"human"},"target":{"kind":"postgres","name":"orders"},"id":"g%d-%s","type":%q,"time":"2026-11-26T10:00:%02dZ",%s"payload":%s}`,
			src, src, subject, seg, id, typ, seq%60, sess, payload)
	}
	var out [][]byte
	for _, c := range []struct {
		who, src, grant string
		signer          *ledger.NoteSigner
	}{
		{"dave", "api", "just-in-time", grantSigner},
		{"frank", "emit", "just-in-time", nil},
		{"gina", "api", "just-in-time", otherGrantSigner},
		{"hal", "api", "ssh-user-certificate", grantSigner},
		{"ivan", "api", "just-in-time", nil},
		{"jack", "api", "just-in-time", grantSigner},
	} {
		id := fmt.Sprintf("acc-%d-%s", seg, c.who)
		g := events.Grant{ID: id, Tenant: "acme", Rule: "prod-ddl", Requester: events.Actor{Issuer: "https://idp.example.com", Subject: c.who},
			Target: "orders", NotBefore: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
		sig := ""
		if c.signer != nil {
			sig = string(must(c.signer.SignNote(events.GrantText(g))))
		}
		if c.who == "jack" {
			sig = strings.Replace(sig, `"not_before":"2026-11-26T09:00:00Z"`, `"not_before":"2026-11-26T08:00:00Z"`, 1)
			g.NotBefore = g.NotBefore.Add(-time.Hour)
		}
		payload := must(json.Marshal(map[string]any{"access_id": id, "grant": c.grant, "rule": g.Rule, "target": g.Target, "status": "approved",
			"requester": map[string]string{"issuer": g.Requester.Issuer, "subject": c.who}, "not_before": g.NotBefore, "not_after": g.NotAfter,
			"break_glass": false, "signature": sig}))
		session := fmt.Sprintf("sess-%s-%d", c.who, seg)
		out = append(out,
			as(c.src, "bob", "grant-"+c.who, "access.granted", "", string(payload)),
			as("postgres-proxy", c.who, "start-"+c.who, "session.started", session, fmt.Sprintf(`{"access_id":%q,"client_addr":"10.0.4.18:50000"}`, id)),
			as("postgres-proxy", c.who, "drop-"+c.who, "command.executed", session, `{"statement":"DROP TABLE old","statement_sha256":"`+strings.Repeat("a", 64)+`","kind":"DROP"}`))
	}
	return out
}

func grantRun(t *testing.T) *run {
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newRunWith(t, store, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), 0, grantSessions)
}

// indexOf is the ledger index of the event id in the bundle.
func indexOf(t *testing.T, bundle []byte, id string) uint64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(zipFiles(t, bundle)["events.jsonl"]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Index uint64
			Event struct{ ID string }
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Event.ID == id {
			return l.Index
		}
	}
	t.Fatalf("no event %s in the bundle", id)
	return 0
}

// Under 8.2 only the API's signed grant covers a privileged session: a
// record another producer published, one signed with another key, an SSH
// certificate's record and an unsigned one each leave the session an
// exception naming the record and why. The verifier re-derives this with
// the grant key the operator gives, not the bundle's: without one it
// fails naming the record whose signature it needs, and a bundle built
// with another grant key fails against the operator's.
func TestBundleCountsOnlySignedGrants(t *testing.T) {
	r := grantRun(t)
	from, to := r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute)
	r.build(t, "acme", from, to)
	rows := must(csv.NewReader(bytes.NewReader(zipFiles(t, r.bundle)["controls/8.2/assertion.csv"])).ReadAll())[1:]
	idx := func(id string) uint64 { return indexOf(t, r.bundle, "g2-"+id) }
	unverified := func(who, why string) string {
		return fmt.Sprintf("%s (index %d): %s", compliance.ExUnverifiedGrant, idx("grant-"+who), why)
	}
	want := map[string][2]string{ // actor: evidence_index, exception
		"dave":  {fmt.Sprint(idx("grant-dave")), ""},
		"frank": {"", unverified("frank", compliance.WhyNotAPI)},
		"gina":  {"", unverified("gina", compliance.WhyBadSignature)},
		"hal":   {"", unverified("hal", compliance.WhySSHCertificate)},
		"ivan":  {"", unverified("ivan", compliance.WhyNoSignature)},
		"jack":  {"", unverified("jack", compliance.WhyBadSignature)},
	}
	if len(rows) != len(want) {
		t.Fatalf("8.2 has %d rows, want %d: %q", len(rows), len(want), rows)
	}
	for _, row := range rows {
		if w := want[row[3]]; row[5] != w[0] || row[6] != w[1] {
			t.Errorf("8.2, %s's session: evidence %q, exception %q; want %q, %q", row[3], row[5], row[6], w[0], w[1])
		}
	}
	if a := control(r.m, "8.2").Assertion; a == nil || a.Population != 6 || a.Exceptions != 5 || a.Result != compliance.Exceptions {
		t.Errorf("8.2's assertion %+v", a)
	}
	if got := string(zipFiles(t, r.bundle)[evidence.GrantKeyFile]); r.m.GrantVKey != grantSigner.Verifier().String() || got != r.m.GrantVKey+"\n" {
		t.Errorf("the bundle's grant key: manifest %q, %s %q", r.m.GrantVKey, evidence.GrantKeyFile, got)
	}

	// With the operator's three keys: verified, every assertion
	// re-derived.
	rep, err := r.verify(r.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rederived != 11 || rep.UnverifiedOrigin {
		t.Errorf("re-derived %d assertions (unverified origin %t), warnings %q", rep.Rederived, rep.UnverifiedOrigin, rep.Warnings)
	}
	base := evidence.VerifyOptions{LogVerifier: r.verifer, AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}, AllowUnlocked: true}
	verify := func(bundle []byte, edit func(*evidence.VerifyOptions)) (*evidence.Report, error) {
		o := base
		edit(&o)
		return evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), o)
	}
	// Without the grant key: the bundle's copy is not taken.
	if _, err := verify(r.bundle, func(*evidence.VerifyOptions) {}); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("events.jsonl: index %d: ", idx("grant-dave"))) || !strings.Contains(err.Error(), "--grant-vkey") {
		t.Errorf("without the grant key: %v", err)
	}
	// Taken from the bundle only when told, and then of unverified origin.
	if rep, err := verify(r.bundle, func(o *evidence.VerifyOptions) { o.TrustBundleKeys = true }); err != nil || !rep.UnverifiedOrigin {
		t.Errorf("with the bundle's grant key: %v (unverified origin %t)", err, rep != nil && rep.UnverifiedOrigin)
	}
	// Another grant key than the one it was built with: dave's grant no
	// longer verifies, and the re-derived 8.2 differs.
	if _, err := verify(r.bundle, func(o *evidence.VerifyOptions) { o.GrantVerifier = otherGrantSigner.Verifier() }); err == nil ||
		!strings.Contains(err.Error(), "controls/8.2/assertion.csv") {
		t.Errorf("with another grant key: %v", err)
	}

	// Built with a key that is not the broker's (say gina's forger's):
	// the bundle verifies only against its own keys/grant.vkey, never
	// against the operator's.
	forged := *r
	forged.grantVKey = otherGrantSigner.Verifier().String()
	forged.build(t, "acme", from, to)
	if _, err := forged.verify(forged.bundle); err == nil || !strings.Contains(err.Error(), "controls/8.2/assertion.csv") {
		t.Errorf("a bundle built with another grant key, checked with the operator's: %v", err)
	}
	if rep, err := verify(forged.bundle, func(o *evidence.VerifyOptions) { o.TrustBundleKeys = true }); err != nil || !rep.UnverifiedOrigin {
		t.Errorf("a bundle built with another grant key, checked with its own: %v", err)
	}

	// Built without a grant key: refused, naming the record and the flag.
	nokey := *r
	nokey.grantVKey = "-"
	var buf bytes.Buffer
	fw := must(compliance.Load("iso27001-2022"))
	_, err = evidence.Build(t.Context(), evidence.Config{DB: r.db, Framework: fw, Tenant: "acme", From: from, To: to, Signer: r.signer, LogVKey: r.vkey,
		Generator: "auditledger test", RequestedBy: evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}}, &buf)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("index %d", idx("grant-dave"))) || !strings.Contains(err.Error(), "--grant-vkey") {
		t.Errorf("built without the grant key: %v", err)
	}
	// Expectations of version 1 are not built with.
	v1 := olderExpectations(fw.ExpectationsFile, 1)
	_, err = evidence.Build(t.Context(), evidence.Config{DB: r.db, Framework: fw, Tenant: "acme", From: from, To: to, Signer: r.signer, LogVKey: r.vkey,
		GrantVKey: grantSigner.Verifier().String(), Expectations: v1,
		Generator: "auditledger test", RequestedBy: evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}}, &buf)
	if err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("built with expectations of version 1: %v", err)
	}

	// FORMAT's reading agrees, the grant key given.
	specAgrees(t, r)
}

// asVersion1 is the bundle with its expectations turned to version 1, as
// bundles built before version 2 carry them, re-signed with the evidence
// key, and its mapping_version one this verifier does not hold (so the
// summaries and report, which name the expectations' digest, are not
// rendered again: the assertions are).
func asVersion1(t *testing.T, r *run) []byte {
	t.Helper()
	return asVersion(t, r, 1)
}

// A bundle whose expectations are of version 1 is re-derived by version
// 1's rule, with a warning saying so; turning a bundle's expectations to
// version 1 does not keep its rows: where a record that does not count
// stands as a grant, the re-derived 8.2 differs.
func TestBundleOfVersion1Expectations(t *testing.T) {
	plain := assertionRun(t) // no access grants: both rules give the same rows
	rep, err := plain.verify(asVersion1(t, plain))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Warnings, evidence.WarnLegacyGrants) {
		t.Errorf("no warning of version 1's rule: %q", rep.Warnings)
	}
	if rep, err := plain.verify(plain.bundle); err != nil || slices.Contains(rep.Warnings, evidence.WarnLegacyGrants) {
		t.Errorf("version 2: %v", err)
	}
	r := grantRun(t)
	r.build(t, "acme", r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute))
	if _, err := r.verify(asVersion1(t, r)); err == nil || !strings.Contains(err.Error(), "controls/8.2/assertion.csv: line 3") {
		t.Errorf("a bundle with forged grants turned to version 1: %v", err)
	}
}
