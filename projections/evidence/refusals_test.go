package evidence_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections/evidence"
)

// refusalsSession is, per segment, every kind of refusal the product
// records: the API's refusal of carol approving her own request (as
// services/api records it: no rule, source api), a gateway's refusal no
// rule decides (a statement too long to record whole), a just-in-time
// access refusal naming the access rule that required the grant (as
// services/gateway records it), and a deny rule's refusal with a blank
// rule.
func refusalsSession(seg int) [][]byte {
	n := 0
	as := func(src, id, payload string) []byte {
		n++
		return fmt.Appendf(nil, `{"version":1,"tenant":"acme","source":{"kind":%q,"instance":"i-1","version":"0.1.0"},"actor":{"issuer":"https://idp.example.com","subject":"u-3000","groups":["dev"],"kind":"human"},"target":{"kind":"postgres","name":"orders"},"id":"r%d-%s","type":"command.blocked","time":"2026-11-26T10:01:%02dZ","payload":%s}`,
			src, seg, id, n, payload)
	}
	return [][]byte{
		as("api", "self", `{"reason":"approvals: a requester may not approve their own request"}`),
		as("postgres-proxy", "long", `{"statement":"SELECT 1","statement_sha256":"`+strings.Repeat("a", 64)+`","kind":"SELECT","statement_bytes":40000,"statement_truncated":true,"reason":"statement of 40000 bytes refused: the audit proxy forwards statements of at most 32768 bytes, so that each is recorded whole"}`),
		as("postgres-proxy", "jit", `{"reason":"access refused: no grant for the identity on the target","access_required":true,"rule":"orders-db"}`),
		as("postgres-proxy", "blank", `{"statement":"DROP TABLE t","kind":"DROP","rule":" ","reason":"no"}`),
	}
}

// 8.3 (expectations version 5) tests what a policy rule refused: the
// self-approval the API refused and the too-long statement are outside
// its population, the access refusal names its rule, the deny rule's
// refusal with a blank rule is the one exception; the verifier and FORMAT's
// reading (rederive.py) derive the same. The same bundle with expectations
// of version 4 is re-derived by version 4's rule, every refusal in the
// population, and the verifier says so.
func TestBundleRefusalsDecidedByARule(t *testing.T) {
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newRunWith(t, store, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), 0, refusalsSession)
	r.build(t, "acme", r.t0.Add(90*time.Minute), r.t0.Add(150*time.Minute))
	// the sample log's deny refusal, the access refusal, the blank rule
	a := control(r.m, "8.3").Assertion
	if a == nil || a.Population != 3 || a.Exceptions != 1 || a.Result != compliance.Exceptions {
		t.Fatalf("8.3: %+v, want 3 refusals by a rule, 1 exception", a)
	}
	rows := string(zipFiles(t, r.bundle)["controls/8.3/assertion.csv"])
	if !strings.Contains(rows, ",command.blocked,,u-3000,orders-db,,\n") || strings.Count(rows, compliance.ExNoRule) != 1 ||
		!strings.Contains(rows, ",command.blocked,,u-3000,,,"+compliance.ExNoRule+"\n") {
		t.Errorf("8.3's rows:\n%s", rows)
	}
	rep, err := r.verify(r.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rep.Warnings, evidence.WarnLegacyRefusals) {
		t.Errorf("a version-5 bundle warned: %q", rep.Warnings)
	}
	specAgrees(t, r)

	// Version 4: every command.blocked is in the population, so this
	// bundle's rows, turned to version 4, are not what version 4 derives.
	if _, err := r.verify(asVersion(t, r, 4)); err == nil || !strings.Contains(err.Error(), "controls/8.3/assertion.csv") {
		t.Errorf("a bundle holding version 5's 8.3 rows, turned to version 4: %v", err)
	}
	// A bundle whose refusals all name a rule derives the same rows by
	// both rules: turned to version 4, it verifies, with the warning.
	plain := assertionRun(t)
	rep, err = plain.verify(asVersion(t, plain, 4))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Warnings, evidence.WarnLegacyRefusals) {
		t.Errorf("no warning of version 4's rule: %q", rep.Warnings)
	}

	// A bundle is not built with expectations of version 4.
	fw := must(compliance.Load("iso27001-2022"))
	var buf bytes.Buffer
	_, err = evidence.Build(t.Context(), evidence.Config{DB: r.db, Framework: fw, Tenant: "acme", From: r.t0.Add(90 * time.Minute), To: r.t0.Add(150 * time.Minute),
		Signer: r.signer, LogVKey: r.vkey, GrantVKey: grantSigner.Verifier().String(), Expectations: olderExpectations(fw.ExpectationsFile, 4),
		Generator: "auditledger test", RequestedBy: evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}}, &buf)
	if err == nil || !strings.Contains(err.Error(), "version 4") || !strings.Contains(err.Error(), "refusals-name-rule") {
		t.Errorf("built with expectations of version 4: %v", err)
	}
}

// asVersion is r's bundle with its expectations turned to version v
// (olderExpectations), re-signed with the evidence key, and its
// mapping_version one this verifier does not hold (so the summaries and
// report, which name the expectations' digest, are not rendered again:
// the assertions are).
func asVersion(t *testing.T, r *run, v int) []byte {
	t.Helper()
	f := zipFiles(t, r.bundle)
	f["expectations.yaml"] = olderExpectations(f["expectations.yaml"], v)
	editManifest(t, f, func(m *evidence.Manifest) {
		if v < 4 {
			withoutVersion4Assertions(m)
		}
		sum := sha256.Sum256(f["expectations.yaml"])
		m.Expectations.SHA256 = hex.EncodeToString(sum[:])
		m.Framework.MappingVersion = 999
	})
	resign(t, f, r.signer)
	return rezip(t, f)
}
